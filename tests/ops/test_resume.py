"""Runs that wait for a person survive their process and resume anywhere, each approved action once.

Process A (a subprocess) starts a run that pauses for a write action and ends; process B (this
test, or racing subprocesses) finds the pending action in the store, decides, and carries the run
on. The shop's write tool appends to a file, so "exactly once" is counted across processes.
"""

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from contextlib import closing

import pytest

from ops_cli import plugdeck
from plugdeck import Agent, RunStore, ScriptedModel
from plugdeck.agent.run import RunMoved
from plugdeck.ops.rundb import open_database
from plugdeck.ops.runstore import ActionNotPending, RunNotWaiting

SHOP = textwrap.dedent('''
    import asyncio, os
    from plugdeck import tool
    from plugdeck.tools import idempotency_key

    @tool(effect="write")
    async def place_order(pizza: str, quantity: int) -> dict:
        """Place an order."""
        await asyncio.sleep(float(os.environ.get("ORDER_SECONDS", "0")))
        with open(os.environ["ORDERS_FILE"], "a") as orders:
            orders.write(f"{pizza} {quantity} {idempotency_key()}\\n")
        return {"order": "accepted", "pizza": pizza}

    @tool
    def menu() -> list:
        """The menu."""
        return ["margherita", "diavola"]
''')

START = textwrap.dedent('''
    import asyncio, json, os, signal, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from plugdeck import Agent, RunStore, ScriptedModel
    import shop

    async def main(target, turns, planner, crash):
        store = RunStore(target)
        agent = Agent(ScriptedModel(turns), tools=[shop.menu, shop.place_order], sinks=[store.record],
                      planner=planner, setup={"model": "scripted", "plugins": ["shop"]})
        run = await agent.run("Order two margherita", api_key_id="key-a")
        print(json.dumps({"run_id": run.id, "status": run.status, "waiting": [a.id for a in run.waiting]}), flush=True)
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        store.close()

    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "crash"))
''')

APPROVE = textwrap.dedent('''
    import asyncio, json, os, sys, time
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from plugdeck import Agent, RunStore, ScriptedModel
    from plugdeck.ops.runstore import ActionNotPending, RunNotWaiting
    import shop

    async def main(target, run_id, action_id, go):
        store = RunStore(target)
        agent = Agent(ScriptedModel(["Your order is placed."]), tools=[shop.menu, shop.place_order],
                      sinks=[store.record])
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.001)
        try:
            run = await agent.resume(run_id, {action_id: True})
            outcome = {"status": run.status if run else None}
        except (ActionNotPending, RunNotWaiting) as exc:
            outcome = {"status": "refused", "message": str(exc)}
        store.close()
        print(json.dumps(outcome), flush=True)

    asyncio.run(main(*sys.argv[1:5]))
''')

ORDER = {"name": "place_order", "arguments": {"pizza": "margherita", "quantity": 2}}


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """The shop's tools, for this process and for the scripts of the other processes."""
    for name, text in (("shop.py", SHOP), ("start.py", START), ("approve.py", APPROVE)):
        (tmp_path / name).write_text(text)
    orders = tmp_path / "orders.txt"
    orders.touch()
    monkeypatch.setenv("ORDERS_FILE", str(orders))
    spec = importlib.util.spec_from_file_location(f"shop_{uuid.uuid4().hex}", tmp_path / "shop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.folder, module.orders = tmp_path, orders
    module.tools = [module.menu, module.place_order]
    return module


def start_in_another_process(shop, target, turns, planner="loop", crash=False):
    done = subprocess.run([sys.executable, str(shop.folder / "start.py"), target, json.dumps(turns), planner,
                           "crash" if crash else "exit"], capture_output=True, text=True, timeout=60, env=os.environ)
    return json.loads(done.stdout.splitlines()[0])


def orders(shop):
    return shop.orders.read_text().splitlines()


def stored_run(store, run_id):
    run = store.get_run(run_id)
    db = open_database(store.where if store.path is None else store.path, 5)
    with closing(db), db.session() as conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert seqs == list(range(len(seqs)))  # one run, numbered on without a gap or a clash across processes
    return run


async def test_a_run_waiting_in_a_process_that_ended_finishes_in_another(store_target, shop):
    started = start_in_another_process(shop, store_target, [{"tool_calls": [ORDER]}, "never used by A"])
    assert started["status"] == "waiting" and not orders(shop)
    with RunStore(store_target) as store:
        (pending,) = store.pending()
        assert pending["id"] == started["waiting"][0] and pending["run_id"] == started["run_id"]
        assert pending["tool"] == "place_order" and pending["arguments"] == {"pizza": "margherita", "quantity": 2}
        assert pending["api_key_id"] == "key-a" and "quantity: 2" in pending["summary"]
        checkpoint = store.checkpoint(started["run_id"])
        assert checkpoint["setup"] == {"model": "scripted", "plugins": ["shop"]} and checkpoint["planner"] == "loop"
        model = ScriptedModel(["Your order is placed."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(started["run_id"], {pending["id"]: True})
        assert run.status == "ok" and run.answer == "Your order is placed."
        assert orders(shop) == [f"margherita 2 {pending['id']}"]  # once, with the approval as idempotency key
        seen = model.calls[0]  # the model carries on from the conversation A had
        assert [m["role"] for m in seen] == ["system", "user", "assistant", "tool"]
        assert seen[2]["tool_calls"][0]["function"]["name"] == "place_order"
        assert json.loads(seen[3]["content"]) == {"order": "accepted", "pizza": "margherita"}
        store.flush()
        stored = stored_run(store, run.id)
        types = [e["type"] for e in stored["events"]]
        assert types == ["run_started", "model_called", "tool_started", "policy_decision", "confirmation_requested",
                         "confirmation_answered", "tool_finished", "model_called", "answer", "run_finished"]
        assert stored["status"] == "ok" and stored["model_calls"] == 2 and stored["tool_calls"] == 1
        assert [a["status"] for a in stored["actions"]] == ["executed"] and not store.pending()
        assert stored["events"][-1]["t"] >= stored["events"][4]["t"]  # times go on from the run's start


async def test_a_crash_while_waiting_loses_neither_the_run_nor_its_confirmation(store_target, shop):
    started = start_in_another_process(shop, store_target, [{"tool_calls": [ORDER]}], crash=True)
    listed = plugdeck(shop.folder, store_target, "runs", "pending")  # the restart: a new process looks
    assert listed.returncode == 0, listed.stderr
    assert started["waiting"][0] in listed.stdout and "quantity: 2" in listed.stdout
    assert started["run_id"] in plugdeck(shop.folder, store_target, "runs", "--status", "waiting").stdout
    with RunStore(store_target) as store:  # the restart: dead processes' running runs are aborted, not waiting ones
        assert store.get_run(started["run_id"])["status"] == "waiting"
        assert [p["id"] for p in store.pending()] == started["waiting"]
        model = ScriptedModel(["I did not place the order."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(
            started["run_id"], {started["waiting"][0]: False}, notes={started["waiting"][0]: "too many"})
        assert run.status == "ok" and not orders(shop)
        assert '"kind": "rejected"' in model.calls[0][-1]["content"]
        store.flush()
        answered = [e for e in store.get_run(run.id)["events"] if e["type"] == "confirmation_answered"]
        assert answered == [{**answered[0], "approved": False, "note": "too many"}]


async def test_two_approvers_racing_carry_the_action_out_once(store_target, shop):
    started = start_in_another_process(shop, store_target, [{"tool_calls": [ORDER]}])
    go = shop.folder / "go"
    approvers = [subprocess.Popen([sys.executable, str(shop.folder / "approve.py"), store_target, started["run_id"],
                                   started["waiting"][0], str(go)], stdout=subprocess.PIPE, text=True, env=os.environ)
                 for _ in range(2)]
    for approver in approvers:
        assert approver.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = sorted(json.loads(approver.communicate(timeout=60)[0])["status"] for approver in approvers)
    assert outcomes == ["ok", "refused"]
    assert len(orders(shop)) == 1
    with RunStore(store_target) as store:
        assert stored_run(store, started["run_id"])["status"] == "ok"


async def test_a_live_run_taken_over_elsewhere_does_not_act_again(store_target, shop):
    with RunStore(store_target) as store:
        run = await Agent(ScriptedModel([{"tool_calls": [ORDER]}, "placed here"]), tools=shop.tools,
                          sinks=[store.record]).run("order")
        assert run.status == "waiting" and store.checkpoint(run.id) is not None  # parked in the store
        (action,) = run.waiting
        go = shop.folder / "go"
        go.touch()
        approver = subprocess.run([sys.executable, str(shop.folder / "approve.py"), store_target, run.id, action.id,
                                   str(go)], capture_output=True, text=True, timeout=60, env=os.environ)
        assert json.loads(approver.stdout.splitlines()[-1]) == {"status": "ok"}
        with pytest.raises(RunMoved):
            await run.confirm(action.id)  # this copy was overtaken: it neither acts nor records
        assert run.status == "moved" and len(orders(shop)) == 1
        store.flush()
        stored = stored_run(store, run.id)
        assert stored["answer"] == "Your order is placed." and stored["status"] == "ok"


async def test_a_live_run_with_a_store_still_confirms_in_process(store_target, shop):
    with RunStore(store_target) as store:
        run = await Agent(ScriptedModel([{"tool_calls": [ORDER]}, "Your order is placed."]), tools=shop.tools,
                          sinks=[store.record]).run("order")
        (action,) = run.waiting
        await run.confirm(action.id)
        assert run.status == "ok" and orders(shop) == [f"margherita 2 {action.id}"]
        with pytest.raises(KeyError):
            await run.confirm(action.id)
        store.flush()
        (stored,) = store.get_run(run.id)["actions"]
        assert (stored["status"], stored["decided_by"]) == ("executed", "person")


async def test_actions_of_one_turn_are_decided_one_by_one_across_processes(store_target, shop):
    second = {"name": "place_order", "arguments": {"pizza": "diavola", "quantity": 1}}
    started = start_in_another_process(shop, store_target, [{"tool_calls": [ORDER, second]}])
    first_id, second_id = started["waiting"]
    with RunStore(store_target) as store:
        model = ScriptedModel(["Both are ordered."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(started["run_id"], {first_id: True})
        assert run.status == "waiting" and [a.id for a in run.waiting] == [second_id] and len(orders(shop)) == 1
        assert [p["id"] for p in store.pending()] == [second_id]
    with RunStore(store_target) as store:  # yet another process decides the other one
        run = await Agent(ScriptedModel(["Both are ordered."]), tools=shop.tools, sinks=[store.record]).resume(
            started["run_id"], {second_id: True})
        assert run.status == "ok" and sorted(orders(shop)) == sorted([f"margherita 2 {first_id}",
                                                                     f"diavola 1 {second_id}"])
        store.flush()
        assert stored_run(store, run.id)["status"] == "ok"


async def test_a_decision_given_while_the_run_is_busy_is_carried_out_by_its_driver(store_target, shop, monkeypatch):
    monkeypatch.setenv("ORDER_SECONDS", "0.3")
    second = {"name": "place_order", "arguments": {"pizza": "diavola", "quantity": 1}}
    with RunStore(store_target) as store, RunStore(store_target) as elsewhere:
        run = await Agent(ScriptedModel([{"tool_calls": [ORDER, second]}, "Both are ordered."]), tools=shop.tools,
                          sinks=[store.record]).run("order both")
        first, other = run.waiting
        confirming = asyncio.create_task(run.confirm(first.id))  # runs the slow order here
        while {a["id"]: a["status"] for a in elsewhere.get_run(run.id)["actions"]}[first.id] != "executed":
            await asyncio.sleep(0.01)
        assert not orders(shop)  # the first order is under way
        # Meanwhile the other decision reaches another process: recorded, since this copy is busy.
        assert await Agent(ScriptedModel([]), tools=shop.tools, sinks=[elsewhere.record]).resume(
            run.id, {other.id: True}, store=elsewhere) is None
        await confirming
        await run.settled()
        assert run.status == "ok" and run.answer == "Both are ordered." and len(orders(shop)) == 2
        store.flush()
        assert [a["status"] for a in store.get_run(run.id)["actions"]] == ["executed", "executed"]


async def test_a_waiting_plan_resumes_with_the_tool_loop(tmp_path, shop):
    plan = '1. menu()\n2. place_order(pizza="margherita", quantity=2)\n3. join()'
    target = str(tmp_path / "runs.db")
    started = start_in_another_process(shop, target, [plan], planner="plan")
    assert started["status"] == "waiting"
    with RunStore(target) as store:
        assert store.checkpoint(started["run_id"])["planner"] == "plan"
        model = ScriptedModel(["Two margherita are ordered."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(started["run_id"], {started["waiting"][0]: True})
        assert run.status == "ok" and len(orders(shop)) == 1
        assistant, *results = model.calls[0][2:]
        assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["menu", "place_order"]
        assert [json.loads(r["content"]) for r in results] == [["margherita", "diavola"],
                                                               {"order": "accepted", "pizza": "margherita"}]


async def test_an_approval_is_bound_to_the_exact_arguments(tmp_path, shop):
    target = str(tmp_path / "runs.db")
    started = start_in_another_process(shop, target, [{"tool_calls": [ORDER]}])
    with open_database(target, 5).session() as conn:  # someone changes the stored call after the person was asked
        conn.execute("UPDATE checkpoints SET data = replace(data, '\"quantity\": 2', '\"quantity\": 20')")
    with RunStore(target) as store:
        model = ScriptedModel(["Nothing was ordered."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(started["run_id"], {started["waiting"][0]: True})
        assert run.status == "ok" and not orders(shop)
        assert '"kind": "changed"' in model.calls[0][-1]["content"]


async def test_an_approval_given_after_the_time_limit_is_refused(tmp_path, shop):
    target = str(tmp_path / "runs.db")
    started = start_in_another_process(shop, target, [{"tool_calls": [ORDER]}])
    with open_database(target, 5).session() as conn:  # the question was asked 11 minutes ago
        conn.execute("UPDATE actions SET requested_at = requested_at - 660")
    with RunStore(target) as store:
        model = ScriptedModel(["Nothing was ordered."])
        run = await Agent(model, tools=shop.tools, sinks=[store.record]).resume(started["run_id"], {started["waiting"][0]: True})
        assert run.status == "ok" and not orders(shop)
        assert '"kind": "expired"' in model.calls[0][-1]["content"]


async def test_decisions_are_refused_for_other_keys_unknown_actions_and_finished_runs(tmp_path, shop):
    target = str(tmp_path / "runs.db")
    started = start_in_another_process(shop, target, [{"tool_calls": [ORDER]}])
    (action_id,) = started["waiting"]
    with RunStore(target) as store:
        agent = Agent(ScriptedModel(["done"]), tools=shop.tools, sinks=[store.record])
        assert store.pending(api_key_id="key-b") == [] and len(store.pending(api_key_id="key-a")) == 1
        with pytest.raises(KeyError, match="no run"):
            await agent.resume(started["run_id"], {action_id: True}, api_key_id="key-b")
        with pytest.raises(ActionNotPending, match="no such action"):
            await agent.resume(started["run_id"], {"act_forged": True})
        assert store.get_run(started["run_id"])["status"] == "waiting" and not orders(shop)  # all or nothing
        run = await agent.resume(started["run_id"], {action_id: True}, api_key_id="key-a")
        assert run.status == "ok"
        store.flush()
        with pytest.raises(RunNotWaiting, match="is ok"):
            await agent.resume(started["run_id"], {action_id: True})
        assert len(orders(shop)) == 1


async def test_a_waiting_plan_with_a_store_still_confirms_in_process(tmp_path, shop):
    plan = '1. menu()\n2. place_order(pizza="margherita", quantity=2)\n3. join()'
    with RunStore(tmp_path / "runs.db") as store:
        run = await Agent(ScriptedModel([plan, "Two margherita are ordered."]), tools=shop.tools,
                          sinks=[store.record], planner="plan").run("menu, and order two margherita")
        assert run.status == "waiting" and store.checkpoint(run.id) is not None and [e.tool for e in run.tool_results] == ["menu"]
        await run.confirm(run.waiting[0].id)
        assert run.status == "ok" and run.answer == "Two margherita are ordered." and len(orders(shop)) == 1
