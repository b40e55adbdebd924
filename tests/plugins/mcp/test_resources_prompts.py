"""What an MCP server offers besides tools, used as desktop clients use it: its resources become
documents the model can list and read (`NAME.list_resources`, `NAME.read_resource`: read-only,
untrusted, size-capped, secrets blanked), its prompts templates a person fills in
(`plugdeck mcp prompts NAME`, `plugdeck mcp prompt NAME/PROMPT -a key=value`)."""

import json
from pathlib import Path

import pytest
from conftest import GARBAGE_SERVER, PYTHON, plugdeck, write_script

from plugdeck.plugins import registry
from plugdeck.plugins.mcp import build_plugin
from plugdeck.plugins.mcp.prompts import PromptError, fill_prompt
from plugdeck.plugins.mcp.resources import MAX_CHARS
from plugdeck.tools import ToolError

TOKEN = "tok-Hq2Wm9Zx4Rv7Kp1Ld8"
LONG = "The launch code is 4242.\n" + "filler line of the long guide\n" * 1000  # over MAX_CHARS

DOCS_SERVER = """
    import os
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("docs")

    @server.tool()
    def ping() -> str:
        "Answer pong."
        return "pong"

    @server.resource("notes://guide", name="guide", description="The long guide", mime_type="text/markdown")
    def guide() -> str:
        return open(os.environ["GUIDE_FILE"]).read()

    @server.resource("notes://leaky", name="leaky")
    def leaky() -> str:
        return "the token is " + os.environ["DOCS_TOKEN"]

    @server.prompt(description="Review a pull request")
    def review(pr: str, focus: str = "bugs") -> str:
        return f"Please review pull request #{pr}, looking for {focus}."

    server.run()
"""


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """The docs server, added once with --yes; its env: the guide's path and a secret token."""
    from cli_env import cli_environment

    folder = tmp_path_factory.mktemp("docs")
    script = write_script(folder, "docs_server.py", DOCS_SERVER)
    guide = folder / "guide.md"
    guide.write_text(LONG, encoding="utf-8")
    env = cli_environment(folder, GUIDE_FILE=str(guide), DOCS_TOKEN=TOKEN)
    added = plugdeck(env, "plugins", "add", "mcp", "--name", "docs", "--env", "GUIDE_FILE=GUIDE_FILE",
                     "--env", "DOCS_TOKEN=DOCS_TOKEN", "--yes", "--", PYTHON, str(script))
    assert added.returncode == 0, added.stderr
    assert "docs.read_resource" in added.stdout and "plugdeck mcp prompts docs" in added.stdout
    return env


@pytest.fixture
def options(docs, monkeypatch):
    """The added server's stored options, with its variables set in this process (as `ask` would have them)."""
    monkeypatch.setenv("GUIDE_FILE", docs["GUIDE_FILE"])
    monkeypatch.setenv("DOCS_TOKEN", TOKEN)
    return registry.configured(Path(docs["PLUGDECK_HOME"]))["docs"]["options"]


async def use_tools(options, work):
    plugin = build_plugin("docs", options)
    try:
        return await work({tool.name: tool for tool in plugin.tools})
    finally:
        await plugin.close()


async def test_resources_are_listed_and_read_in_capped_parts(options):
    async def work(tools):
        listed = {r["uri"]: r for r in (await tools["list_resources"].func())["resources"]}
        first = await tools["read_resource"].func(uri="notes://guide")
        rest = await tools["read_resource"].func(uri="notes://guide", start=MAX_CHARS)
        return listed, first, rest

    listed, first, rest = await use_tools(options, work)
    assert listed["notes://guide"]["mimeType"] == "text/markdown"
    assert listed["notes://guide"]["description"] == "The long guide"
    assert first["text"].startswith("The launch code is 4242.") and len(first["text"]) == MAX_CHARS
    assert first["truncated"] is True and first["next_start"] == MAX_CHARS
    assert first["text"] + rest["text"] == LONG and "truncated" not in rest


async def test_a_resource_never_carries_a_secret_on(options):
    leaky = await use_tools(options, lambda tools: tools["read_resource"].func(uri="notes://leaky"))
    assert leaky["text"].startswith("the token is") and TOKEN not in json.dumps(leaky)


async def test_an_unknown_resource_is_a_clear_error(options):
    with pytest.raises(ToolError, match="MCP server 'docs' refused the call to resources/read notes://nothing"):
        await use_tools(options, lambda tools: tools["read_resource"].func(uri="notes://nothing"))


def test_resource_tools_read_only_and_untrusted(options):
    assert options["resources"] is True and options["prompts"] is True
    plugin = build_plugin("docs", options)
    tools = {tool.name: tool for tool in plugin.tools}
    assert set(tools) == {"ping", "list_resources", "read_resource"}
    for name in ("list_resources", "read_resource"):
        assert tools[name].effect == "read" and tools[name].untrusted and tools[name].egress == "mcp:docs"


def test_a_server_without_resources_gets_no_resource_tools(cli_env, tmp_path):
    script = write_script(tmp_path, "garbage_server.py", GARBAGE_SERVER)  # declares tools only
    assert plugdeck(cli_env, "plugins", "add", "mcp", "--name", "loud", "--yes", "--", PYTHON, str(script)).returncode == 0
    options = registry.configured(Path(cli_env["PLUGDECK_HOME"]))["loud"]["options"]
    assert "resources" not in options and "prompts" not in options
    assert [tool.name for tool in build_plugin("loud", options).tools] == ["shout"]


def test_prompts_listed_and_filled_in(docs):
    listed = plugdeck(docs, "mcp", "prompts", "docs")
    assert listed.returncode == 0, listed.stderr
    assert "docs/review  -a pr=... -a focus=... (optional)" in listed.stdout and "Review a pull request" in listed.stdout
    filled = plugdeck(docs, "mcp", "prompt", "docs/review", "-a", "pr=12", "-a", "focus=naming")
    assert filled.returncode == 0 and filled.stdout.strip() == "Please review pull request #12, looking for naming."


@pytest.mark.parametrize("prompt, arguments, message", [
    ("review", {}, "missing pr; it takes -a pr=... -a focus=..."),
    ("review", {"pr": "1", "colour": "red"}, "unknown colour"),
    ("nothing", {}, r"has no prompt 'nothing' \(it has: review\)"),
])
async def test_prompt_mistakes_are_explained(options, prompt, arguments, message):
    with pytest.raises(PromptError, match=message):
        await fill_prompt("docs", options, prompt, arguments)


@pytest.mark.parametrize("prompt, message", [
    ("docs", "name the prompt as SERVER/NAME"),
    ("nobody/review", "no MCP server named 'nobody'"),
])
def test_prompt_names_are_checked_before_anything_starts(docs, prompt, message):
    result = plugdeck(docs, "mcp", "prompt", prompt)
    assert result.returncode == 1 and message in result.stderr
