"""plugdeck's typed public API in one file, checked by `mypy --strict` (tests/test_typed_api.py).

A tool that needs the application's objects gets them through RunContext (the model never sees
them); limits bound each run; the answer comes back as a validated pydantic model; an order waits
for a person's OK and is resumed; a second question is followed event by event; and run_sync works
even where an event loop is already running (a notebook).

    python examples/typed_api.py

It runs offline: a scripted model plays the LLM's part. With a real one, pass its name instead
(`Agent("openai:gpt-4o-mini", ...)`, see plugdeck.toml's models) and drop the script.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import BaseModel

from plugdeck import (Agent, AnswerGiven, Event, Limits, PendingAction, Policy, RunContext, ScriptedModel,
                      ToolFinished, Usage, tool)


@dataclass
class Pantry:
    """The application's own state, handed to tools for one run (`deps`)."""

    prices: dict[str, float]
    orders: list[str] = field(default_factory=list)


@tool
def price_of(ctx: RunContext[Pantry], item: str) -> float:
    """The price of one item, in euros.

    Args:
        item: The item's name.
    """
    return ctx.deps.prices[item]


@tool(effect="write")
def place_order(ctx: RunContext[Pantry], item: str, quantity: int) -> str:
    """Order an item (needs a person's OK: it changes something outside).

    Args:
        item: The item's name.
        quantity: How many.
    """
    ctx.deps.orders.append(f"{quantity} x {item}")
    return f"ordered {quantity} x {item}"


class Quote(BaseModel):
    item: str
    quantity: int
    total: float


def scripted_llm() -> ScriptedModel:
    return ScriptedModel([
        {"tool_calls": [{"name": "price_of", "arguments": {"item": "tea"}}]},
        {"tool_calls": [{"name": "place_order", "arguments": {"item": "tea", "quantity": 3}}]},
        '{"item": "tea", "quantity": 3, "total": 7.5}',
        "Tea costs 2.50 euros.",
    ])


def approve(waiting: list[PendingAction]) -> dict[str, bool]:
    """A person's decisions, by action id (here: yes to orders of at most 5)."""
    return {action.id: action.arguments.get("quantity", 0) <= 5 for action in waiting}


def quick_answer() -> str | None:
    """run_sync: no event loop needed, and none in the way (it runs in a worker thread if one is running)."""
    run = Agent(ScriptedModel(["4"]), system_prompt="Answer briefly.").run_sync("What is 2 + 2?")
    return run.answer


async def main() -> None:
    pantry = Pantry(prices={"tea": 2.5})
    policy = Policy(confirm=["place_order"])  # always ask, whatever the context
    async with Agent(scripted_llm(), [price_of, place_order], policy=policy, limits=Limits(max_steps=6),
                     planner="loop") as agent:
        run = await agent.run("Order 3 teas and tell me the total.", deps=pantry, output_type=Quote,
                              limits=Limits(max_tool_calls=4, max_cost=0.10))
        if run.status == "waiting":  # a pause is a value: decide, then resume (any process can)
            resumed = await agent.resume(run.id, approve(run.waiting), deps=pantry, output_type=Quote)
            if resumed is None:
                raise SystemExit("another process is carrying this run on")
            run = resumed
        quote = run.output
        if not isinstance(quote, Quote):
            raise SystemExit(f"no quote: {run.status} {run.error}")
        usage: Usage = run.usage
        print(f"{quote.quantity} x {quote.item} = {quote.total:.2f} EUR; orders: {pantry.orders}; "
              f"{usage.model_calls} model calls, {usage.tool_calls} tool calls, {usage.tokens} tokens")

        async for event in agent.stream("What does tea cost?", deps=pantry):
            describe(event)

    print("2 + 2 =", quick_answer())  # inside a running loop, as in a notebook cell


def describe(event: Event) -> None:
    if isinstance(event, ToolFinished):
        print(f"  {event.tool} -> {event.result!r}")
    elif isinstance(event, AnswerGiven):
        print(f"  answer: {event.text}")


if __name__ == "__main__":
    asyncio.run(main())
