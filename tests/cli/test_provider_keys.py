"""Provider keys and model settings as a user meets them (issue 16, part 1), through the real `plugdeck`
command and real OpenAI-compatible servers on loopback: OPENAI_BASE_URL / OPENAI_API_KEY, keys stored
with `plugdeck keys set` in a keyring (a test keyring in a file, never the user's), settings flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mock_openai import MockOpenAI
from plugdeck.config import load_config

pytest.importorskip("keyring")

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]
TESTS = Path(__file__).resolve().parents[1]
KEY = "sk-test-Kq73RmZp0xWv5LbN2cYt"


def plugdeck(env, *args, cwd, input=None):
    return subprocess.run([*PLUGDECK, *args], env=env, cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def env(cli_env, tmp_path):
    """The CLI's environment with a keyring of its own: a JSON file the test can read."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**cli_env, "PYTHONPATH": path, "PYTHON_KEYRING_BACKEND": "memory_keyring.FileKeyring",
            "TEST_KEYRING_FILE": str(tmp_path / "keyring.json")}


def authorization(mock: MockOpenAI, index: int = 0) -> str | None:
    return {k.lower(): v for k, v in mock.headers[index].items()}.get("authorization")


def files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_openai_variables_and_the_key_reaches_only_that_endpoint(env, tmp_path, monkeypatch):
    with MockOpenAI(["The answer.", "Other."]) as openai_like, MockOpenAI(["Local.", "Local."]) as local:
        (tmp_path / "plugdeck.toml").write_text(f'[models.local]\nbase_url = "{local.base_url}"\nmodel = "mock-model"\n')
        env = {**env, "OPENAI_BASE_URL": openai_like.base_url, "OPENAI_API_KEY": KEY}
        asked = plugdeck(env, "ask", "--planner", "loop", "--model", "mock-model", f"my key is {KEY}, keep it",
                         cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.strip() == "The answer.", (asked.stderr, openai_like.requests)
        assert authorization(openai_like) == f"Bearer {KEY}"
        assert KEY not in json.dumps(openai_like.requests)  # not in the prompt the server is sent
        assert KEY not in asked.stdout + asked.stderr
        # Another endpoint, by profile or --base-url, never gets it.
        monkeypatch.chdir(tmp_path)
        assert in_process(env, "ask", "--model", "local", "hi").exit_code == 0
        flagged = in_process(env, "ask", "--model", "mock-model", "--base-url", local.base_url, "hi")
        assert flagged.exit_code == 0, flagged.output
        assert len(local.requests) == 2 and authorization(local, 0) is None and authorization(local, 1) is None
    assert files_holding(Path(env["PLUGDECK_HOME"]), KEY) == []  # nor in the run store


def test_plugdeck_variables_come_before_openai_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert load_config({"home": str(tmp_path)}, cwd=tmp_path).base_url == "http://127.0.0.1:1/v1"
    monkeypatch.setenv("PLUGDECK_BASE_URL", "http://127.0.0.1:2/v1")
    assert load_config({"home": str(tmp_path)}, cwd=tmp_path).base_url == "http://127.0.0.1:2/v1"


def in_process(env, *args, input=None):
    """`plugdeck ARGS` in this process (quicker than a subprocess), under the test's environment."""
    from typer.testing import CliRunner

    from plugdeck.cli.main import app

    return CliRunner().invoke(app, list(args), env=env, input=input)


def test_a_stored_key_is_set_once_and_used_by_a_profile(cli_env, tmp_path, monkeypatch, keyring_backend):
    monkeypatch.chdir(tmp_path)
    stored = in_process(cli_env, "keys", "set", "openai", input=KEY + "\n")
    assert stored.exit_code == 0 and 'api_key = "keyring:openai"' in stored.stderr and KEY not in stored.output
    assert keyring_backend.entries[("plugdeck", "openai")] == KEY
    assert in_process(cli_env, "keys", "list").stdout.split() == ["openai"]
    assert in_process(cli_env, "keys", "get", "openai").stdout.strip() == KEY
    with MockOpenAI(["Done."]) as mock:
        (tmp_path / "plugdeck.toml").write_text(
            f'[models.gpt]\nbase_url = "{mock.base_url}"\nmodel = "mock-model"\napi_key = "keyring:openai"\n')
        asked = in_process(cli_env, "ask", "--model", "gpt", "--no-store", "hi")
        assert asked.exit_code == 0, asked.output
        assert authorization(mock) == f"Bearer {KEY}"
    assert files_holding(tmp_path, KEY) == []  # only in the keyring
    assert in_process(cli_env, "keys", "delete", "openai").exit_code == 0
    assert in_process(cli_env, "keys", "list", "--json").stdout.strip() == "[]"
    missing = in_process(cli_env, "keys", "get", "openai")
    assert missing.exit_code == 1 and "no key named 'openai'" in missing.stderr


def test_a_profiles_stored_key_that_is_gone_is_named(cli_env, tmp_path, monkeypatch, keyring_backend):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugdeck.toml").write_text(
        '[models.gpt]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\napi_key = "keyring:openai"\n')
    gone = in_process(cli_env, "ask", "--model", "gpt", "hi")
    assert gone.exit_code == 1 and "not stored on this machine: plugdeck keys set openai" in str(gone.exception)


def test_without_a_keyring_backend_the_error_says_what_to_do(cli_env):
    from keyring.backends import fail

    from memory_keyring import use_keyring

    with use_keyring(fail.Keyring()):
        result = in_process(cli_env, "keys", "set", "openai", input=KEY)
    assert result.exit_code == 1
    assert "no keyring" in result.stderr and "pip install keyrings.alt" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and KEY not in result.output


def test_server_access_keys_live_under_serve_and_the_old_commands_still_work(cli_env, keyring_backend):
    old = in_process(cli_env, "keys", "create", "--plugins", "calculator", "--name", "ci")
    assert old.exit_code == 0 and old.stdout.startswith("pdk_")
    assert "plugdeck serve keys create" in old.stderr
    listed = json.loads(in_process(cli_env, "serve", "keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["ci"]
    providers = in_process(cli_env, "keys", "list")
    assert providers.stdout == "" and "plugdeck serve keys list" in providers.stderr


def test_settings_flags_are_the_request_body(env, tmp_path, monkeypatch):
    with MockOpenAI(["Short."]) as mock:
        asked = plugdeck(env, "ask", "--model", "mock-model", "--base-url", mock.base_url, "-p", "calculator",
                         "--temperature", "0.3", "--max-tokens", "50", "-o", "seed", "7", "-o", "stop", "END",
                         "-o", "extra_body", '{"chat_template_kwargs": {"enable_thinking": false}}',
                         "-o", "tool_choice", "none", "hi", cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        monkeypatch.chdir(tmp_path)
        wrong = in_process(env, "ask", "--model", "mock-model", "--base-url", mock.base_url, "-o", "warmth=1", "hi")
    body = mock.requests[0]
    assert {k: body[k] for k in ("temperature", "max_tokens", "seed", "stop", "chat_template_kwargs", "tool_choice")} \
        == {"temperature": 0.3, "max_tokens": 50, "seed": 7, "stop": "END",
            "chat_template_kwargs": {"enable_thinking": False}, "tool_choice": "none"}
    assert wrong.exit_code == 1 and "'warmth' is not a model setting" in str(wrong.exception)
    assert len(mock.requests) == 1


def test_openai_key_goes_to_openais_own_endpoint_by_default(monkeypatch):
    from plugdeck.config import ModelProfile

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("PLUGDECK_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert ModelProfile("gpt", "https://api.openai.com/v1/", "gpt-4.1-mini").api_key() == KEY
    assert ModelProfile("local", "http://127.0.0.1:8000/v1", "qwen").api_key() is None
    assert ModelProfile("own", "https://api.openai.com/v1", "g", api_key_env="MY_KEY").api_key() is None
    monkeypatch.setenv("PLUGDECK_API_KEY", "pdk-own-Yx82mQ")  # PLUGDECK_* first, as everywhere
    assert ModelProfile("gpt", "https://api.openai.com/v1", "g").api_key() == "pdk-own-Yx82mQ"
