"""config.py is the one reader of the configuration files: every feature's table comes through it."""

from __future__ import annotations

import pytest

from plugdeck.assemble import AgentSetup
from plugdeck.config import ConfigError, config_tables, load_config
from plugdeck.ops.otel import telemetry_settings
from plugdeck.plugins.knowledge.settings import load_settings
from plugdeck.policy.load import PolicyError, load_policy
from plugdeck.server.agents import configured_agents

BROKEN = 'model = "rules"\n[knowledge\nchunk_size = 10\n'  # an unclosed table header on line 2


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A user config and a project directory, both empty; returns (user config path, project dir)."""
    user = tmp_path / "user" / "config.toml"
    user.parent.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("PLUGDECK_CONFIG", str(user))
    monkeypatch.chdir(project)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED",
                 "PLUGDECK_EMBEDDING_URL", "PLUGDECK_EMBEDDING_MODEL", "PLUGDECK_EMBEDDING_KEY_ENV"):
        monkeypatch.delenv(name, raising=False)
    return user, project


def test_tables_come_in_reading_order_from_the_files_that_have_them(files):
    user, project = files
    user.write_text('[knowledge]\nchunk_size = 500\n[telemetry]\nservice_name = "u"\n', encoding="utf-8")
    (project / "plugdeck.toml").write_text('[knowledge]\nchunk_size = 900\n', encoding="utf-8")
    assert config_tables("knowledge") == [(user, {"chunk_size": 500}), (project / "plugdeck.toml", {"chunk_size": 900})]
    assert config_tables("telemetry") == [(user, {"service_name": "u"})]
    assert config_tables("agents") == []
    assert load_settings().chunk_size == 900  # the project file wins over the user's


@pytest.mark.parametrize("read", [
    pytest.param(lambda: load_config(), id="core"),
    pytest.param(lambda: config_tables("anything"), id="config_tables"),
    pytest.param(lambda: load_settings(), id="knowledge"),
    pytest.param(lambda: telemetry_settings(), id="telemetry"),
    pytest.param(lambda: configured_agents(AgentSetup()), id="agents"),
])
def test_a_broken_file_is_one_clear_error_whoever_reads_it(files, read):
    _, project = files
    (project / "plugdeck.toml").write_text(BROKEN, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plugdeck\.toml: .*line 2"):
        read()


def test_a_policy_in_a_broken_project_file_is_a_policy_error(files):
    _, project = files
    (project / "plugdeck.toml").write_text(BROKEN, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"plugdeck\.toml: .*line 2"):
        load_policy()
    policy_file = project / "strict.toml"
    policy_file.write_text('[policy]\ndeny = ["*"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"strict\.toml: "):
        load_policy(policy_file)


@pytest.mark.parametrize("text, read, message", [
    ("knowledge = 3\n", lambda: load_settings(), r"knowledge must be a table"),
    ("agents = 3\n", lambda: configured_agents(AgentSetup()), r"agents must be tables"),
    ("telemetry = 3\n", lambda: telemetry_settings(), r"telemetry must be a table"),
])
def test_a_section_that_is_not_a_table_says_so(files, text, read, message):
    _, project = files
    (project / "plugdeck.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read()
