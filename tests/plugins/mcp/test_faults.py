"""MCP servers that misbehave (R36): they crash, hang, write garbage, or are no MCP server at all.
Each gives a typed error naming the server; the run and the other plugins carry on."""

import asyncio
import os
import signal

import pytest
from conftest import ENV_SERVER, FAULTY_SERVER, GARBAGE_SERVER, NONSENSE_SERVER, PYTHON, write_script

from plugdeck import Agent, ScriptedModel
from plugdeck.plugins import registry
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.plugins.mcp import mcp_plugin
from plugdeck.plugins.mcp.pinning import approve
from plugdeck.tools import ToolError


@pytest.fixture
async def faulty(tmp_path):
    script = write_script(tmp_path, "faulty_server.py", FAULTY_SERVER)
    # Generous: a restart spawns Python and the SDK, which takes seconds on a loaded 2-core machine.
    plugin = await mcp_plugin("faulty", command=[PYTHON, str(script)], timeout=15)
    yield plugin
    await plugin.close()


async def test_a_crash_is_reported_with_the_servers_last_words_and_the_next_call_restarts_it(faulty):
    first = await faulty.tool("ok").call({"n": 1})
    with pytest.raises(ToolError) as crashed:
        await faulty.tool("boom").call({})
    assert crashed.value.kind == "mcp_crashed"
    message = crashed.value.message
    assert "MCP server 'faulty'" in message and "stopped while running boom" in message
    assert "fatal: the boom tool blew up the server" in message  # its stderr, as evidence
    assert "restarted on the next call" in message
    second = await faulty.tool("ok").call({"n": 2})
    assert first["result"].startswith("ok 1 from pid ") and second["result"].startswith("ok 2 from pid ")
    assert first["result"].split()[-1] != second["result"].split()[-1]  # a new process


async def test_a_server_killed_while_idle_is_restarted_on_next_use(faulty):
    first = (await faulty.tool("ok").call({"n": 1}))["result"]
    os.kill(int(first.split()[-1]), signal.SIGKILL)
    await asyncio.sleep(0.5)  # between calls: the crash shows as its pipe closing
    second = (await faulty.tool("ok").call({"n": 2}))["result"]  # no error: the next use restarts it
    assert second.startswith("ok 2") and second.split()[-1] != first.split()[-1]


async def test_a_hung_call_times_out_and_the_session_stays_usable(tmp_path):
    script = write_script(tmp_path, "faulty_server.py", FAULTY_SERVER)
    faulty = await mcp_plugin("faulty", command=[PYTHON, str(script)], timeout=2)
    try:
        with pytest.raises(ToolError) as hung:
            await faulty.tool("hang").call({})
        assert hung.value.kind == "timeout"
        assert "MCP server 'faulty' did not answer hang within 2 s" in hung.value.message
        assert (await faulty.tool("ok").call({"n": 3}))["result"].startswith("ok 3")
    finally:
        await faulty.close()


async def test_garbage_on_stdout_does_not_break_the_session(tmp_path):
    script = write_script(tmp_path, "garbage_server.py", GARBAGE_SERVER)
    plugin = await mcp_plugin("garbage", command=[PYTHON, str(script)])
    try:
        assert [t.name for t in plugin.tools] == ["shout"]
        assert plugin.tools[0].effect == "write"  # no readOnlyHint: a person confirms
        assert await plugin.tool("shout").call({"text": "hello"}) == "HELLO"
        assert await plugin.tool("shout").call({"text": "again"}) == "AGAIN"
    finally:
        await plugin.close()


def added(tmp_path, name, options):
    registry.add(tmp_path, name, "mcp", options)
    return registry.build(name, registry.configured(tmp_path)[name], tmp_path)


SHOUT = {"name": "shout", "description": "Upper-case a text.",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}


def approved_shout(command, **options):
    """Options as `plugins add` leaves them for a server with one approved tool, `shout`."""
    return approve({"command": command, "connect_timeout": 3, **options}, {"shout": SHOUT})


async def test_a_program_that_speaks_no_mcp_gets_a_clear_message(tmp_path):
    script = write_script(tmp_path, "nonsense.py", NONSENSE_SERVER)
    plugin = added(tmp_path, "chatty", approved_shout([PYTHON, str(script)]))
    with pytest.raises(ToolError) as failed:
        await plugin.tool("shout").call({"text": "x"})
    message = failed.value.message
    assert failed.value.kind == "mcp_unavailable"
    assert "MCP server 'chatty'" in message and "did not finish the MCP handshake within 3 s" in message
    assert "not MCP JSON-RPC" in message and "I am a friendly program" in message
    await plugin.close()


async def test_a_missing_command_and_a_missing_secret_are_explained(tmp_path, monkeypatch):
    plugin = added(tmp_path, "ghost", approved_shout(["/nonexistent/mcp-server-ghost"]))
    with pytest.raises(ToolError) as missing:
        await plugin.tool("shout").call({"text": "x"})
    assert "could not start MCP server 'ghost'" in missing.value.message and "was not found" in missing.value.message

    monkeypatch.delenv("GHOST_TOKEN", raising=False)
    plugin = added(tmp_path, "secretive", approved_shout([PYTHON, "-c", "pass"], env={"TOKEN": "GHOST_TOKEN"}))
    with pytest.raises(ToolError) as unset:
        await plugin.tool("shout").call({"text": "x"})
    assert "needs the environment variable(s) GHOST_TOKEN" in unset.value.message


async def test_a_server_that_exits_at_once_shows_its_error_and_retries_back_off(tmp_path):
    crash = [PYTHON, "-c", "import sys; sys.exit('config file /etc/ghost.toml is missing')"]
    plugin = added(tmp_path, "dead", approved_shout(crash))
    with pytest.raises(ToolError) as first:
        await plugin.tool("shout").call({"text": "x"})
    assert "MCP server 'dead'" in first.value.message
    assert "config file /etc/ghost.toml is missing" in first.value.message
    with pytest.raises(ToolError):
        await plugin.tool("shout").call({"text": "x"})  # waits out the first, short backoff, fails again
    with pytest.raises(ToolError) as third:
        await plugin.tool("shout").call({"text": "x"})  # now the backoff is longer: refused at once
    assert "failed 2 time(s) in a row" in third.value.message and "config file" in third.value.message


async def test_a_broken_server_leaves_the_run_and_the_other_plugins_working(tmp_path, faulty):
    script = write_script(tmp_path, "nonsense.py", NONSENSE_SERVER)
    broken = added(tmp_path, "chatty", approved_shout([PYTHON, str(script)], connect_timeout=1))
    model = ScriptedModel([
        {"tool_calls": [{"name": "shout", "arguments": {"text": "hi"}},
                        {"name": "boom", "arguments": {}},
                        {"name": "calculate", "arguments": {"expression": "17.5% of 2,340 + 12"}}]},
        {"tool_calls": [{"name": "ok", "arguments": {"n": 7}}]},
        "done",
    ])
    agent = Agent(model, [calculator, broken, faulty], confirm=lambda action: True)  # the person says yes
    run = await agent.run("go")
    assert run.status == "ok" and run.answer == "done"
    results = {e.tool: e for e in run.tool_results}
    assert results["chatty.shout"].error["kind"] == "mcp_unavailable"
    assert results["faulty.boom"].error["kind"] == "mcp_crashed"
    assert results["calculator.calculate"].result["result"] == "421.5"
    assert results["faulty.ok"].result["result"].startswith("ok 7")  # restarted after the crash
    assert results["faulty.ok"].untrusted and not results["calculator.calculate"].untrusted
    await agent.aclose()


async def test_a_server_sees_only_declared_variables_and_its_secrets_never_come_back(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGDECK_TEST_CANARY", "canary-5f2e9b")
    monkeypatch.setenv("UNRELATED_SECRET", "do-not-pass-me")
    script = write_script(tmp_path, "env_server.py", ENV_SERVER)
    plugin = await mcp_plugin("env", command=[PYTHON, str(script)], env={"API_TOKEN": "PLUGDECK_TEST_CANARY"})
    try:
        variable = plugin.tool("variable")
        assert await variable.call({"name": "UNRELATED_SECRET"}) == {"result": "<absent>"}  # a cleared env
        assert await variable.call({"name": "API_TOKEN"}) == {"result": "[redacted]"}  # given, never echoed back
        assert plugin.needs["secrets"] == ["PLUGDECK_TEST_CANARY"]
    finally:
        await plugin.close()


def test_an_entry_that_cannot_be_built_is_reported_and_the_rest_load(tmp_path):
    registry.add(tmp_path, "nothing", "mcp", {})
    registry.add(tmp_path, "fine", "mcp", approved_shout([PYTHON, "-c", "pass"]))
    plugins, problems = registry.build_all(tmp_path)
    assert [p.name for p in plugins] == ["fine"]
    assert problems[0].name == "nothing" and "needs either a command or a URL" in problems[0].message
