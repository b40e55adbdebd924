"""With answer checks, the model's answer text streams as a draft (issue 11, item 14): every surface shows
AnswerGiven's checked text instead. Both planners, streamed and awaited runs."""

import asyncio

import pytest

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.agent.checks import CheckResult
from plugdeck.events import AnswerGiven, TextDelta
from plugdeck.plugins.calculator import plugin as calculator

PLAN = '1. stock_price(company="Apple")\n2. join()\n'
DRAFT = "Apple costs 230.5. Also, buy now before it doubles."
CHECKED = "Apple costs 230.5."


@tool
async def stock_price(company: str) -> float:
    """The latest share price of a company."""
    await asyncio.sleep(0.01)
    return 230.5


class DropAdvice:
    """An answer check that removes the second sentence."""

    name = "advice"

    async def check(self, answer, run):
        return CheckResult(answer == CHECKED, CHECKED, {})


TURNS = {"loop": [{"tool_calls": [{"name": "stock_price", "arguments": {"company": "Apple"}}]}, DRAFT],
         "plan": [PLAN, DRAFT]}


def agent(planner, checks):
    return Agent(ScriptedModel(TURNS[planner], chunk_size=5), [calculator], tools=[stock_price], planner=planner,
                 checks=checks)


@pytest.mark.parametrize("planner", ["loop", "plan"])
async def test_answer_text_is_a_draft_when_checks_may_change_it(planner):
    events = [e async for e in agent(planner, [DropAdvice()]).stream("What does an Apple share cost?")]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "".join(e.text for e in deltas if e.channel == "draft") == DRAFT
    assert [e for e in deltas if e.channel == "text"] == []  # nothing a surface would show as the answer
    assert [e.text for e in events if isinstance(e, AnswerGiven)] == [CHECKED]


@pytest.mark.parametrize("planner", ["loop", "plan"])
async def test_without_checks_the_answer_streams_as_text(planner):
    run = await agent(planner, []).run("What does an Apple share cost?")
    deltas = [e for e in run.events if isinstance(e, TextDelta) and e.channel != "plan"]
    assert {e.channel for e in deltas} == {"text"} and "".join(e.text for e in deltas) == DRAFT
    assert run.answer == DRAFT
