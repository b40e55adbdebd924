"""plugdeck's knowledge bases as MCP resources (`plugdeck mcp serve --kb NAME`), read with the official
SDK's client over stdio and Streamable HTTP: each document is `kb://NAME/SOURCE`, reading it returns the
text the knowledge base holds, and the policy that governs the knowledge tool governs the reads."""

import json
import subprocess
from pathlib import Path

import pytest
from conftest import PLUGDECK, plugdeck, serve_http

from mcp import Client, MCPError, StdioServerParameters

LEAVE = "# Leave\n\nNew employees get 25 days of vacation.\n\n## Sick days\n\nA note is needed after three days.\n"
PAY = "Salaries are paid on the last working day of the month.\n"


@pytest.fixture
def kb_env(cli_env, tmp_path):
    from plugdeck.plugins.knowledge import KnowledgeBase

    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE, encoding="utf-8")
    (folder / "pay rules.txt").write_text(PAY, encoding="utf-8")  # a space: the URI must encode it
    kb = KnowledgeBase.open("handbook", Path(cli_env["PLUGDECK_HOME"]))
    kb.add([folder])
    kb.close()
    return cli_env


def stdio(env, *args):
    keep = {key: env[key] for key in ("HOME", "PLUGDECK_HOME", "XDG_CONFIG_HOME", "PATH", "PYTHONPATH") if key in env}
    return StdioServerParameters(command=PLUGDECK[0], args=[*PLUGDECK[1:], "mcp", "serve", *args], env=keep)


async def check_documents(client):
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert set(listed) == {"kb://handbook/handbook/leave.md", "kb://handbook/handbook/pay%20rules.txt"}
    assert listed["kb://handbook/handbook/leave.md"].mime_type == "text/markdown"
    leave = await client.read_resource("kb://handbook/handbook/leave.md")
    assert leave.contents[0].text == LEAVE  # chunks joined back, headings included
    pay = await client.read_resource("kb://handbook/handbook/pay%20rules.txt")
    assert pay.contents[0].text == PAY
    with pytest.raises(MCPError, match="has no document"):
        await client.read_resource("kb://handbook/handbook/missing.md")
    with pytest.raises(MCPError, match="no such resource"):
        await client.read_resource("kb://other/leave.md")


async def test_documents_as_resources_over_stdio(kb_env):
    async with Client(stdio(kb_env, "--kb", "handbook"), cache=None) as client:
        assert client.server_capabilities.resources is not None
        await check_documents(client)


async def test_documents_as_resources_over_http(kb_env):
    process, url = serve_http(kb_env, "--kb", "handbook")
    try:
        async with Client(url, cache=None) as client:
            await check_documents(client)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_the_policy_of_the_knowledge_tool_governs_reads(kb_env, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy]\ndeny = ["handbook.search_knowledge"]\n', encoding="utf-8")
    async with Client(stdio(kb_env, "--kb", "handbook", "--policy", str(policy)), cache=None) as client:
        assert (await client.list_resources()).resources == []  # not even the documents' names
        with pytest.raises(MCPError, match="denied|deny"):
            await client.read_resource("kb://handbook/handbook/leave.md")


async def test_without_a_knowledge_base_there_are_no_resources(cli_env):
    async with Client(stdio(cli_env, "--plugin", "calculator"), cache=None) as client:
        assert client.server_capabilities.resources is None
