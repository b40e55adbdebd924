"""plugdeck as an MCP server (`plugdeck mcp serve`), driven by the official SDK's client over stdio
and Streamable HTTP, checked by the HTTP security rules and the official conformance suite."""

import json
import os
import re
import shutil
import subprocess

import httpx
import pytest
from conftest import GARBAGE_SERVER, PLUGDECK, PYTHON, plugdeck, serve_http, write_script

from mcp import Client, MCPError, StdioServerParameters
from plugdeck.plugins.mcp import mcp_plugin

QUESTION = "What is 17.5% of 2,340, plus 12?"
# The conformance scenarios that apply to a server of tools without resources, prompts, logging,
# completions or the suite's own fixture tools (test_simple_text, test_image_content, ...).
APPLICABLE = {"server-initialize", "ping", "tools-list", "server-sse-multiple-streams", "dns-rebinding-protection"}


def server_env(cli_env):
    keep = ("HOME", "PLUGDECK_HOME", "XDG_CONFIG_HOME", "PATH")
    return {key: cli_env[key] for key in keep}


async def check_plugdeck_session(client):
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"calculator.calculate", "ask"} <= set(listed)
    calculate = listed["calculator.calculate"]
    assert calculate.input_schema["required"] == ["expression"] and calculate.annotations.read_only_hint

    result = await client.call_tool("calculator.calculate", {"expression": "17.5% of 2,340 + 12"})
    assert not result.is_error and result.structured_content["result"] == "421.5"
    assert json.loads(result.content[0].text)["result"] == "421.5"

    answer = await client.call_tool("ask", {"question": QUESTION})
    assert not answer.is_error and answer.content[0].text == "421.5"

    wrong = await client.call_tool("calculator.calculate", {"expression": 12})
    assert wrong.is_error and wrong.content[0].text.startswith("invalid_arguments:")
    with pytest.raises(MCPError, match="Unknown tool: nothing.here"):
        await client.call_tool("nothing.here", {})


async def test_stdio_server_with_the_official_client(cli_env, tmp_path):
    shouter = write_script(tmp_path, "garbage_server.py", GARBAGE_SERVER)
    assert plugdeck(cli_env, "plugins", "add", "mcp", "--name", "loud", "--yes", "--", PYTHON, str(shouter)).returncode == 0
    params = StdioServerParameters(command=PLUGDECK[0], args=[*PLUGDECK[1:], "mcp", "serve"],
                                   env=server_env(cli_env))
    async with Client(params, cache=None) as client:
        assert client.server_info.name == "plugdeck"
        await check_plugdeck_session(client)
        # A write tool passes plugdeck's policy like a call from the model: here no one confirms it.
        shout = next(t for t in (await client.list_tools()).tools if t.name == "loud.shout")
        assert shout.annotations.read_only_hint is False
        refused = await client.call_tool("loud.shout", {"text": "hi"})
        assert refused.is_error and refused.content[0].text.startswith("rejected:")
        assert "plugdeck mcp serve --yes" in refused.content[0].text


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """`plugdeck mcp serve --http 0` in a subprocess; yields its URL."""
    home = tmp_path_factory.mktemp("serve-home")
    env = {**os.environ, "HOME": str(home), "PLUGDECK_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config")}
    process, url = serve_http(env)
    yield url
    process.terminate()
    process.wait(timeout=10)


async def test_streamable_http_server_with_the_official_client(http_server):
    async with Client(http_server, cache=None) as client:
        assert client.server_info.name == "plugdeck"
        await check_plugdeck_session(client)


async def test_plugdecks_http_server_as_an_mcp_plugin_of_plugdeck(http_server):
    # Both directions at once: the client side over Streamable HTTP, against plugdeck's own server.
    remote = await mcp_plugin("remote", url=http_server)
    try:
        tool = remote.tool("calculator.calculate")
        assert tool.effect == "read" and tool.untrusted and tool.qualified_name == "remote.calculator.calculate"
        assert (await tool.call({"expression": "2^10"}))["result"] == "1024"
        assert await remote.tool("ask").call({"question": QUESTION}) == "421.5"
    finally:
        await remote.close()


def test_http_server_rejects_foreign_origins_and_hosts(http_server):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    evil = httpx.post(http_server, json=ping, headers={**headers, "Origin": "http://evil.example"})
    assert evil.status_code == 403
    rebound = httpx.post(http_server, json=ping, headers={**headers, "Host": "evil.example"})
    assert rebound.status_code == 421
    local = httpx.post(http_server, json=ping, headers={**headers, "Origin": "http://localhost:5173"})
    assert local.status_code not in (403, 421)


def node_major() -> int:
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return int(version.lstrip("v").split(".")[0]) if version else 0


def test_official_conformance_suite(http_server, tmp_path, tmp_path_factory):
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed: the official MCP conformance suite runs on Node.js")
    # 0.1.14 and later import fs.globSync, which needs Node 22; 0.1.13 is the last that runs on Node 20.
    package = "@modelcontextprotocol/conformance" + ("" if node_major() >= 22 else "@0.1.13")
    cache = tmp_path_factory.getbasetemp().parent / "plugdeck-npm-cache"  # kept between test sessions
    env = {**os.environ, "npm_config_cache": str(cache), "HOME": str(tmp_path), "npm_config_update_notifier": "false"}
    out = tmp_path / "results"
    done = subprocess.run([npx, "-y", package, "server", "--url", http_server, "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    results = {}
    for checks in out.glob("*/checks.json"):
        scenario = re.sub(r"^server-|-\d{4}-\d{2}-\d{2}T.*$", "", checks.parent.name)
        statuses = [check["status"] for check in json.loads(checks.read_text())]
        results[scenario] = "FAILURE" not in statuses and "SUCCESS" in statuses
    assert results, f"the conformance suite produced no results:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    print(f"\n{package}: " + ", ".join(f"{name} {'pass' if ok else 'fail'}" for name, ok in sorted(results.items())))
    assert {name for name in APPLICABLE if not results.get(name)} == set()
