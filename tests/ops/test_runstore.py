"""The run store: every run recorded, readable back, and never corrupted by a crash, on SQLite
and on PostgreSQL alike (`store_target` runs each test on both)."""

import json
import sqlite3
import subprocess
import sys
import textwrap

from plugdeck import Agent, RunStore, ScriptedModel, tool
from plugdeck.ops.rundb import open_database


@tool
def double(x: int) -> int:
    """Double a number."""
    return 2 * x


def test_runs_are_recorded_with_their_steps(store_target):
    with RunStore(store_target) as store:
        model = ScriptedModel([{"tool_calls": [{"name": "double", "arguments": {"x": 21}}],
                                "usage": {"prompt_tokens": 30, "completion_tokens": 5}},
                               {"text": "42", "usage": {"prompt_tokens": 40, "completion_tokens": 1}}])
        run = Agent(model, tools=[double], sinks=[store.record]).run_sync("double 21")
        failed = Agent(ScriptedModel([]), sinks=[store.record]).run_sync("no turns")
        store.flush()
        runs = store.list_runs()
        assert [r["id"] for r in runs] == [failed.id, run.id]  # newest first
        ok = store.get_run(run.id[:14])  # a prefix is enough
        assert ok["status"] == "ok" and ok["answer"] == "42"
        assert (ok["model_calls"], ok["tool_calls"], ok["prompt_tokens"], ok["completion_tokens"]) == (2, 1, 70, 6)
        types = [e["type"] for e in ok["events"]]
        assert types == ["run_started", "model_called", "tool_started", "policy_decision", "tool_finished",
                         "model_called", "answer",
                         "run_finished"]
        tool_event = ok["events"][4]
        assert tool_event["arguments"] == {"x": 21} and tool_event["result"] == 42 and tool_event["latency"] >= 0
        assert ok["events"][1]["messages"][-1] == {"role": "user", "content": "double 21"}
        bad = store.get_run(failed.id)
        assert bad["status"] == "error" and "no turn left" in bad["error"]
        assert store.list_runs(status="error")[0]["id"] == failed.id


def test_unknown_run_id_is_a_clear_error(store_target):
    with RunStore(store_target) as store:
        try:
            store.get_run("ffff")
        except KeyError as exc:
            assert "no run with id 'ffff'" in str(exc)
        else:
            raise AssertionError("expected KeyError")


KILLER = textwrap.dedent("""
    # Imports once, then forks writers and SIGKILLs each at a random moment of its writing.
    import os, random, signal, sys, time
    from plugdeck import Agent, RunStore, ScriptedModel, tool

    @tool
    def echo(text: str) -> str:
        \"\"\"Echo.\"\"\"
        return text * 50

    def write_forever(target, ready):
        store = RunStore(target)
        os.write(ready, b"x")
        while True:
            turns = [{"tool_calls": [{"name": "echo", "arguments": {"text": "abc"}}]}] * 3 + ["done"]
            Agent(ScriptedModel(turns), tools=[echo], sinks=[store.record]).run_sync("spin")

    target, kills = sys.argv[1], random.Random(7)
    for _ in range(int(sys.argv[2])):
        ready, signal_ready = os.pipe()
        pid = os.fork()
        if pid == 0:
            write_forever(target, signal_ready)
        os.read(ready, 1)
        time.sleep(kills.uniform(0.02, 0.12))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready), os.close(signal_ready)
    print("killed", flush=True)
""")


def test_sigkill_during_writes_never_corrupts_the_store(store_target, tmp_path):
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run([sys.executable, str(script), store_target, "20"], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "killed", done.stderr
    if not store_target.startswith("postgresql://"):
        with sqlite3.connect(store_target) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with RunStore(store_target) as store:  # opening marks the killed processes' runs as aborted
        runs = store.list_runs(limit=10_000)
        assert runs and {r["status"] for r in runs} <= {"ok", "aborted"}
        assert any(r["status"] == "aborted" for r in runs)
        for summary in runs:
            run = store.get_run(summary["id"])
            types = [e["type"] for e in run["events"]]
            assert types[0] == "run_started"
            if summary["status"] == "ok":
                assert types[-1] == "run_finished" and run["answer"] == "done"
                assert types.count("tool_finished") == 3
        # Every batch went in whole or not at all: no gap in any run's events, and the cost rows
        # written beside each model call are exactly there for the model calls that are.
        with open_database(store_target, 10).session() as conn:
            seqs = conn.execute("SELECT run_id, COUNT(*), MAX(seq) FROM events GROUP BY run_id").fetchall()
            assert all(count == top + 1 for _, count, top in seqs)
            calls = dict(conn.execute("SELECT run_id, COUNT(*) FROM events WHERE type = 'model_called' "
                                      "GROUP BY run_id").fetchall())
            costed = dict(conn.execute("SELECT run_id, COUNT(*) FROM model_calls GROUP BY run_id").fetchall())
            assert calls == costed


def test_stored_events_survive_as_json_with_odd_text(store_target):
    """Text the databases treat specially (NUL, quotes, non-ASCII) reads back as it went in, or visibly replaced."""
    odd = "caf\u00e9 'quoted' \"double\" \u4e2d\u6587 \x00 end"
    with RunStore(store_target) as store:
        run = Agent(ScriptedModel([odd]), sinks=[store.record]).run_sync(odd)
        store.flush()
        stored = store.get_run(run.id)
    assert stored["events"][-2] == {**stored["events"][-2], "type": "answer", "text": odd}
    assert stored["question"] == odd.replace("\x00", "\ufffd") and json.dumps(stored)
