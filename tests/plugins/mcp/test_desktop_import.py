"""Importing a desktop client's MCP servers (`plugdeck mcp import`, `plugins add mcp --from-json`): the
block of Claude Desktop, Cursor and VS Code is read as written, each server goes through the same
start-list-scan-approve path as `plugins add mcp`, and a secret in the block is stored nowhere."""

import json
from pathlib import Path

import pytest
from conftest import ENV_SERVER, PLUGDECK, PYTHON, plugdeck, serve_http, write_script

from plugdeck.plugins import registry
from plugdeck.plugins.mcp.desktop_config import ConfigBlockError, read_block

CONFIGS = Path(__file__).parent / "client_configs"
SECRET = "sk-live-Zq8v1Xr7Lm3Np5Tw2Ys9"  # a literal token, as people paste them


def servers(name):
    return {item.name: item for item in read_block((CONFIGS / name).read_text(), name)}


def test_claude_desktop_block_literal_secret_becomes_a_variable():
    found = servers("claude_desktop_config.json")
    assert list(found) == ["filesystem", "github"]
    assert found["filesystem"].options["command"][:3] == ["npx", "-y", "@modelcontextprotocol/server-filesystem"]
    github = found["github"]
    assert github.options["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "GITHUB_PERSONAL_ACCESS_TOKEN"}
    assert github.literals == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_fixtureTokenNotReal0000000000000000"}
    assert "ghp_fixture" not in json.dumps(github.options) + json.dumps(github.exports)


def test_cursor_block_keeps_references_and_skips_disabled_servers():
    found = servers("cursor_mcp.json")
    assert found["brave-search"].options["env"] == {"BRAVE_API_KEY": "BRAVE_API_KEY"}
    assert found["brave-search"].literals == {}  # a reference stays a reference: nothing to hide
    linear = found["linear"]
    assert linear.options["url"] == "https://mcp.linear.app/mcp" and linear.options["command"] is None
    assert linear.options["headers_env"] == {"Authorization": "LINEAR_AUTHORIZATION"}
    assert "Bearer ${env:LINEAR_TOKEN}" in linear.exports["LINEAR_AUTHORIZATION"]
    assert "disabled" in found["old-tool"].skipped


def test_vscode_jsonc_block_with_types_inputs_and_sse():
    found = servers("vscode_mcp.json")
    assert list(found) == ["time", "perplexity", "github", "legacy"]
    assert found["time"].options["command"] == ["uvx", "mcp-server-time", "--local-timezone=Europe/Berlin"]
    assert found["perplexity"].options["env"] == {"PERPLEXITY_API_KEY": "PERPLEXITY_API_KEY"}
    assert "perplexity-key" in found["perplexity"].exports["PERPLEXITY_API_KEY"]
    github = found["github"]
    assert github.options["headers_env"] == {"Authorization": "GITHUB_AUTHORIZATION"}
    assert github.literals["GITHUB_AUTHORIZATION"].startswith("Bearer ghp_fixture")
    assert "SSE" in found["legacy"].skipped and "Streamable HTTP" in found["legacy"].skipped


def test_two_servers_with_different_values_for_one_key_get_a_variable_each():
    block = {"mcpServers": {"a": {"command": "x", "env": {"API_KEY": "one"}},
                            "b": {"command": "y", "env": {"API_KEY": "two"}}}}
    found = {item.name: item for item in read_block(json.dumps(block))}
    assert found["a"].options["env"] == {"API_KEY": "A_API_KEY"} and found["a"].literals == {"A_API_KEY": "one"}
    assert found["b"].options["env"] == {"API_KEY": "B_API_KEY"} and found["b"].literals == {"B_API_KEY": "two"}


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"theme": "dark"}', "has no MCP servers"),
    ('{"mcpServers": []}', "has no MCP servers"),
])
def test_bad_blocks_say_what_is_wrong(text, message):
    with pytest.raises(ConfigBlockError, match=message):
        read_block(text)


def env_block(tmp_path, shape):
    """A block in the given client's shape for our real environment-reporting stdio server."""
    script = str(write_script(tmp_path, "env_server.py", ENV_SERVER))
    server = {"command": PYTHON, "args": [script], "env": {"API_TOKEN": SECRET, "REGION": "${DEPLOY_REGION}"}}
    if shape == "vscode":
        return {"servers": {"envy": {"type": "stdio", **server}}}
    return {"mcpServers": {"envy": server}}


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize("shape", ["claude", "vscode"])
def test_import_adds_the_server_and_stores_no_secret(cli_env, tmp_path, shape):
    block = tmp_path / "claude_desktop_config.json"
    block.write_text(json.dumps(env_block(tmp_path, shape)))
    env = {**cli_env, "DEPLOY_REGION": "eu-west"}
    result = plugdeck(env, "mcp", "import", str(block), "--yes")
    assert result.returncode == 0, result.stderr
    assert "export API_TOKEN=" in result.stdout and "NOT set in this shell" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    home = Path(cli_env["PLUGDECK_HOME"])
    entry = registry.configured(home)["envy"]
    assert entry["options"]["env"] == {"API_TOKEN": "API_TOKEN", "REGION": "DEPLOY_REGION"}
    assert entry["options"]["approved"]  # approved like plugins add mcp, with its pins
    stored = files_under(home)
    assert stored and not any(SECRET.encode() in path.read_bytes() for path in stored)


def test_an_imported_server_gets_the_value_from_the_exported_variable(cli_env, tmp_path):
    block = tmp_path / "mcp.json"
    block.write_text(json.dumps(env_block(tmp_path, "claude")))
    env = {**cli_env, "DEPLOY_REGION": "eu-west"}
    assert plugdeck(env, "mcp", "import", str(block), "--yes").returncode == 0
    home = Path(cli_env["PLUGDECK_HOME"])
    called = plugdeck({**env, "API_TOKEN": SECRET}, "tools", "call", "envy.variable", '{"name": "API_TOKEN"}', "--yes")
    assert called.returncode == 0, called.stderr
    assert SECRET not in called.stdout and "<absent>" not in called.stdout  # it arrived, and was blanked out
    unset = plugdeck(env, "tools", "call", "envy.variable", '{"name": "REGION"}', "--yes")
    assert unset.returncode != 0 and "API_TOKEN" in unset.stdout + unset.stderr
    assert not any(SECRET.encode() in path.read_bytes() for path in files_under(home))


def test_import_from_stdin_through_plugins_add_from_json(cli_env, tmp_path):
    import subprocess

    text = json.dumps(env_block(tmp_path, "claude"))
    result = subprocess.run([*PLUGDECK, "plugins", "add", "mcp", "--from-json", "-", "--yes"], input=text,
                            env={**cli_env, "DEPLOY_REGION": "x"}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "envy" in registry.configured(Path(cli_env["PLUGDECK_HOME"]))


def test_import_without_yes_and_without_a_terminal_adds_nothing(cli_env, tmp_path):
    block = tmp_path / "mcp.json"
    block.write_text(json.dumps(env_block(tmp_path, "claude")))
    result = plugdeck({**cli_env, "DEPLOY_REGION": "x"}, "mcp", "import", str(block))
    assert result.returncode == 1 and "needs a person's OK" in result.stderr
    assert "not added: envy" in result.stdout
    assert registry.configured(Path(cli_env["PLUGDECK_HOME"])) == {}


def test_import_an_http_server_with_a_literal_header(cli_env, tmp_path_factory):
    """A VS Code `type: http` entry against a real Streamable HTTP server (plugdeck's own, in another home)."""
    from cli_env import cli_environment

    other = cli_environment(tmp_path_factory.mktemp("server-side"))
    process, url = serve_http(other, "--plugin", "calculator")
    try:
        block = {"servers": {"calc": {"type": "http", "url": url, "headers": {"X-Api-Key": SECRET}},
                             "old": {"type": "sse", "url": url}}}
        path = tmp_path_factory.mktemp("block") / "mcp.json"
        path.write_text(json.dumps(block))
        flagged = plugdeck(cli_env, "mcp", "import", str(path), "--yes")
        # The same scanner as plugins add mcp: plugdeck's tool names mention the local calculator's.
        assert flagged.returncode == 1 and "--allow-flagged" in flagged.stderr
        assert registry.configured(Path(cli_env["PLUGDECK_HOME"])) == {}
        result = plugdeck(cli_env, "mcp", "import", str(path), "--yes", "--allow-flagged")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert result.returncode == 1  # the SSE server was not added, and says so
    assert "skipped 'old'" in result.stdout and "not added: old" in result.stdout
    assert "export CALC_X_API_KEY=" in result.stdout
    home = Path(cli_env["PLUGDECK_HOME"])
    calc = registry.configured(home)["calc"]["options"]
    assert calc["url"] == url and calc["headers_env"] == {"X-Api-Key": "CALC_X_API_KEY"}
    assert "calculator.calculate" in calc["approved"]
    assert not any(SECRET.encode() in path.read_bytes() for path in files_under(home))


def test_only_and_unknown_names(cli_env, tmp_path):
    block = tmp_path / "mcp.json"
    block.write_text(json.dumps(env_block(tmp_path, "claude")))
    wrong = plugdeck(cli_env, "mcp", "import", str(block), "--only", "nope", "--yes")
    assert wrong.returncode == 1 and "no server 'nope'" in wrong.stderr and "envy" in wrong.stderr
    missing = plugdeck(cli_env, "mcp", "import", str(tmp_path / "absent.json"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
