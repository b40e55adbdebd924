"""PostgreSQL going away (R35): clear errors, runs that never block on the store, a bounded buffer
that drops visibly, reconnection without duplicate rows, and waiting runs that keep their word.

The shared server is not restarted: an outage is made by refusing connections to the test's own
database and ending its sessions, which is what a server restart looks like to a client.
"""

import asyncio
import threading
import time
from contextlib import closing

import pytest

from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.ops.rundb import RunStoreUnavailable, open_database
from runstore_pg import admin


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


@tool(effect="write")
def send(text: str) -> str:
    """Send a message."""
    SENT.append(text)
    return "sent"


SENT: list[str] = []
TURNS = [{"tool_calls": [{"name": "echo", "arguments": {"text": "a"}}]}, "done"]  # 8 events stored


def database(url):
    return url.rsplit("/", 1)[1]


def end_sessions(url):
    with admin() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (database(url),))


def outage(url, down: bool):
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {database(url)} ALLOW_CONNECTIONS {'false' if down else 'true'}")
    if down:
        end_sessions(url)


def stored_events(url):
    db = open_database(url, 5)
    with closing(db), db.session() as conn:
        return conn.execute("SELECT run_id, COUNT(*), MAX(seq) FROM events GROUP BY run_id").fetchall()


def test_an_unreachable_server_is_a_clear_error_at_once():
    started = time.perf_counter()
    with pytest.raises(RunStoreUnavailable) as refused:
        RunStore("postgresql://postgres:s3cret@127.0.0.1:1/plugdeck", timeout=2)
    print(f"refused connection reported after {time.perf_counter() - started:.3f} s")
    message = str(refused.value)
    assert message.startswith("cannot reach the run store at postgresql://postgres:***@127.0.0.1:1/plugdeck: ")
    assert "PLUGDECK_RUN_STORE" in message and "s3cret" not in message


def test_a_missing_database_is_a_clear_error():
    with pytest.raises(RunStoreUnavailable, match='database "plugdeck_runtest_none" does not exist'):
        RunStore("postgresql://postgres@127.0.0.1:5432/plugdeck_runtest_none")


def test_sessions_ended_under_load_lose_and_duplicate_nothing(pg_url):
    stop = threading.Event()

    def keep_ending_sessions():
        while not stop.wait(0.05):
            end_sessions(pg_url)

    with RunStore(pg_url) as store:
        killer = threading.Thread(target=keep_ending_sessions)
        killer.start()
        try:
            runs = [Agent(ScriptedModel(TURNS), tools=[echo], sinks=[store.record]).run_sync(f"run {i}")
                    for i in range(60)]
            time.sleep(0.2)
        finally:
            stop.set()
            killer.join()
        store.flush(timeout=20)
        assert store.health()["ok"] and store.dropped == 0
        print(f"writer reconnected {store.reconnects} time(s)")
        assert store.reconnects >= 1
        assert {r["id"]: r["status"] for r in store.list_runs(limit=100)} == {run.id: "ok" for run in runs}
    assert sorted(stored_events(pg_url)) == sorted((run.id, 8, 7) for run in runs)


def test_an_outage_never_blocks_runs_and_drops_visibly_from_a_bounded_buffer(pg_url):
    with RunStore(pg_url, buffer=40, timeout=2) as store:
        before = Agent(ScriptedModel(TURNS), tools=[echo], sinks=[store.record]).run_sync("before")
        store.flush()
        outage(pg_url, down=True)
        try:
            during = [Agent(ScriptedModel(TURNS), tools=[echo], sinks=[store.record]).run_sync(f"during {i}")
                      for i in range(30)]  # 240 events for a buffer of 40: every run still finishes
            assert all(run.status == "ok" for run in during)
            health = store.health()
            assert not health["ok"] and health["problem"].startswith("unreachable: ")
            assert health["dropped"] > 0 and health["queued"] <= 40
            with pytest.raises(RunStoreUnavailable, match="did not take the recorded events within 0.5 s"):
                store.flush(timeout=0.5)
            with pytest.raises(RunStoreUnavailable):
                store.list_runs()
        finally:
            outage(pg_url, down=False)
        store.flush(timeout=20)
        assert store.health()["ok"] and store.reconnects >= 1
        after = Agent(ScriptedModel(TURNS), tools=[echo], sinks=[store.record]).run_sync("after")
        store.flush()
        stored = {r["id"]: r for r in store.list_runs(limit=100)}
        assert stored[before.id]["status"] == stored[after.id]["status"] == "ok"
        kept = [run for run in during if run.id in stored]
        assert kept and len(kept) < len(during)  # what fitted in the buffer, no more
        # Every kept event is there once, numbered without gaps; what was lost is counted on its run.
        counts = {run_id: (count, top) for run_id, count, top in stored_events(pg_url)}
        assert all(count == top + 1 for count, top in counts.values())
        assert all(counts[run.id][0] + stored[run.id]["lost_events"] == 8 for run in kept)
        print(f"{store.dropped} event(s) dropped during the outage; {len(kept)} of {len(during)} runs kept")


async def test_a_run_that_waits_during_an_outage_is_answered_after_it(pg_url):
    with RunStore(pg_url, timeout=1) as store:
        agent = Agent(ScriptedModel([{"tool_calls": [{"name": "send", "arguments": {"text": "hi"}}]}, "sent it"]),
                      tools=[send], sinks=[store.record])
        started = await agent.run("say hi")  # recorded while the store is up
        await started.confirm(started.waiting[0].id)
        await asyncio.to_thread(store.flush)
        outage(pg_url, down=True)
        try:
            agent = Agent(ScriptedModel([{"tool_calls": [{"name": "send", "arguments": {"text": "yo"}}]}, "sent"]),
                          tools=[send], sinks=[store.record])
            run = await agent.run("say yo")  # returns: it waits, though its checkpoint cannot be stored yet
            assert run.status == "waiting"
            with pytest.raises(RunStoreUnavailable):  # the decision goes through the store, which is away
                await run.confirm(run.waiting[0].id)
        finally:
            outage(pg_url, down=False)
        await asyncio.to_thread(store.flush, 20)  # the store is back: the checkpoint is in
        assert store.checkpoint(run.id) is not None
        await run.confirm(run.waiting[0].id)  # and the decision goes through it
        assert run.status == "ok" and SENT == ["hi", "yo"]
        await asyncio.to_thread(store.flush)
        assert [a["status"] for a in store.get_run(run.id)["actions"]] == ["executed"]
