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
    assert run.usage.model_calls == 2 and run.usage.tool_calls == 3
    order = [(e.type, e.call_id) for e in run.events if isinstance(e, (ToolStarted, ToolFinished))]
    # Both lookups started before either finished; the subtraction waited for both.
    assert [o for o in order[:2]] == [("tool_started", "plan1_1"), ("tool_started", "plan1_2")]
    assert order.index(("tool_started", "plan1_3")) > order.index(("tool_finished", "plan1_2"))
    calc = next(e for e in run.events if isinstance(e, ToolFinished) and e.call_id == "plan1_3")
    assert calc.arguments == {"expression": "410.25 - 230.5"} and calc.result["result"] == "179.75"
    # The join call reads the plan's calls and their results as tool results, never in the person's message.
    join = [e for e in run.events if isinstance(e, ModelCalled)][1].messages
    assert [m["role"] for m in join] == ["system", "user", "assistant", "tool", "tool", "tool"]
    assert join[1]["content"] == "How much more does a Microsoft share cost than an Apple share?"
    assert [c["function"]["name"] for c in join[2]["tool_calls"]] == ["stock_price", "stock_price", "calculate"]
    assert join[5]["tool_call_id"] == "plan1_3" and "179.75" in join[5]["content"]


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
    assert run.answer == "Apple 230.5, Nvidia 135" and run.usage.model_calls == 4
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
    assert run.status == "ok" and run.answer == "Apple 230.5, Nvidia 135" and run.usage.model_calls == 4
    calls = [e for e in run.events if isinstance(e, ModelCalled)]
    assert "REPLAN: I also need Nvidia's price" in [c.text for c in calls] and all(c.error is None for c in calls)
    note = next(e for e in run.events if isinstance(e, PlannerNote))
    assert note.message == "replanning: I also need Nvidia's price"
    answer_text = "".join(e.text for e in deltas if e.type == "text_delta" and e.channel != "plan")
    assert answer_text == "Apple 230.5, Nvidia 135"  # the REPLAN reply never shows as answer text


async def test_an_answer_that_starts_like_replan_is_an_answer():
    turns = ['1. stock_price(company="Apple")\n2. join()', "Replanning is not needed: Apple is at 230.5."]
    run = await agent(turns).run("Apple price?")
    assert run.answer == "Replanning is not needed: Apple is at 230.5." and run.usage.model_calls == 2


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


# ---- what the model is told: the application's system prompt and every tool's whole schema ----------

FRENCH = "ALWAYS ANSWER IN FRENCH, and sign every answer 'Le Bureau'."
BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "day": {"type": "string", "format": "date", "description": "The day of the booking, written DD/MM/YYYY."},
        "hall": {"type": "string", "enum": ["north-hall", "south-hall"], "description": "Which hall to book."},
        "guests": {"type": "array", "description": "Who comes.", "minItems": 1, "items": {
            "type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "description": "Full name as on the passport."},
                "diet": {"type": "string", "enum": ["vegan", "halal", "none"], "default": "none"}}}},
        "contact": {"type": "object", "description": "Who to call about the booking.", "required": ["phone"],
                    "properties": {"phone": {"type": "string", "pattern": "^\\+[0-9]{6,15}$",
                                             "description": "International format, digits only."}}},
        "nights": {"type": "integer", "minimum": 1, "maximum": 14, "default": 1},
    },
    "required": ["day", "hall", "contact"],
}
SCHEMA_PARTS = ["book_hall", "Book a hall for an event.", "DD/MM/YYYY", '"north-hall"', '"south-hall"',
                "Which hall to book.", "Who comes.", '"minItems": 1', "Full name as on the passport.", '"vegan"',
                '"halal"', 'default "none"', "Who to call about the booking.", '"pattern": "^\\\\+[0-9]{6,15}$"',
                "International format, digits only.", '"minimum": 1', '"maximum": 14', "default 1", "format date"]


def _booking_tool():
    from plugdeck import tool_from_schema

    return tool_from_schema("book_hall", "Book a hall for an event.", BOOKING_SCHEMA, lambda **kw: "booked")


def _line_of(text: str, field: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(f"{field} ("))


async def test_plan_and_join_calls_carry_the_applications_system_prompt_and_every_schema_part():
    plan = '1. book_hall(day="24/12/2026", hall="north-hall", contact={"phone": "+3312345678"})\n2. join()'
    turns = [plan, "REPLAN: the guests are missing", plan, "Réservé. Le Bureau"]
    model = ScriptedModel(turns)
    run = await Agent(model, tools=[_booking_tool()], system_prompt=FRENCH, planner="plan").run("Book the north hall")
    assert run.status == "ok" and run.usage.model_calls == 4
    plan_calls, join_calls = model.calls[0::2], model.calls[1::2]
    for call in model.calls:  # every call, the replan included: the application's instructions are there
        system = "\n".join(m["content"] for m in call if m["role"] == "system")
        assert FRENCH in system
    for call in plan_calls:
        told = call[0]["content"]
        assert told.index("Write one numbered line") < told.index(FRENCH)  # the planner's rules come first
        missing = [part for part in SCHEMA_PARTS if part not in told]
        assert not missing, f"the plan call does not say {missing}:\n{told}"
        assert "required" in _line_of(told, "day") and "required" in _line_of(told, "phone")
        assert "required" in _line_of(told, "name") and "optional" in _line_of(told, "diet")
        assert "optional" in _line_of(told, "nights") and "optional" in _line_of(told, "guests")
    for call in join_calls:
        assert call[0]["content"].startswith("Answer the question using the results")


async def test_without_a_system_prompt_the_planner_sends_only_its_own_instructions():
    model = ScriptedModel([PLAN, "done"])
    await Agent(model, [calculator], tools=[stock_price], system_prompt=None, planner="plan").run("compare")
    assert [m["role"] for m in model.calls[0]] == ["system", "user"]
    assert "application" not in model.calls[0][0]["content"] and "application" not in model.calls[1][0]["content"]


async def test_the_system_prompt_goes_over_http_in_both_calls():
    from mock_openai import MockOpenAI

    from plugdeck import OpenAIModel

    with MockOpenAI([PLAN, "Microsoft coûte plus. Le Bureau"]) as mock:
        model = OpenAIModel("mock-model", mock.base_url, max_retries=0)
        agent = Agent(model, [calculator], tools=[stock_price], system_prompt=FRENCH, planner="plan")
        run = await agent.run("How much more does Microsoft cost than Apple?")
        await agent.aclose()
    assert run.status == "ok" and len(mock.requests) == 2
    for body in mock.requests:
        systems = [m["content"] for m in body["messages"] if m["role"] == "system"]
        assert len(systems) == 1 and FRENCH in systems[0]  # one system message: every provider takes that
    assert "The latest share price of a company." in mock.requests[0]["messages"][0]["content"]


def test_the_tool_text_keeps_every_part_of_real_openapi_schemas():
    """Every description, enum value, default, format, pattern and property name of the real
    Spotify and Petstore schemas is in the text the planner shows the model."""
    from shared_fixtures import FIXTURES

    from plugdeck.agent.tool_text import describe_tools
    from plugdeck.plugins.openapi import guard_for, load_source, prepare

    for spec_path in ("spotify-sonallux/fixed-spotify-open-api.yml", "swagger-petstore3/openapi.yaml"):
        guard = guard_for({})
        spec, _ = load_source(str(FIXTURES / "openapi" / spec_path), guard)
        plugin = prepare("fixture", {"base_url": "https://api.example.com/v1"}, spec=spec, guard=guard).plugin()
        toolset = Toolset(plugin.tools)
        text = " ".join(describe_tools(toolset.specs).split())
        for spec in toolset.specs:
            for part in _schema_parts(spec.parameters):
                assert part in text, f"{spec_path} {spec.name}: {part!r} is not in the tool text"


def _schema_parts(schema, name=None):
    import json

    if isinstance(schema, list):
        for item in schema:
            yield from _schema_parts(item)
        return
    if not isinstance(schema, dict):
        return
    if name:
        yield name
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            yield " ".join(value.split())
        elif key in ("enum", "default", "format", "pattern", "const"):
            for one in value if key == "enum" else [value]:
                yield " ".join(json.dumps(one, ensure_ascii=False).split()).strip('"') if key in ("format", "pattern") \
                    else " ".join(json.dumps(one, ensure_ascii=False).split())
        elif key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                yield from _schema_parts(sub, prop)
        elif isinstance(value, (dict, list)):
            yield from _schema_parts(value)


def test_the_tool_text_keeps_what_it_does_not_write_out_as_json():
    from plugdeck import tool_from_schema
    from plugdeck.agent.tool_text import describe_tools

    schema = {"type": "object", "required": ["mode"], "properties": {
        "when": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}], "description": "When."},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number", "minimum": 0}}},
        "mode": {"const": "fast", "title": "Speed setting"},
        "tags": {"type": "array", "items": {"type": "string", "description": "One tag.", "pattern": "^#"}}}}
    text = describe_tools(Toolset([tool_from_schema("t", "A tool.", schema, lambda **kw: 1)]).specs)
    assert text.splitlines()[0] == "- t(when, matrix, mode, tags): A tool."
    assert 'when (any, optional): When. {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}' in text
    assert "matrix (array of array of number, optional)\n    each item's items: {\"minimum\": 0}" in text
    assert 'mode (always "fast", required): {"title": "Speed setting"}' in text
    assert "tags (array of string, optional)" in text and 'each item: One tag. {"pattern": "^#"}' in text
