"""Replay: a stored run played again with its recorded model outputs against today's code."""

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.assemble import ReplayAgents, load_plugins
from plugdeck.config import load_config
from plugdeck.ops.run_replay import replay_run
from plugdeck.plugins.calculator import plugin as calculator

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]
# `plugdeck runs replay` as its own program: the command function, run by typer as the CLI runs it.
REPLAY = [sys.executable, "-c", "import typer; from plugdeck.cli.runs_replay import replay_command; typer.run(replay_command)"]
PIZZERIA = Path(__file__).resolve().parents[2] / "examples" / "pizzeria"
QUESTION = "What is 17.5% of 2,340, plus 12?"


@pytest.fixture
def config(env, tmp_path, monkeypatch):
    """The same configuration in this process: data under tmp_path, today's plugdeck.toml in tmp_path."""
    for name in ("HOME", "PLUGDECK_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, env[name])
    for name in os.environ:
        if name.startswith("PLUGDECK_") and name != "PLUGDECK_HOME":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return load_config()


def run(command, env, cwd, *args):
    return subprocess.run([*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_a_stored_run_replays_exactly_and_a_policy_change_shows(env, tmp_path):
    asked = run(PLUGDECK, env, tmp_path, "ask", "--json", QUESTION)
    run_id = json.loads(asked.stdout)["run_id"]

    same = run(REPLAY, env, tmp_path, run_id[:14])
    assert same.returncode == 0, same.stderr
    assert f"replay of run {run_id}" in same.stdout and "same" in same.stdout
    report = json.loads(run(REPLAY, env, tmp_path, run_id, "--json").stdout)
    assert report["same"] and report["differences"] == [] and report["planner"] == "loop"
    assert report["after"] == report["before"]
    assert report["before"]["tool_calls"] == [{"tool": "calculator.calculate",
                                               "arguments": {"expression": "17.5% of 2,340 + 12"}, "outcome": "ok",
                                               "result": {"expression": "17.5% of 2,340 + 12", "result": "421.5",
                                                          "exact": True}}]

    # Today's policy (plugdeck.toml) denies the calculator: the replay says what changed, and fails.
    (tmp_path / "plugdeck.toml").write_text('[policy]\ndeny = ["calculator.*"]\n')
    changed = run(REPLAY, env, tmp_path, run_id)
    assert changed.returncode == 1
    assert "1 difference(s)" in changed.stdout and "now denied" in changed.stdout
    report = json.loads(run(REPLAY, env, tmp_path, run_id, "--json").stdout)
    [difference] = report["differences"]
    assert difference["what"] == "tool_result" and difference["index"] == 0
    assert difference["before"]["outcome"] == "ok" and difference["after"]["outcome"] == "denied"

    # A policy file given for the replay wins over the project's.
    (tmp_path / "allow.toml").write_text('[policy]\nallow = ["calculator.*"]\n')
    assert run(REPLAY, env, tmp_path, run_id, "--policy", "allow.toml").returncode == 0

    missing = run(REPLAY, env, tmp_path, "ffffffff")
    assert missing.returncode == 1 and "no run with id 'ffffffff'" in missing.stderr and "Traceback" not in missing.stderr


async def test_tools_that_are_gone_and_turns_that_run_out_are_differences(config, tmp_path):
    @tool
    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    turns = [{"tool_calls": [{"name": "double", "arguments": {"x": 21}},
                             {"name": "calculate", "arguments": {"expression": "2+2"}}],
              "usage": {"prompt_tokens": 12, "completion_tokens": 3}}, "42 and 4"]
    with RunStore(config.runs_db) as store:
        recorded = await Agent(ScriptedModel(turns), [calculator], tools=[double], sinks=[store.record]).run("go")
        store.flush()
        stored = store.get_run(recorded.id)
    report = await replay_run(stored, config, ReplayAgents(config))
    assert report.notes == ["tool 'double' was given in code, not by a plugin; the replay runs without it"]
    [difference] = report.differences
    assert difference["what"] == "tool_result" and difference["after"]["outcome"] == "unknown_tool"
    assert report.after["tool_calls"][1] == report.before["tool_calls"][1]  # the calculator call is unchanged
    assert report.after["answer"] == "42 and 4"  # the recorded model said the same thing

    # A run whose model failed replays to the same failure.
    with RunStore(config.runs_db) as store:
        failed = await Agent(ScriptedModel([]), [calculator], sinks=[store.record]).run("no turns")
        store.flush()
        stored = store.get_run(failed.id)
    report = await replay_run(stored, config, ReplayAgents(config))
    assert report.same and report.after["status"] == "error" and report.after["model_calls"] == 1

    # Today's agent stops after one step: the second recorded turn is never used.
    config.max_steps = 1
    with RunStore(config.runs_db) as store:
        calculate = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "2+2"}}]}
        two_steps = await Agent(ScriptedModel([calculate, "4"]), [calculator], sinks=[store.record]).run("two steps")
        store.flush()
        stored = store.get_run(two_steps.id)
    report = await replay_run(stored, config, ReplayAgents(config))
    assert [d["what"] for d in report.differences] == ["model_calls", "answer", "status"]
    assert report.after["status"] == "max_steps" and report.before["status"] == "ok"
    assert report.differences[0]["message"] == "model calls: was 2, now 1"


async def test_a_planned_run_replays_the_same(config):
    plan = '1. calculate(expression="17.5% of 2340")\n2. calculate(expression="$1 + 12")\n3. join()\n'
    with RunStore(config.runs_db) as store:
        agent = Agent(ScriptedModel([plan, "421.5"]), [calculator], planner="plan", sinks=[store.record])
        recorded = await agent.run(QUESTION)
        store.flush()
        stored = store.get_run(recorded.id)
    assert recorded.answer == "421.5" and recorded.usage.tool_calls == 2
    report = await replay_run(stored, config, ReplayAgents(config))
    assert report.planner == "plan" and report.same, report.differences
    assert [c["result"]["result"] for c in report.after["tool_calls"]] == ["409.5", "421.5"]


def _pizzeria_module():
    if "pizzeria_server" not in sys.modules:  # the example is a script, not a package: load it by path
        spec = importlib.util.spec_from_file_location("pizzeria_server", PIZZERIA / "server.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["pizzeria_server"]


async def test_a_replay_never_repeats_a_side_effect(config, env, tmp_path):
    server = _pizzeria_module().make_server(port=0, quiet=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        added = run(PLUGDECK, env, tmp_path, "plugins", "add", "openapi", str(PIZZERIA / "openapi.yaml"),
                    "--name", "pizzeria", "--base-url", url, "--allow-private")
        assert added.returncode == 0, added.stderr
        order = {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00"}
        turns = [{"tool_calls": [{"name": "list_menu", "arguments": {}}]},
                 {"tool_calls": [{"name": "place_order", "arguments": order}]}, "Your order is placed."]
        with RunStore(config.runs_db) as store:
            agent = Agent(ScriptedModel(turns), load_plugins(config, ["pizzeria"]), confirm=lambda action: True,
                          sinks=[store.record])
            recorded = await agent.run("Two margheritas for 7pm, please")
            await agent.aclose()
            store.flush()
            stored = store.get_run(recorded.id)
        orders = server.RequestHandlerClass.shop.orders
        outcomes = [(e["tool"], e["error"]) for e in stored["events"] if e["type"] == "tool_finished"]
        assert recorded.status == "ok" and len(orders) == 1, outcomes

        report = await replay_run(stored, config, ReplayAgents(config))
        assert report.same, report.differences
        assert len(orders) == 1  # the order was played back, not placed again
        assert [c["tool"] for c in report.after["tool_calls"]] == ["pizzeria.list_menu", "pizzeria.place_order"]
    finally:
        server.shutdown()
        server.server_close()

    # With the service gone, the read call fails today; the write call is still only played back.
    report = await replay_run(stored, config, ReplayAgents(config))
    [difference] = report.differences
    assert difference["what"] == "tool_result" and difference["before"]["tool"] == "pizzeria.list_menu"
    assert difference["after"]["outcome"] != "ok"
    assert report.after["tool_calls"][1] == report.before["tool_calls"][1]
