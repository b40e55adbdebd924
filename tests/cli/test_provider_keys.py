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


def test_openai_variables_and_the_key_reaches_only_that_endpoint(env, tmp_path):
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
        assert plugdeck(env, "ask", "--model", "local", "hi", cwd=tmp_path).returncode == 0
        flagged = plugdeck(env, "ask", "--model", "mock-model", "--base-url", local.base_url, "hi", cwd=tmp_path)
        assert flagged.returncode == 0, flagged.stderr
        assert len(local.requests) == 2 and authorization(local, 0) is None and authorization(local, 1) is None
    assert files_holding(Path(env["PLUGDECK_HOME"]), KEY) == []  # nor in the run store


def test_plugdeck_variables_come_before_openai_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert load_config({"home": str(tmp_path)}, cwd=tmp_path).base_url == "http://127.0.0.1:1/v1"
    monkeypatch.setenv("PLUGDECK_BASE_URL", "http://127.0.0.1:2/v1")
    assert load_config({"home": str(tmp_path)}, cwd=tmp_path).base_url == "http://127.0.0.1:2/v1"


def test_a_stored_key_is_set_once_and_used_by_a_profile(env, tmp_path):
    stored = plugdeck(env, "keys", "set", "openai", input=KEY + "\n", cwd=tmp_path)
    assert stored.returncode == 0 and 'api_key = "keyring:openai"' in stored.stderr and KEY not in stored.stderr
    assert plugdeck(env, "keys", "list", cwd=tmp_path).stdout.split() == ["openai"]
    assert plugdeck(env, "keys", "get", "openai", cwd=tmp_path).stdout.strip() == KEY
    with MockOpenAI(["Done."]) as mock:
        (tmp_path / "plugdeck.toml").write_text(
            f'[models.gpt]\nbase_url = "{mock.base_url}"\nmodel = "mock-model"\napi_key = "keyring:openai"\n')
        asked = plugdeck(env, "ask", "--model", "gpt", "hi", cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        assert authorization(mock) == f"Bearer {KEY}"
    assert files_holding(tmp_path, KEY) == [tmp_path / "keyring.json"]  # only in the (test) keyring
    assert plugdeck(env, "keys", "delete", "openai", cwd=tmp_path).returncode == 0
    assert plugdeck(env, "keys", "list", "--json", cwd=tmp_path).stdout.strip() == "[]"
    gone = plugdeck(env, "ask", "--model", "gpt", "hi", cwd=tmp_path)
    assert gone.returncode == 1 and "not stored on this machine: plugdeck keys set openai" in gone.stderr
    missing = plugdeck(env, "keys", "get", "openai", cwd=tmp_path)
    assert missing.returncode == 1 and "no key named 'openai'" in missing.stderr


def test_without_a_keyring_backend_the_error_says_what_to_do(env, tmp_path):
    env = {**env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    result = plugdeck(env, "keys", "set", "openai", input=KEY, cwd=tmp_path)
    assert result.returncode == 1
    assert "no keyring" in result.stderr and "pip install keyrings.alt" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and KEY not in result.stderr


def test_server_access_keys_live_under_serve_and_the_old_commands_still_work(env, tmp_path):
    old = plugdeck(env, "keys", "create", "--plugins", "calculator", "--name", "ci", cwd=tmp_path)
    assert old.returncode == 0 and old.stdout.startswith("pdk_")
    assert "plugdeck serve keys create" in old.stderr
    listed = json.loads(plugdeck(env, "serve", "keys", "list", "--json", cwd=tmp_path).stdout)
    assert [k["name"] for k in listed] == ["ci"]
    providers = plugdeck(env, "keys", "list", cwd=tmp_path)
    assert providers.stdout == "" and "plugdeck serve keys list" in providers.stderr


def test_settings_flags_are_the_request_body(env, tmp_path):
    with MockOpenAI(["Short."]) as mock:
        asked = plugdeck(env, "ask", "--model", "mock-model", "--base-url", mock.base_url, "-p", "calculator",
                         "--temperature", "0.3", "--max-tokens", "50", "-o", "seed", "7", "-o", "stop", "END",
                         "-o", "extra_body", '{"chat_template_kwargs": {"enable_thinking": false}}',
                         "-o", "tool_choice", "none", "hi", cwd=tmp_path)
        assert asked.returncode == 0, asked.stderr
        wrong = plugdeck(env, "ask", "--model", "mock-model", "--base-url", mock.base_url, "-o", "warmth", "1", "hi",
                         cwd=tmp_path)
    body = mock.requests[0]
    assert {k: body[k] for k in ("temperature", "max_tokens", "seed", "stop", "chat_template_kwargs", "tool_choice")} \
        == {"temperature": 0.3, "max_tokens": 50, "seed": 7, "stop": "END",
            "chat_template_kwargs": {"enable_thinking": False}, "tool_choice": "none"}
    assert wrong.returncode == 1 and "'warmth' is not a model setting" in wrong.stderr and len(mock.requests) == 1
