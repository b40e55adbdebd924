"""The compiled-plan planner: one plan call, calls run as soon as their inputs are ready, one join call."""

import asyncio

import pytest

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.agent.plan import PlanError, parse_line, substitute
from plugdeck.events import ModelCalled, PlannerNote, RunStarted, ToolFinished, ToolStarted
from plugdeck.plugins.calculator import plugin as calculator
from plugdeck.policy import policy_from
from plugdeck.tools import Toolset

PRICES = {"apple": 230.5, "microsoft": 410.25, "nvidia": 135.0}


@tool
async def stock_price(company: str) -> float:
    """The latest share price of a company."""
    await asyncio.sleep(0.05)
    return PRICES[company.lower()]


@tool(effect="write")
def buy(company: str, shares: int) -> str:
    """Buy shares."""
    return f"bought {shares} {company}"


PLAN = ('1. stock_price(company="Apple")\n2. stock_price(company="Microsoft")\n'
        '3. calculate(expression="$2 - $1")\n4. join()\n')


def agent(turns, **options):
    return Agent(ScriptedModel(turns, chunk_size=7), [calculator], tools=[stock_price, buy], planner="plan", **options)


async def test_plan_runs_independent_calls_together_and_answers_in_two_model_calls():
    run = await agent([PLAN, "Microsoft's share costs 179.75 more than Apple's."]).run(
        "How much more does a Microsoft share cost than an Apple share?")
    assert run.status == "ok" and run.answer == "Microsoft's share costs 179.75 more than Apple's."
    assert run.model_calls == 2 and run.tool_calls == 3
    order = [(e.type, e.call_id) for e in run.events if isinstance(e, (ToolStarted, ToolFinished))]
    # Both lookups started before either finished; the subtraction waited for both.
    assert [o for o in order[:2]] == [("tool_started", "plan1_1"), ("tool_started", "plan1_2")]
    assert order.index(("tool_started", "plan1_3")) > order.index(("tool_finished", "plan1_2"))
    calc = next(e for e in run.events if isinstance(e, ToolFinished) and e.call_id == "plan1_3")
    assert calc.arguments == {"expression": "410.25 - 230.5"} and calc.result["result"] == "179.75"
    join_prompt = [e for e in run.events if isinstance(e, ModelCalled)][1].messages[-1]["content"]
    assert "3. calculate" in join_prompt and "179.75" in join_prompt


async def test_calls_start_while_the_plan_is_still_streaming():
    started_during_plan = []

    def watch(event):
        if isinstance(event, ToolStarted):
            started_during_plan.append(not any(isinstance(e, ModelCalled) for e in recorded))
        recorded.append(event)

    recorded = []
    await agent([PLAN, "done"]).run("compare", sinks=[watch])
    assert started_during_plan[:2] == [True, True]  # before the plan call had even finished


async def test_replan_when_the_join_asks_for_it():
    turns = ['1. stock_price(company="Apple")\n2. join()', "REPLAN: I also need Nvidia's price",
             '1. stock_price(company="Nvidia")\n2. join()', "Apple 230.5, Nvidia 135"]
    run = await agent(turns).run("Apple and Nvidia prices?")
    assert run.answer == "Apple 230.5, Nvidia 135" and run.model_calls == 4
    assert any(isinstance(e, PlannerNote) and "replanning" in e.message for e in run.events)


class ReasonAfterReplan:
    """A model whose REPLAN reply finishes only once the next plan has been asked for: a planner
    that waited for the whole reply before replanning would never get there."""

    name = "reason-after-replan"

    def __init__(self, turns):
        self.scripted = ScriptedModel(turns, chunk_size=7)
        self.calls = 0
        self.next_plan_asked = asyncio.Event()

    async def stream(self, messages, tools):
        self.calls += 1
        if self.calls == 3:
            self.next_plan_asked.set()
        call, pieces = self.calls, 0
        async for item in self.scripted.stream(messages, tools):
            if call == 2 and pieces == 1:  # "REPLAN:" is out; the reason follows after the next plan call
                await self.next_plan_asked.wait()
            pieces += 1
            yield item


async def test_the_next_plan_is_asked_for_while_the_replan_reason_still_streams():
    turns = ['1. stock_price(company="Apple")\n2. join()', "REPLAN: I also need Nvidia's price",
             '1. stock_price(company="Nvidia")\n2. join()', "Apple 230.5, Nvidia 135"]
    model = ReasonAfterReplan(turns)
    agent = Agent(model, tools=[stock_price], planner="plan")
    deltas = []
    run = await asyncio.wait_for(agent.run("Apple and Nvidia prices?", sinks=[deltas.append]), 10)
    assert run.status == "ok" and run.answer == "Apple 230.5, Nvidia 135" and run.model_calls == 4
    calls = [e for e in run.events if isinstance(e, ModelCalled)]
    assert "REPLAN: I also need Nvidia's price" in [c.text for c in calls] and all(c.error is None for c in calls)
    note = next(e for e in run.events if isinstance(e, PlannerNote))
    assert note.message == "replanning: I also need Nvidia's price"
    answer_text = "".join(e.text for e in deltas if e.type == "text_delta" and e.channel != "plan")
    assert answer_text == "Apple 230.5, Nvidia 135"  # the REPLAN reply never shows as answer text


async def test_an_answer_that_starts_like_replan_is_an_answer():
    turns = ['1. stock_price(company="Apple")\n2. join()', "Replanning is not needed: Apple is at 230.5."]
    run = await agent(turns).run("Apple price?")
    assert run.answer == "Replanning is not needed: Apple is at 230.5." and run.model_calls == 2


@pytest.mark.parametrize("plan, reason", [
    ('1. stock_price(company="Apple")\n2. teleport(to="Mars")\n3. join()', "unknown tool 'teleport'"),
    ('1. calculate(expression="$2 * 2")\n2. join()', "result of step 2, which comes later"),
    ("Sure! First I will look up the prices.", "cannot read plan line"),
    ('1. stock_price(company=Apple)\n2. join()', "not JSON"),
])
async def test_a_bad_plan_falls_back_to_the_tool_loop(plan, reason):
    loop_turns = [{"tool_calls": [{"name": "stock_price", "arguments": {"company": "Apple"}}]}, "Apple: 230.5"]
    run = await agent([plan, *loop_turns]).run("Apple price?")
    assert run.status == "ok" and run.answer == "Apple: 230.5"
    note = next(e for e in run.events if isinstance(e, PlannerNote))
    assert reason in note.message and "falling back to the tool loop" in note.message


async def test_policy_and_confirmation_apply_to_planned_calls():
    plan = '1. stock_price(company="Apple")\n2. buy(company="Apple", shares=10)\n3. join()'
    asked = []
    await agent([plan, "I did not buy."], confirm=lambda a: asked.append(a) or False).run("buy 10 apple")
    assert asked and asked[0].arguments == {"company": "Apple", "shares": 10}
    denied = await agent([plan, "no"], policy=policy_from({"deny": ["buy"]})).run("buy")
    assert any(isinstance(e, ToolFinished) and e.error and e.error["kind"] == "denied" for e in denied.events)


async def test_a_failed_step_stops_what_depends_on_it():
    plan = '1. stock_price(company="Tesla")\n2. calculate(expression="$1 * 2")\n3. join()'
    run = await agent([plan, "I could not find Tesla."]).run("Tesla?")
    finished = [e for e in run.events if isinstance(e, ToolFinished)]
    assert len(finished) == 1 and finished[0].error  # step 2 never ran
    join_prompt = [e for e in run.events if isinstance(e, ModelCalled)][1].messages[-1]["content"]
    assert "not run, because step 1 failed" in join_prompt


async def test_auto_picks_per_request_and_records_why():
    auto = Agent(ScriptedModel([PLAN, "x", "y"]), [calculator], tools=[stock_price], planner="auto")
    several = await auto.run("Compare Apple and Microsoft")
    one = await auto.run("What is the Apple share price?")
    reasons = [next(e for e in r.events if isinstance(e, RunStarted)) for r in (several, one)]
    assert (reasons[0].planner, reasons[1].planner) == ("plan", "loop")
    assert "several things" in reasons[0].planner_reason and reasons[1].planner_reason
    branching = await Agent(ScriptedModel(["y"]), tools=[stock_price], planner="auto").run(
        "Is Apple above 200? If it is, compare it with Microsoft and Nvidia; if not, with Intel.")
    started = next(e for e in branching.events if isinstance(e, RunStarted))
    assert started.planner == "loop" and "depends on a result" in started.planner_reason
    rules = await Agent("rules", [calculator], planner="auto").run("What is 2 and 3 plus 4?")
    assert next(e for e in rules.events if isinstance(e, RunStarted)).planner == "loop"


def test_parsing_and_substitution():
    toolset = Toolset([stock_price, *calculator.tools])
    step = parse_line('3. calculate(expression="${1} + $2", note={"a": [1, 2]})', {1, 2}, toolset)
    assert step.needs == {1, 2} and step.arguments["note"] == {"a": [1, 2]}
    assert parse_line("4. join()", {1}, toolset) is None
    with pytest.raises(PlanError):
        parse_line("1. stock_price(company)", set(), toolset)
    assert substitute({"x": "$1", "y": "total: $1", "z": ["$2"]}, {1: {"result": "5", "exact": True}, 2: 7}) == \
        {"x": {"result": "5", "exact": True}, "y": "total: 5", "z": [7]}
