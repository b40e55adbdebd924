"""R16 with R18: a stdio MCP server added with `plugins add mcp --sandbox` runs in the sandbox: its tools
work, its mapped secret reaches it, and it cannot read the home or the run store, reach the network,
or see plugdeck's environment."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from cli_env import cli_environment

from plugdeck.plugins.mcp import spec_from_options
from plugdeck.plugins.mcp.client import MCPConnection, result_to_output

SERVER = """
    import errno
    import os
    import socket

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("walled")


    @server.tool()
    def read(path: str) -> str:
        \"\"\"A file's text, or the error.\"\"\"
        try:
            with open(path) as f:
                return f.read()
        except OSError as exc:
            return "ERR:" + errno.errorcode.get(exc.errno, str(exc))


    @server.tool()
    def facts() -> dict:
        \"\"\"Who runs this, with what environment, and whether the network is reachable.\"\"\"
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=1).close()
            net = "connected"
        except OSError as exc:
            net = "ERR:" + errno.errorcode.get(exc.errno or 0, str(exc))
        return {"uid": os.getuid(), "env": dict(os.environ), "net": net, "home": os.path.exists(os.path.expanduser("~/.ssh"))}


    server.run()
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    data = tmp_path / "data"
    data.mkdir()
    (data / "runs.db").write_text("run store")
    folder = tmp_path / "srv"
    folder.mkdir()
    folder.chmod(0o755)
    script = folder / "walled_server.py"
    script.write_text(textwrap.dedent(SERVER))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PLUGDECK_HOME", str(data))
    monkeypatch.setenv("WALLED_KEY", "key-in-env")
    monkeypatch.setenv("PLUGDECK_NOT_FOR_SERVERS", "plugdeck's own")
    return {"home": home, "data": data, "script": script, "tmp": tmp_path}


async def _call(connection, tool, **arguments):
    output = result_to_output("walled", tool, await connection.call(tool, arguments, 60))
    if isinstance(output, dict) and set(output) == {"result"}:  # the SDK's structured form of a plain value
        output = output["result"]
    return json.loads(output) if isinstance(output, str) and output.startswith("{") else output


async def test_a_sandboxed_mcp_server_works_and_is_walled_in(world):
    spec = spec_from_options("walled", {"command": [sys.executable, str(world["script"])],
                                        "env": {"API_KEY": "WALLED_KEY"}, "sandbox": True})
    assert "bwrap" in " ".join(spec.command) and spec.command[-1] == str(world["script"])
    connection = MCPConnection(spec, connect_timeout=60)
    try:
        assert set(await connection.list_tools()) == {"read", "facts"}
        seen = await _call(connection, "facts")
        for path in (world["home"] / ".ssh" / "id_rsa", world["data"] / "runs.db", "/etc/shadow"):
            assert (await _call(connection, "read", path=str(path))).startswith("ERR:"), path
        assert (await _call(connection, "read", path=str(world["script"]))).startswith("\nimport errno")
    finally:
        await connection.close()
    assert seen["uid"] != 0  # its own unprivileged UID (or, started by a user, that user in a namespace)
    assert seen["env"]["API_KEY"] == "key-in-env"  # its mapped secret, in its environment as for any server
    assert "PLUGDECK_NOT_FOR_SERVERS" not in seen["env"] and "WALLED_KEY" not in seen["env"]
    assert seen["env"]["HOME"] == "/tmp" and not seen["home"]
    assert seen["net"].startswith("ERR:")


def test_plugins_add_mcp_sandbox_stores_the_choice_and_refuses_it_for_a_url(world):
    (world["tmp"] / "cli").mkdir()
    env = cli_environment(world["tmp"] / "cli")
    added = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins", "add", "mcp", "--name", "walled",
                            "--sandbox", "--yes", "--", sys.executable, str(world["script"])],
                           env=env, capture_output=True, text=True, timeout=180)
    assert added.returncode == 0, added.stderr + added.stdout
    listed = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    walled = next(p for p in json.loads(listed.stdout) if p["name"] == "walled")
    assert "bwrap" in " ".join(walled["needs"]["mcp"]["command"])
    refused = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins", "add", "mcp", "--name", "far",
                              "--sandbox", "--yes", "--url", "http://127.0.0.1:9/mcp"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--sandbox runs a server's command" in refused.stderr + refused.stdout
