"""The run store: every run, successful or not, in SQLite under PLUGDECK_HOME.

Events are handed to a writer thread, so recording costs the agent a queue put, not a disk
write. The writer commits whatever has queued up in one transaction (WAL mode): a crash
leaves the last committed state, never a torn one. Runs left `running` by a process that died
are marked `aborted` the next time the store opens.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

from ..events import Event, ModelCalled, RunFinished, RunStarted, TextDelta

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    answer TEXT,
    error TEXT,
    started_at REAL NOT NULL,
    duration REAL,
    steps INTEGER DEFAULT 0,
    model_calls INTEGER DEFAULT 0,
    tool_calls INTEGER DEFAULT 0,
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    t REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""

_STOP = object()
RUN_COLUMNS = ("id", "question", "model", "status", "answer", "error", "started_at", "duration", "steps",
               "model_calls", "tool_calls", "prompt_tokens", "completion_tokens")


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)
            _mark_dead_runs_aborted(db)
        self._queue: queue.Queue = queue.Queue()
        self._seq: dict[str, int] = {}
        self._writer = threading.Thread(target=self._write_loop, name="plugdeck-runstore", daemon=True)
        self._writer.start()

    # ---- writing ------------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Sink for Agent(sinks=[store.record]). Text deltas are not kept: model_called has the text."""
        if not isinstance(event, TextDelta):
            self._queue.put(event)

    def flush(self) -> None:
        """Block until everything recorded so far is committed."""
        self._queue.join()

    def close(self) -> None:
        if self._writer.is_alive():
            self._queue.put(_STOP)
            self._writer.join()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _write_loop(self) -> None:
        db = self._connect()
        try:
            while True:
                batch = [self._queue.get()]
                while True:  # take everything already waiting: one transaction for the lot
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = _STOP in batch
                events = [e for e in batch if e is not _STOP]
                try:
                    if events:
                        self._write(db, events)
                finally:
                    for _ in batch:
                        self._queue.task_done()
                if stop:
                    return
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection, events: list[Event]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                self._write_one(db, event)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_one(self, db: sqlite3.Connection, event: Event) -> None:
        if isinstance(event, RunStarted):
            db.execute(
                "INSERT OR IGNORE INTO runs (id, question, model, status, started_at, pid) VALUES (?, ?, ?, 'running', ?, ?)",
                (event.run_id, event.question, event.model, event.started_at, os.getpid()),
            )
        seq = self._seq.get(event.run_id, 0)
        self._seq[event.run_id] = seq + 1
        data = json.dumps(event.to_dict(), ensure_ascii=False, default=str)
        db.execute("INSERT OR REPLACE INTO events (run_id, seq, type, t, data) VALUES (?, ?, ?, ?, ?)",
                   (event.run_id, seq, event.type, event.t, data))
        if isinstance(event, RunFinished):
            db.execute(
                "UPDATE runs SET status=?, answer=?, error=?, duration=?, steps=?, model_calls=?, tool_calls=?,"
                " prompt_tokens=?, completion_tokens=? WHERE id=?",
                (event.status, event.answer, event.error, event.duration, event.steps, event.model_calls,
                 event.tool_calls, event.prompt_tokens, event.completion_tokens, event.run_id),
            )
            self._seq.pop(event.run_id, None)
        elif isinstance(event, ModelCalled) and (event.prompt_tokens or event.completion_tokens):
            db.execute("UPDATE runs SET prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ? "
                       "WHERE id=?", (event.prompt_tokens, event.completion_tokens, event.run_id))

    # ---- reading ------------------------------------------------------------------------------

    def list_runs(self, limit: int = 20, status: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        params.append(limit)
        with self._reader() as db:
            return [dict(zip(RUN_COLUMNS, row)) for row in db.execute(sql, params)]

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run with its events; a unique prefix of the id is enough."""
        with self._reader() as db:
            rows = db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE substr(id, 1, ?) = ? LIMIT 2",
                              (len(run_id), run_id)).fetchall() if run_id else []
            if not rows:
                raise KeyError(f"no run with id {run_id!r}")
            if len(rows) > 1:
                raise KeyError(f"more than one run starts with {run_id!r}; give more of the id")
            run = dict(zip(RUN_COLUMNS, rows[0]))
            events = db.execute("SELECT data FROM events WHERE run_id = ? ORDER BY seq", (run["id"],))
            run["events"] = [json.loads(data) for (data,) in events]
        return run

    def _reader(self) -> closing[sqlite3.Connection]:
        return closing(self._connect())


def _mark_dead_runs_aborted(db: sqlite3.Connection) -> None:
    for run_id, pid in db.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall():
        if pid is not None and not _alive(pid):
            db.execute("UPDATE runs SET status='aborted', error='the process recording this run ended before it finished'"
                       " WHERE id=?", (run_id,))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
