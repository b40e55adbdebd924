"""`plugdeck mcp serve --print-config`: the block a desktop client needs, which starts that very server
(run here as the client runs it), names secrets only by their variables, and has VS Code and HTTP forms."""

import json
from pathlib import Path

from conftest import ENV_SERVER, PYTHON, plugdeck, write_script

from mcp import Client, StdioServerParameters


async def test_print_config_starts_this_server(cli_env):
    printed = plugdeck(cli_env, "mcp", "serve", "--print-config", "--plugin", "calculator")
    assert printed.returncode == 0, printed.stderr
    entry = json.loads(printed.stdout)["mcpServers"]["plugdeck"]
    assert Path(entry["command"]).is_absolute()
    assert entry["args"][-4:] == ["mcp", "serve", "--plugin", "calculator"]
    assert entry["env"] == {"PLUGDECK_HOME": str(Path(cli_env["PLUGDECK_HOME"]).resolve())}
    # As the desktop client runs it: that command, those arguments, that environment (plus this checkout).
    env = {**entry["env"], "PATH": cli_env["PATH"], "HOME": cli_env["HOME"], "PYTHONPATH": cli_env.get("PYTHONPATH", "")}
    async with Client(StdioServerParameters(command=entry["command"], args=entry["args"], env=env), cache=None) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"calculator.calculate", "ask"}


def test_print_config_names_secrets_by_variable_and_has_an_http_form(cli_env, tmp_path):
    token = "tok-value-never-printed-5931"
    script = write_script(tmp_path, "env_server.py", ENV_SERVER)
    env = {**cli_env, "NOTES_TOKEN": token}
    assert plugdeck(env, "plugins", "add", "mcp", "--name", "notes", "--env", "TOKEN=NOTES_TOKEN", "--yes",
                    "--", PYTHON, str(script)).returncode == 0
    printed = plugdeck(env, "mcp", "serve", "--print-config", "--plugin", "notes")
    assert printed.returncode == 0, printed.stderr
    entry = json.loads(printed.stdout)["mcpServers"]["plugdeck"]
    assert entry["env"]["NOTES_TOKEN"] == "${NOTES_TOKEN}" and token not in printed.stdout + printed.stderr
    assert "NOTES_TOKEN" in printed.stderr  # told which variables the client must pass
    vscode = plugdeck(env, "mcp", "serve", "--print-config", "--plugin", "notes", "--vscode")
    assert json.loads(vscode.stdout)["servers"]["plugdeck"]["env"]["NOTES_TOKEN"] == "${env:NOTES_TOKEN}"
    http = plugdeck(env, "mcp", "serve", "--print-config", "--vscode", "--http", "8123")
    assert json.loads(http.stdout) == {"servers": {"plugdeck": {"type": "http", "url": "http://127.0.0.1:8123/mcp"}}}
