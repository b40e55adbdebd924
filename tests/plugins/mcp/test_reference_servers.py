"""The official reference servers from PyPI as plugdeck plugins: mcp-server-time through the real
CLI, mcp-server-fetch against a page served on loopback, mcp-server-git on a scratch repository."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import BIN, plugdeck

from plugdeck import Agent, ScriptedModel
from plugdeck.plugins.mcp import mcp_plugin
from plugdeck.tools import ToolError


def test_time_server_added_and_called_through_the_cli(cli_env):
    added = plugdeck(cli_env, "plugins", "add", "mcp", "--name", "time", "--yes", "--",
                     "mcp-server-time", "--local-timezone", "UTC")
    assert added.returncode == 0, added.stderr
    assert f"{BIN / 'mcp-server-time'} --local-timezone UTC" in added.stdout  # the exact program approved
    assert "time.get_current_time (read)" in added.stdout and "time.convert_time (read)" in added.stdout

    listed = {p["name"]: p for p in json.loads(plugdeck(cli_env, "plugins", "--json").stdout)}
    assert {t["name"]: t["effect"] for t in listed["time"]["tools"]} == {
        "convert_time": "read", "get_current_time": "read"}

    called = plugdeck(cli_env, "tools", "call", "time.convert_time",
                      '{"source_timezone": "Europe/Paris", "time": "12:30", "target_timezone": "Asia/Tokyo"}')
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result["source"]["datetime"].endswith("T12:30:00+01:00") or result["source"]["datetime"].endswith(
        "T12:30:00+02:00")
    assert result["target"]["timezone"] == "Asia/Tokyo" and result["time_difference"] in ("+8.0h", "+7.0h")

    bad = plugdeck(cli_env, "tools", "call", "time.get_current_time", '{"timezone": "Mars/Olympus_Mons"}')
    assert bad.returncode == 1
    assert "MCP server 'time' reported an error from get_current_time" in bad.stderr
    assert "Mars/Olympus_Mons" in bad.stderr and "Traceback" not in bad.stderr


# ---- mcp-server-fetch ------------------------------------------------------------------------------

PAGE = b"""<html><head><title>Pizzeria</title></head><body>
<h1>Today's pizzas</h1><p>Margherita costs <b>9.50</b> euros.</p></body></html>"""
ROBOTS = b"User-agent: *\nDisallow: /private\n"


@pytest.fixture(scope="module")
def site():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"/": PAGE, "/private": PAGE, "/robots.txt": ROBOTS}.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain" if self.path == "/robots.txt" else "text/html")
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_fetch_server_refuses_loopback_unless_allowed_and_honours_robots_txt(site):
    # By default mcp-server-fetch refuses private, loopback and link-local addresses (an SSRF guard).
    default = await mcp_plugin("fetch", command=[str(BIN / "mcp-server-fetch")])
    try:
        assert default.tool("fetch").effect == "read" and default.tool("fetch").untrusted
        with pytest.raises(ToolError) as refused:
            await default.tool("fetch").call({"url": site + "/"})
        assert refused.value.kind == "mcp_tool_error" and "--allow-private-ips" in refused.value.message
    finally:
        await default.close()

    # --allow-private-ips lets it reach the loopback page; robots.txt still applies to autonomous fetches.
    local = await mcp_plugin("fetch", command=[str(BIN / "mcp-server-fetch"), "--allow-private-ips"])
    try:
        page = await local.tool("fetch").call({"url": site + "/"})
        assert "Margherita costs **9.50** euros" in page and f"Contents of {site}/" in page
        with pytest.raises(ToolError) as robots:
            await local.tool("fetch").call({"url": site + "/private"})
        assert "robots.txt" in robots.value.message and "autonomous fetching" in robots.value.message
    finally:
        await local.close()


# ---- mcp-server-git --------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "scratch"
    path.mkdir()

    def git(*args):
        return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("config", "user.name", "Test Person")
    git("config", "user.email", "test@example.invalid")
    (path / "menu.txt").write_text("margherita\n")
    git("add", "menu.txt")
    git("commit", "-q", "-m", "First menu")
    return path, git


async def test_git_server_reads_and_writes_a_scratch_repository_through_an_agent(repo):
    path, git = repo
    plugin = await mcp_plugin("git", command=[str(BIN / "mcp-server-git"), "--repository", str(path)])
    try:
        effects = {t.name: t.effect for t in plugin.tools}
        assert effects["git_log"] == "read" and effects["git_status"] == "read"
        assert effects["git_commit"] == "write" and effects["git_reset"] == "write"

        log = await plugin.tool("git_log").call({"repo_path": str(path)})
        assert "First menu" in str(log)

        (path / "menu.txt").write_text("margherita\nquattro formaggi\n")
        asked = []
        model = ScriptedModel([
            {"tool_calls": [{"name": "git_diff_unstaged", "arguments": {"repo_path": str(path)}}]},
            {"tool_calls": [{"name": "git_add", "arguments": {"repo_path": str(path), "files": ["menu.txt"]}}]},
            {"tool_calls": [{"name": "git_commit", "arguments": {"repo_path": str(path),
                                                                 "message": "Add quattro formaggi"}}]},
            "Committed.",
        ])
        agent = Agent(model, [plugin], confirm=lambda action: asked.append(action.tool) or True)
        run = await agent.run("Commit the menu change")
        assert run.status == "ok", run.error
        diff_seen = run.tool_results[0]
        assert diff_seen.untrusted and "+quattro formaggi" in str(diff_seen.result)
        assert asked == ["git.git_add", "git.git_commit"]  # the writes waited for a person's OK
        assert "Add quattro formaggi" in git("log", "--oneline")
    finally:
        await plugin.close()
