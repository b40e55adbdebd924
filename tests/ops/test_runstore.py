"""The run store: every run recorded, readable back, and never corrupted by a crash."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from plugdeck import Agent, RunStore, ScriptedModel, tool


@tool
def double(x: int) -> int:
    """Double a number."""
    return 2 * x


def test_runs_are_recorded_with_their_steps(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
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


def test_unknown_run_id_is_a_clear_error(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        try:
            store.get_run("ffff")
        except KeyError as exc:
            assert "no run with id 'ffff'" in str(exc)
        else:
            raise AssertionError("expected KeyError")


WRITER = textwrap.dedent("""
    import sys
    from plugdeck import Agent, RunStore, ScriptedModel, tool

    @tool
    def echo(text: str) -> str:
        \"\"\"Echo.\"\"\"
        return text * 50

    store = RunStore(sys.argv[1])
    print("ready", flush=True)
    while True:
        turns = [{"tool_calls": [{"name": "echo", "arguments": {"text": "abc"}}]}] * 3 + ["done"]
        Agent(ScriptedModel(turns), tools=[echo], sinks=[store.record]).run_sync("spin")
""")


def test_sigkill_during_writes_never_corrupts_the_store(tmp_path):
    db = tmp_path / "runs.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for kill in range(12):
        proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + (kill % 4) * 0.04)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with RunStore(db) as store:  # opening marks the killed processes' runs as aborted
        runs = store.list_runs(limit=10_000)
        assert runs and {r["status"] for r in runs} <= {"ok", "aborted"}
        assert any(r["status"] == "aborted" for r in runs)
        for summary in runs:
            run = store.get_run(summary["id"])
            seqs = [e["type"] for e in run["events"]]
            assert seqs[0] == "run_started"
            if summary["status"] == "ok":
                assert seqs[-1] == "run_finished" and run["answer"] == "done"
