"""Write actions wait for a person: exact arguments shown, approval bound to them, run once."""

import asyncio
import time

import pytest

from plugdeck import Agent, ScriptedModel, tool
from plugdeck.events import ConfirmationAnswered, ConfirmationRequested, ToolFinished
from plugdeck.tools import idempotency_key

ORDERS = []


@tool(effect="write")
def place_order(pizza: str, quantity: int, pickup: str) -> dict:
    """Place an order."""
    ORDERS.append({"pizza": pizza, "quantity": quantity, "pickup": pickup, "key": idempotency_key()})
    return {"order_id": len(ORDERS), "status": "accepted"}


@pytest.fixture(autouse=True)
def no_orders():
    ORDERS.clear()


def order_turns(**arguments):
    args = {"pizza": "margherita", "quantity": 2, "pickup": "19:00", **arguments}
    return [{"tool_calls": [{"name": "place_order", "arguments": args}]}, "Your order is placed."]


async def test_the_run_pauses_and_confirm_runs_the_action_once():
    run = await Agent(ScriptedModel(order_turns()), tools=[place_order]).run("Order two margherita for 7pm")
    assert run.status == "waiting" and not ORDERS
    (action,) = run.waiting
    assert action.tool == "place_order" and action.arguments == {"pizza": "margherita", "quantity": 2, "pickup": "19:00"}
    assert "quantity: 2" in action.summary and "changes something" in action.reason
    await run.confirm(action.id)
    assert run.status == "ok" and run.answer == "Your order is placed."
    assert len(ORDERS) == 1 and ORDERS[0]["key"] == action.id  # the approval id is the idempotency key
    answered = [e for e in run.events if isinstance(e, ConfirmationAnswered)]
    assert answered[0].approved and answered[0].by == "person"
    with pytest.raises(KeyError):
        await run.confirm(action.id)  # an approval is used once


async def test_reject_tells_the_model_and_nothing_is_done():
    model = ScriptedModel([*order_turns()[:1], "I did not place the order."])
    run = await Agent(model, tools=[place_order]).run("Order")
    await run.reject(run.waiting[0].id, "too expensive")
    assert run.status == "ok" and not ORDERS
    tool_message = [m for m in model.calls[1] if m["role"] == "tool"][0]
    assert '"kind": "rejected"' in tool_message["content"]
    assert [e for e in run.events if isinstance(e, ConfirmationAnswered)][0].note == "too expensive"


async def test_approval_is_bound_to_the_exact_call():
    turns = [{"tool_calls": [{"name": "place_order", "arguments": {"pizza": "margherita", "quantity": 2, "pickup": "19:00"}},
                             {"name": "place_order", "arguments": {"pizza": "margherita", "quantity": 2, "pickup": "19:00"}}]},
             "done"]
    run = await Agent(ScriptedModel(turns), tools=[place_order]).run("Order twice")
    first, second = run.waiting
    assert first.id != second.id  # identical arguments, still two actions, each needing its own OK
    await run.confirm(first.id)
    assert run.status == "waiting" and len(ORDERS) == 1
    await run.reject(second.id)
    assert run.status == "ok" and len(ORDERS) == 1


async def test_a_confirm_callback_is_asked_instead_of_pausing():
    seen = []

    async def approve_small(action):
        seen.append(action)
        return action.arguments["quantity"] <= 5

    run = await Agent(ScriptedModel(order_turns(quantity=50)), tools=[place_order], confirm=approve_small).run("order")
    assert run.status == "ok" and not ORDERS and seen[0].arguments["quantity"] == 50
    run = await Agent(ScriptedModel(order_turns()), tools=[place_order], confirm=approve_small).run("order")
    assert len(ORDERS) == 1


def test_run_sync_without_a_confirmer_refuses_rather_than_acting():
    run = Agent(ScriptedModel(order_turns()), tools=[place_order]).run_sync("order")
    assert run.status == "ok" and not ORDERS
    answered = [e for e in run.events if isinstance(e, ConfirmationAnswered)][0]
    assert not answered.approved and answered.by == "no one to ask"


async def test_waiting_for_a_person_does_not_count_against_the_deadline():
    run = await Agent(ScriptedModel(order_turns()), tools=[place_order], deadline=0.3).run("order")
    await asyncio.sleep(0.5)  # the person takes longer than the whole deadline
    await run.confirm(run.waiting[0].id)
    assert run.status == "ok" and len(ORDERS) == 1


async def test_read_tools_do_not_ask():
    @tool
    def menu() -> list:
        """The menu."""
        return ["margherita"]

    run = await Agent(ScriptedModel([{"tool_calls": [{"name": "menu", "arguments": {}}]}, "margherita"]),
                      tools=[menu]).run("menu?")
    assert run.status == "ok" and not any(isinstance(e, ConfirmationRequested) for e in run.events)
    assert isinstance([e for e in run.events if isinstance(e, ToolFinished)][0], ToolFinished)


async def test_an_approval_after_the_time_limit_is_refused_and_the_model_told(monkeypatch):
    from plugdeck.events import PolicyDecided

    model = ScriptedModel([*order_turns()[:1], "The approval came too late; nothing was ordered."])
    run = await Agent(model, tools=[place_order]).run("Order two margherita for 7pm")
    (action,) = run.waiting
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 601)  # the person answers 10 minutes and 1 s later
    await run.confirm(action.id)
    assert run.status == "ok" and not ORDERS
    (finished,) = [e for e in run.events if isinstance(e, ToolFinished)]
    assert finished.error["kind"] == "expired" and "valid for 600 s" in finished.error["message"]
    assert any(isinstance(e, PolicyDecided) and e.rule == "confirmation_ttl" for e in run.events)


async def test_an_approval_within_the_time_limit_goes_through(monkeypatch):
    run = await Agent(ScriptedModel(order_turns()), tools=[place_order]).run("Order")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 590)
    await run.confirm(run.waiting[0].id)
    assert len(ORDERS) == 1
