"""agentbench's smoke configuration, as CI runs it: every agent gets every task family right,
under both decode assumptions, and the mock's honesty checks bite.

Correctness only: no timing is asserted. The structural facts checked here (how many model calls
each planner needs, that plugdeck's tool loop and LangGraph send the model the very same prompts)
come from the mock server's own counts and are deterministic. The mock writes a call only from
what the request told it: agents shown argument names and types alone fail the timetable family,
and a request missing a tool, an argument's format, an enum value or the system prompt is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGDECK_AGENTS = {"plugdeck-loop", "plugdeck-plan", "plugdeck-auto"}
GROUPS = {"par2", "par4", "par8", "par16", "chain2", "chain3", "chain5", "diamond2", "diamond3", "diamond4",
          "mixed", "math", "retrieval", "dynamic", "timetable"}
STYLES = ["envelope", "bare"]


def langgraph_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("langgraph", "langchain_openai"))


def agentbench(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDECK_", "LANGSMITH_", "LANGCHAIN_"))}
    env = {**clean, "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    return subprocess.run([sys.executable, "-m", "bench.agentbench", "--smoke", "--quiet", *arguments], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_smoke_configuration_gets_every_family_right(tmp_path):
    result = agentbench(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["failed_runs"] == 0 and document["failures"] == []
    assert document["tool_call_tokens"] == STYLES

    rows = {(row["group"], row["agent"]): row for row in document["latency"]}
    ran = {agent for _, agent in rows}
    assert PLUGDECK_AGENTS <= ran
    for (group, agent), row in rows.items():
        assert row["ok"] == "2/2", (group, agent, row)  # once under each decode assumption
    assert {group for group, _ in rows} == GROUPS
    # Both decode assumptions, side by side, in every row and target; a target quotes the lower.
    for row in rows.values():
        assert all(row[f"{field}_{style}"] is not None for field in ("wall_p50_s", "prompt_tokens")
                   for style in STYLES)
    for target in document["results"]:
        measured = [target[f"measured_{style}"] for style in STYLES]
        if None not in measured:
            assert target["measured"] == (min(measured) if target["goal"].startswith(">=") else max(measured))
    # A native tool call costs its JSON envelope, or less: only under `envelope` does it cost more.
    loop = rows[("par8", "plugdeck-loop")]
    assert loop["completion_tokens_envelope"] > loop["completion_tokens_bare"]
    plan = rows[("par8", "plugdeck-plan")]
    assert plan["completion_tokens_envelope"] == plan["completion_tokens_bare"]  # a plan is text either way

    # The compiled plan answers a 3-step chain in 2 model calls; the tool loop needs 4. A
    # branch-dependent task makes the plan replan (plan, join, plan, join).
    assert rows[("chain3", "plugdeck-plan")]["model_calls"] == 2
    assert rows[("chain3", "plugdeck-loop")]["model_calls"] == 4
    assert rows[("dynamic", "plugdeck-plan")]["model_calls"] == 4
    throughput = {(row["concurrency"], row["agent"], row["tool_call_tokens"]) for row in document["throughput"]}
    assert {(16, agent, style) for agent in PLUGDECK_AGENTS for style in STYLES} <= throughput

    if langgraph_installed():
        assert "langgraph" in ran and document["skipped_agents"] == []
        assert document["tool_schemas_identical"]
        for group in GROUPS:
            # Same tools, same system prompt, same conversation: the model sees identical prompts.
            for style in STYLES:
                field = f"prompt_tokens_{style}"
                assert rows[(group, "plugdeck-loop")][field] == rows[(group, "langgraph")][field]
            assert rows[(group, "langgraph")]["model_calls"] == rows[(group, "plugdeck-loop")]["model_calls"]
    else:
        assert "langgraph" in document["skipped_agents"] and "langgraph" not in ran
        warnings.warn("LangGraph is not installed, so agentbench ran plugdeck's planners only "
                      "(install the bench extra to compare: pip install -e '.[bench]')")


def test_agents_shown_only_argument_names_and_types_fail_where_the_schema_matters(tmp_path):
    """The control agents see what plugdeck's plan prompt showed before: tool names, descriptions,
    argument names and types. The timetable family's date format and direction values are only in
    the schema, so the mock will not write those calls: every such run fails, and says why."""
    result = agentbench(tmp_path, "--families", "par2,timetable", "--agents",
                        "plugdeck-plan-names-only,plugdeck-loop-names-only", "--cpu-agents", "", "--concurrency", "")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    document = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {(row["group"], row["agent"]): row for row in document["latency"]}
    for agent in ("plugdeck-plan-names-only", "plugdeck-loop-names-only"):
        assert rows[("par2", agent)]["ok"] == "2/2"  # nothing there hangs on a parameter's schema
        assert rows[("timetable", agent)]["ok"] == "0/2"
    problems = [failure["problems"][0] for failure in document["failures"] if failure["task"].startswith("timetable")]
    assert len(problems) == 4 and all("gives the form of trains.date" in p for p in problems), problems
    assert "Failed runs" in result.stdout and "timetable-0" in result.stdout


# ---- the mock's honesty checks, request by request ---------------------------------------------------

@pytest.fixture(scope="module")
def bench_modules():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bench.agentbench import oracle, runners, tasks

    return oracle, runners, tasks


def _plan_request(tasks_module, question: str) -> list[dict]:
    """The messages of plugdeck's real plan call for `question`, as agentbench's plan agent sends them."""
    import asyncio

    from plugdeck import Agent, ScriptedModel, tool_from_schema
    from bench.agentbench import tools

    seen = []
    model = ScriptedModel([lambda messages, specs: seen.append(messages) or "not a plan", "done"])
    wrapped = [tool_from_schema(t.name, t.description, t.parameters, tools.make_callable(t)) for t in tools.TOOLS]
    agent = Agent(model, tools=wrapped, system_prompt=tasks_module.SYSTEM_PROMPT, planner="plan")
    asyncio.run(agent.run(f"[run 000001] {question}"))
    return seen[0]


def test_the_mock_plans_only_from_what_the_plan_prompt_says(bench_modules):
    oracle, _, tasks = bench_modules
    everything = tasks.all_tasks()
    task = tasks.build("timetable", 0)
    messages = _plan_request(tasks, task.question)
    system = messages[0]["content"]

    def reply_to(text: str):
        return oracle.respond({"messages": [{"role": "system", "content": text}, *messages[1:]]}, everything)

    honest = reply_to(system)
    assert honest.error is None and honest.mode == "plan"
    assert 'trains(station="' in honest.text and '"2026-' in honest.text and 'direction="down"' in honest.text
    trains_lines = oracle.plan_tools(system)["trains"]
    assert trains_lines.startswith("- trains(") and "YYYY-MM-DD" in trains_lines
    cases = {
        "tool missing": (system.replace("\n" + trains_lines, ""), "describes the tool 'trains'"),
        "date format missing": (system.replace("YYYY-MM-DD", "the usual way"), "form of trains.date"),
        "enum value missing": (system.replace('"down" | "up"', '"down" | "upward"'), '"up" among the values'),
        "system prompt missing": (system.replace(tasks.SYSTEM_PROMPT, ""), "system prompt was not sent"),
        "plan format missing": (system.replace("`$N`", "results"), "does not explain `$N`"),
    }
    for name, (text, reason) in cases.items():
        reply = reply_to(text)
        assert reply.error and reason in reply.error, (name, reply.error)
        assert reply.text.startswith("[agentbench mock: cannot continue")  # the run visibly goes wrong


def test_the_mock_calls_tools_only_as_their_native_schemas_say(bench_modules):
    oracle, runners, tasks = bench_modules
    from bench.agentbench import tools

    everything = tasks.all_tasks()
    task = tasks.build("timetable", 1)
    messages = [{"role": "system", "content": tasks.SYSTEM_PROMPT},
                {"role": "user", "content": f"[run 000002] {task.question}"}]

    def schemas(shown):
        return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": shown(t)}} for t in tools.TOOLS]

    honest = oracle.respond({"messages": messages, "tools": schemas(lambda t: t.parameters)}, everything)
    assert honest.error is None and [name for _, name, _ in honest.tool_calls] == ["trains", "trains"]
    assert {json.loads(arguments)["direction"] for _, _, arguments in honest.tool_calls} == {"down", "up"}
    terse = oracle.respond({"messages": messages, "tools": schemas(runners.names_and_types)}, everything)
    assert terse.error and "form of trains.date" in terse.error and terse.tool_calls == []
    without = oracle.respond({"messages": messages, "tools": [s for s in schemas(lambda t: t.parameters)
                                                              if s["function"]["name"] != "trains"]}, everything)
    assert without.error and "describes the tool 'trains'" in without.error
