"""The agent core's public face: the Run as a record, pauses as values, one admission chain, planners,
per-run limits, dependencies for tools, structured output, and the sync and async entry points."""

import ast
import asyncio
import pathlib

import pytest
from pydantic import BaseModel

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.agent.planner import Planner
from plugdeck.agent.run import Run
from plugdeck.events import ModelCalled, RunFinished, ToolFinished
from plugdeck.tools import RunContext
from plugdeck.usage import Limits

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "plugdeck"
SENT: list[str] = []


@tool(effect="write")
def send(text: str) -> str:
    """Send a message."""
    SENT.append(text)
    return "sent"


@pytest.fixture(autouse=True)
def nothing_sent():
    SENT.clear()


def send_turns(text="hi", answer="Sent."):
    return [{"tool_calls": [{"name": "send", "arguments": {"text": text}}]}, answer]


async def test_a_paused_run_is_a_value_any_agent_of_the_process_resumes():
    run = await Agent(ScriptedModel(send_turns()), tools=[send]).run("say hi")
    assert run.status == "waiting" and not run.in_turn and not SENT  # the turn ended: nothing runs meanwhile
    (action,) = run.waiting
    other = Agent(ScriptedModel(["Sent it."]), tools=[send])  # another agent, same tools: the one way on
    resumed = await other.resume(run.id, {action.id: True})
    assert resumed is run and run.status == "ok" and SENT == ["hi"]
    with pytest.raises(KeyError):
        await other.resume(run.id, {action.id: True})  # nothing of it waits any more


async def test_a_confirmer_is_the_same_path_with_the_decision_given_at_once():
    asked = []
    agent = Agent(ScriptedModel(send_turns()), tools=[send], confirm=lambda action: asked.append(action) or True)
    run = await agent.run("say hi")
    assert run.status == "ok" and SENT == ["hi"] and asked[0].tool == "send"
    kinds = [e.type for e in run.events]
    assert kinds.index("confirmation_requested") < kinds.index("confirmation_answered") < kinds.index("tool_finished")


async def test_follow_yields_the_events_as_they_come_and_cancel_stops_the_run():
    gate = asyncio.Event()

    @tool
    async def slow() -> str:
        """Wait."""
        await gate.wait()
        return "done"

    agent = Agent(ScriptedModel([{"tool_calls": [{"name": "slow", "arguments": {}}]}, "ok"]), tools=[slow])
    run = agent.start("wait")
    seen = []
    async for batch in run.follow():
        seen += [e.type for _, e in batch]
        if "tool_started" in seen and run.status == "running":
            assert run.cancel()
    assert run.status == "cancelled" and seen[-1] == "run_finished" and isinstance(run.events[-1], RunFinished)
    assert not run.cancel()  # nothing left to stop


async def test_per_run_limits_apply_on_top_of_the_agents():
    turns = [{"tool_calls": [{"name": "send", "arguments": {"text": str(i)}}]} for i in range(3)] + ["done"]
    agent = Agent(ScriptedModel(turns), tools=[send], confirm=lambda a: True, limits=Limits(max_tool_calls=5))
    run = await agent.run("send three", limits=Limits(max_tool_calls=1))
    assert SENT == ["0"] and run.usage.calls_admitted == 1
    refused = [e for e in run.tool_results if e.error]
    assert refused and refused[0].error["kind"] == "budget"


async def test_tools_get_the_runs_dependencies_and_the_model_never_sees_them():
    class Deps(BaseModel):
        user: str

    @tool
    def whoami(ctx: RunContext[Deps]) -> str:
        """Who is asking."""
        return f"{ctx.deps.user} in {ctx.run_id}"

    model = ScriptedModel([{"tool_calls": [{"name": "whoami", "arguments": {}}]}, "You are ada."])
    run = await Agent(model, tools=[whoami]).run("who am I?", deps=Deps(user="ada"))
    assert run.tool_results[0].result == f"ada in {run.id}"
    offered = [e for e in run.events if isinstance(e, ModelCalled)]
    assert "ctx" not in str(Agent(tools=[whoami]).toolset.specs) and "ada" not in str(offered[0].messages)


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_is_validated_and_asked_again_once():
    run = await Agent(ScriptedModel(['{"name": "Lyon", "population": 522000}']), tools=[]).run(
        "Lyon?", output_type=City)
    assert run.status == "ok" and run.output == City(name="Lyon", population=522000)

    model = ScriptedModel(['{"name": "Lyon"}', '```json\n{"name": "Lyon", "population": 522000}\n```'])
    run = await Agent(model, tools=[]).run("Lyon?", output_type=City)
    assert run.output.population == 522000 and run.usage.model_calls == 2
    assert "population" in model.calls[1][-1]["content"]  # the model was told what was missing

    run = await Agent(ScriptedModel(["Lyon", "still Lyon"]), tools=[]).run("Lyon?", output_type=City)
    assert run.status == "error" and run.output is None and "City" in run.error
    with pytest.raises(TypeError):
        Agent(ScriptedModel([])).start("x", output_type=dict)


async def test_async_with_closes_and_run_sync_works_inside_a_running_loop():
    async with Agent(ScriptedModel(["hello"]), tools=[]) as agent:
        run = agent.run_sync("hi")  # a running loop (Jupyter's case): the run goes on in a thread
    assert run.status == "ok" and run.answer == "hello"


async def test_a_third_party_planner_answers_and_carries_on_through_the_same_chain():
    from plugdeck.agent.executor import run_tool_call
    from plugdeck.agent.loop import end_step
    from plugdeck.agent.planner import LoopPlanner
    from plugdeck.models.base import ToolCall

    class SendFirst:
        """Sends the question at once, without asking the model which tool to use."""

        name = "send-first"

        async def answer(self, turn, model, toolset):
            call = ToolCall("c1", "send", {"text": turn.run.question}, "{}")
            turn.messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "send", "arguments": "{}"}}]})
            end_step(turn, 1, [call], [await run_tool_call(turn, toolset, call, 1)])
            return "sent without asking the model"

        async def carry_on(self, turn, model, toolset, checkpoint, actions):
            return await LoopPlanner().carry_on(turn, model, toolset, checkpoint, actions)

    assert isinstance(SendFirst(), Planner)
    agent = Agent(ScriptedModel(["The message is out."]), tools=[send], planner=SendFirst())
    run = await agent.run("ping")
    assert run.status == "waiting" and not SENT  # the policy still asks a person for the write
    await run.confirm(run.waiting[0].id)
    assert run.status == "ok" and SENT == ["ping"] and run.answer == "The message is out."


def _assignments_to(names: set[str]) -> list[str]:
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "run.py" and path.parent.name == "agent":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for leaf in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if (isinstance(leaf, ast.Attribute) and leaf.attr in names
                            and isinstance(leaf.value, (ast.Name, ast.Attribute))
                            and (getattr(leaf.value, "id", None) or getattr(leaf.value, "attr", None)) == "run"):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} sets run.{leaf.attr}")
    return found


def test_no_attribute_of_a_run_is_set_outside_its_module():
    run = Run("q")
    assert _assignments_to(set(vars(run))) == []


def test_the_policy_is_asked_in_one_place_outside_the_policy_package():
    callers = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "policy":
            continue
        tree = ast.parse(path.read_text())
        imports_decide = any(isinstance(n, ast.ImportFrom) and (n.module or "").endswith("policy.engine")
                             and any(a.name == "decide" for a in n.names) for n in ast.walk(tree))
        if imports_decide:
            callers.append(str(path.relative_to(SRC)))
    assert callers == ["agent/admission.py"]
