"""The run store: every run, successful or not, with its costs and the confirmations it waits for.

One store for one process or many: a SQLite file (the default, under PLUGDECK_HOME) or a
PostgreSQL database given by URL, which several `plugdeck serve` replicas share. Both get the
same schema through the same migrations (see migrations.py).

Events are handed to a writer thread, so recording costs the agent a queue put, not a disk or
network write. The writer commits whatever has queued up in one transaction: a crash leaves the
last committed state, never a torn one. When the database is unreachable the writer reconnects
with backoff and retries the same batch (every row has a stable key, so a retry never duplicates
one); meanwhile events wait in a bounded buffer, and once that is full they are dropped, counted
per run (`lost_events`) and reported by `health()`: recording never blocks a run.

A run that waits for a person's OK is *parked*: its checkpoint and pending actions are committed,
and from then on any process may take it over (`take_over`) and carry it on (Agent.resume); the
store is the agent's Book (plugdeck.agent.pause) for the runs it records.
Decisions and executions are single transitions that only one process can win, so an approved
action runs once however many replicas try. Runs left `running` by a process that died are
marked `aborted` the next time a store opens on that host (after a `PRAGMA quick_check` of a
SQLite file); parked runs wait on. SQLite commits with synchronous=FULL; what a power loss
does to the disk is beyond what the tests can show.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..agent.pause import ActionNotPending, ParkOutcome, RunNotWaiting
from ..events import Event, ModelCalled, RunFinished, RunStarted, TextDelta
from ..redaction import is_postgres, redact_value
from ..retry import Backoff
from .migrations import migrate
from .rundb import RunStoreError, RunStoreUnavailable, open_database

__all__ = ["RunStore", "RunStoreError", "RunStoreUnavailable", "ActionNotPending", "RunNotWaiting"]

log = logging.getLogger("plugdeck.runstore")

RUN_COLUMNS = ("id", "question", "model", "status", "answer", "error", "started_at", "duration", "steps",
               "model_calls", "tool_calls", "prompt_tokens", "completion_tokens", "cost", "api_key_id", "lost_events",
               "conversation_id")
ACTION_COLUMNS = ("id", "run_id", "call_id", "tool", "arguments", "summary", "reason", "from_untrusted", "status",
                  "requested_at", "decided_by", "note", "decided_at", "executed_by", "executed_at")
LIVE = ("waiting", "running")  # statuses of runs that still have a future
COST_GROUPS = {"day": "m.day", "key": "COALESCE(r.api_key_id, '')", "model": "m.model"}
# model_calls column -> its total's name in costs(): tokens, cost, and how many calls were estimated or unpriced.
COST_SUMS = {"prompt_tokens": "prompt_tokens", "completion_tokens": "completion_tokens", "cached_tokens": "cached_tokens",
             "reasoning_tokens": "reasoning_tokens", "cost": "cost", "estimated": "estimated_calls",
             "unpriced": "unpriced_calls"}
MAX_BATCH = 1000


@dataclass(slots=True)
class _Event:
    event: Event
    at: float  # wall clock when it was recorded
    seq: int | None = None  # fixed at the first attempt, so a retried batch writes the same rows


@dataclass
class _Park:
    run_id: str
    driver: str
    checkpoint: dict[str, Any]
    actions: list[dict[str, Any]]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    outcome: Any = None


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class RunStore:
    """`RunStore(path)` for SQLite, `RunStore("postgresql://user@host/db")` for PostgreSQL.

    `buffer`: events held while the database is unreachable (then they are dropped and counted).
    `timeout`: seconds any one database operation may take before it fails with RunStoreUnavailable.
    """

    def __init__(self, target: str | Path, *, buffer: int = 10_000, timeout: float = 10.0):
        self.db = open_database(target, timeout)
        self.where = self.db.where
        self.path = None if is_postgres(target) else self.db.path
        self.timeout = timeout
        self.host = socket.gethostname()
        try:
            with self._session() as conn:
                migrate(conn)
                dead = self._dead_runs(conn)
                if dead:  # a process died while writing: look the file over before trusting it (SQLite)
                    self.db.check_integrity(conn)
                    self._abort(conn, dead)
        except BaseException:
            self.db.close()  # a store that cannot open leaves no pool behind
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=buffer)
        self._seq: dict[str, int] = {}  # next event number per run (writer thread only)
        self._lost: dict[str, int] = {}  # run id -> events dropped because the buffer was full
        self._unrecorded: set[str] = set()  # runs whose start was dropped
        self._lost_lock = threading.Lock()
        self.dropped = 0
        self._warned = False  # about dropping, once per outage
        self.reconnects = 0
        self.problem: str | None = None  # what the writer last ran into, until it recovers
        self._give_up_at: float | None = None  # set by close(): stop retrying after this moment
        self._writer = threading.Thread(target=self._write_loop, name="plugdeck-runstore", daemon=True)
        self._writer.start()

    # ---- recording (the agent's hot path) -------------------------------------------------------

    def record(self, event: Event) -> None:
        """Sink for Agent(sinks=[store.record]). Text deltas are not kept: model_called has the text.

        A run recorded here also keeps its checkpoints here, so it can resume in another process."""
        if isinstance(event, TextDelta):
            return
        try:
            if event.run_id in self._unrecorded:
                raise queue.Full  # its start was dropped: the rest of it has nowhere to go
            self._queue.put_nowait(_Event(event, time.time()))
        except queue.Full:
            with self._lost_lock:
                if isinstance(event, RunStarted):
                    self._unrecorded.add(event.run_id)
                elif isinstance(event, RunFinished):
                    self._unrecorded.discard(event.run_id)
                if event.run_id not in self._unrecorded:
                    self._lost[event.run_id] = self._lost.get(event.run_id, 0) + 1
                self.dropped += 1
                first, self._warned = not self._warned, True
            if first:
                log.error("the run store at %s is not keeping up (%s); events are being dropped and counted per run",
                          self.where, self.problem or "busy")

    def park(self, run_id: str, driver: str, checkpoint: dict[str, Any], actions: list[dict[str, Any]]):
        """Commit a waiting run's checkpoint and pending actions after its events (an asyncio future of a
        ParkOutcome). Decisions already given elsewhere while the run was busy come back instead of a wait."""
        import asyncio

        item = _Park(run_id, driver, checkpoint, actions)
        if self._give_up_at is not None:
            raise RunStoreUnavailable(f"the run store at {self.where} is closed; the run waits in this process only")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise RunStoreUnavailable(f"the run store at {self.where} is not taking writes ({self.problem or 'busy'}); "
                                      "the run waits in this process only") from None
        return asyncio.wrap_future(item.future)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything recorded so far is committed (RunStoreUnavailable after `timeout`)."""
        if not self._writer.is_alive():
            return
        marker, deadline = _Flush(), time.monotonic() + timeout
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            marker = None
        if marker is None or not marker.done.wait(max(0.0, deadline - time.monotonic())):
            raise RunStoreUnavailable(f"the run store at {self.where} did not take the recorded events within "
                                      f"{timeout:g} s ({self.problem or 'busy'})")

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued (for at most `timeout` seconds, default the store's), then stop."""
        timeout = self.timeout if timeout is None else timeout
        if self._writer.is_alive():
            self._give_up_at = time.monotonic() + timeout
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self._writer.join(timeout + 1.0)
            if self._writer.is_alive():
                log.error("the run store at %s is unreachable; %d queued event(s) were not stored",
                          self.where, self._queue.qsize())
            else:
                self._fail_leftovers()
        self.db.close()

    def _fail_leftovers(self) -> None:
        """Whatever was queued after the store stopped: nobody waits on it forever."""
        leftovers = []
        while True:
            try:
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        leftovers = [item for item in leftovers if item is not _STOP]
        if leftovers:
            self._abandon(leftovers, RunStoreUnavailable("it was closed"))

    def health(self) -> dict[str, Any]:
        """For a health endpoint: is the writer keeping up, what it last ran into, what was dropped."""
        return {"ok": self.problem is None and self._writer.is_alive(), "store": self.where,
                "queued": self._queue.qsize(), "dropped": self.dropped, "reconnects": self.reconnects,
                "problem": self.problem}

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- the writer thread --------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = None
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:  # take everything already waiting: one transaction for the lot
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                work = [item for item in batch if item is not _STOP]
                conn = self._commit(conn, work)
                if len(work) < len(batch):
                    return
        finally:
            if conn is not None:
                conn.close()

    def _commit(self, conn, items: list) -> Any:
        """Write the batch in one transaction, retrying through outages; return the connection to reuse."""
        backoff, retries = Backoff(first=0.05, cap=2.0, jitter="none"), 0
        with self._lost_lock:
            lost = dict(self._lost)
        while True:
            try:
                if conn is None:
                    conn = self.db.connect()
                self._write(conn, items, lost)
            except Exception as exc:
                unavailable = self.db.is_unavailable(exc)
                if unavailable and not self._giving_up():
                    if self.problem is None:
                        log.warning("the run store at %s is unreachable (%s); retrying, events wait in a buffer",
                                    self.where, _first_line(exc))
                    self.problem = f"unreachable: {_first_line(exc)}"
                    if conn is not None:
                        conn.close()
                    conn = None
                    retries += 1
                    time.sleep(backoff.delay(retries))
                    continue
                if unavailable:
                    self._abandon(items, exc)
                    if conn is not None:
                        conn.close()
                    return None
                return self._write_each(conn, items, exc)
            if self.problem is not None:
                log.warning("the run store at %s is reachable again", self.where)
                self.problem, self._warned = None, False
                self.reconnects += 1
            with self._lost_lock:
                for run_id, count in lost.items():
                    self._lost[run_id] -= count
                    if not self._lost[run_id]:
                        del self._lost[run_id]
            self._settle(items)
            return conn

    def _giving_up(self) -> bool:
        return self._give_up_at is not None and time.monotonic() > self._give_up_at

    def _write(self, conn, items: list, lost: dict[str, int]) -> None:
        with conn.batch(), conn.transaction():
            for item in items:
                if isinstance(item, _Event):
                    self._write_event(conn, item)
                elif isinstance(item, _Park):
                    item.outcome = self._write_park(conn, item)
            for run_id, count in lost.items():
                conn.execute("UPDATE runs SET lost_events = lost_events + ? WHERE id = ?", (count, run_id))

    def _write_each(self, conn, items: list, first_error: Exception) -> Any:
        """One item refused (a bug, a value the database will not take): keep the rest, report the one."""
        log.warning("a batch for the run store at %s was refused (%s); writing its entries one by one",
                    self.where, _first_line(first_error))
        for position, item in enumerate(items):
            try:
                self._write(conn, [item], {})
            except Exception as exc:
                if self.db.is_unavailable(exc):  # the database went away meanwhile: back to retrying
                    conn.close()
                    return self._commit(None, items[position:])
                run_id = getattr(getattr(item, "event", item), "run_id", "?")
                log.error("the run store could not write an entry of run %s: %s", run_id, _first_line(exc))
                if isinstance(item, _Park):
                    item.future.set_exception(RunStoreError(f"the checkpoint of run {run_id} was not stored: "
                                                            f"{_first_line(exc)}"))
                elif isinstance(item, _Event):
                    with self._lost_lock:
                        self.dropped += 1
            else:
                self._settle([item])
        return conn

    def _abandon(self, items: list, exc: Exception) -> None:
        events = sum(isinstance(item, _Event) for item in items)
        with self._lost_lock:
            self.dropped += events
        log.error("the run store at %s is unreachable (%s); %d event(s) were not stored", self.where,
                  _first_line(exc), events)
        error = RunStoreUnavailable(f"the run store at {self.where} is unreachable: {_first_line(exc)}")
        for item in items:
            if isinstance(item, _Park) and not item.future.done():
                item.future.set_exception(error)
            elif isinstance(item, _Flush):
                item.done.set()

    @staticmethod
    def _settle(items: list) -> None:
        for item in items:
            if isinstance(item, _Park) and not item.future.done():
                item.future.set_result(item.outcome)
            elif isinstance(item, _Flush):
                item.done.set()

    def _write_event(self, conn, item: _Event) -> None:
        event = item.event
        # What is kept holds none of the platform's secrets, whatever a model or tool said (R10).
        fields = redact_value(event.to_dict())
        if isinstance(event, RunStarted):
            conn.execute(
                "INSERT INTO runs (id, question, model, status, started_at, pid, host, api_key_id, conversation_id) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (event.run_id, _text(fields["question"]), _text(event.model), event.started_at, os.getpid(), self.host,
                 event.api_key_id, _text(event.conversation_id) or event.run_id),
            )
        if item.seq is None:
            item.seq = self._next_seq(conn, event)
        data = json.dumps(fields, ensure_ascii=False, default=str)
        conn.execute("INSERT INTO events (run_id, seq, type, t, data) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT (run_id, seq) DO NOTHING", (event.run_id, item.seq, event.type, event.t, data))
        if isinstance(event, RunFinished):
            conn.execute(
                "UPDATE runs SET status=?, answer=?, error=?, duration=?, steps=?, model_calls=?, tool_calls=?,"
                " prompt_tokens=?, completion_tokens=?, cost=? WHERE id=?",
                (event.status, _text(fields["answer"]), _text(fields["error"]), event.duration, event.steps,
                 event.model_calls, event.tool_calls, event.prompt_tokens, event.completion_tokens, event.cost, event.run_id),
            )
            conn.execute("UPDATE actions SET status='expired' WHERE run_id = ? AND status IN ('pending', 'approved')",
                         (event.run_id,))
            self._seq.pop(event.run_id, None)
        elif isinstance(event, ModelCalled):
            conn.execute(
                "INSERT INTO model_calls (run_id, seq, step, model, prompt_tokens, completion_tokens, cost, at, day,"
                " cached_tokens, reasoning_tokens, estimated, unpriced) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO NOTHING",
                (event.run_id, item.seq, event.step, _text(event.model), event.prompt_tokens, event.completion_tokens,
                 event.cost, item.at, _utc_day(item.at), event.cached_tokens, event.reasoning_tokens,
                 int(event.estimated), int(not event.priced)),
            )
            # Totals recomputed, not incremented: writing the same batch twice changes nothing.
            conn.execute(
                "UPDATE runs SET prompt_tokens = (SELECT COALESCE(SUM(prompt_tokens), 0) FROM model_calls WHERE run_id = ?),"
                " completion_tokens = (SELECT COALESCE(SUM(completion_tokens), 0) FROM model_calls WHERE run_id = ?),"
                " cost = (SELECT COALESCE(SUM(cost), 0) FROM model_calls WHERE run_id = ?) WHERE id = ?",
                (event.run_id,) * 4,
            )

    def _next_seq(self, conn, event: Event) -> int:
        if isinstance(event, RunStarted):
            seq = 0
        elif event.run_id in self._seq:
            seq = self._seq[event.run_id]
        else:  # a run this process did not start, or one that was parked: go on from what is stored
            seq = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM events WHERE run_id = ?",
                               (event.run_id,)).fetchone()[0]
        self._seq[event.run_id] = seq + 1
        return seq

    def _write_park(self, conn, park: _Park) -> ParkOutcome:
        row = conn.execute(f"SELECT driver FROM runs WHERE id = ?{_for_update(conn)}", (park.run_id,)).fetchone()
        if row is None:
            raise RunStoreError(f"run {park.run_id} is not in the store (its start was not recorded)")
        if row[0] not in (None, park.driver):
            return ParkOutcome(moved=True)
        now = time.time()
        for a in park.actions:
            conn.execute(
                "INSERT INTO actions (id, run_id, call_id, tool, arguments, summary, reason, from_untrusted, status,"
                " requested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (id) DO NOTHING",
                (a["id"], park.run_id, a["call_id"], a["tool"], _json(a["arguments"]), _text(a["summary"]),
                 _text(a["reason"]), _json(a["from_untrusted"]), a.get("requested_at") or now),
            )
        waiting = {a["id"] for a in park.actions}
        decisions = {
            action_id: (status == "approved", by or "", note or "")
            for action_id, status, by, note in conn.execute(
                "SELECT id, status, decided_by, note FROM actions WHERE run_id = ? AND status IN ('approved', 'rejected')",
                (park.run_id,))
            if action_id in waiting
        }
        conn.execute("INSERT INTO checkpoints (run_id, data, updated_at) VALUES (?, ?, ?) ON CONFLICT (run_id) "
                     "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                     (park.run_id, _json(park.checkpoint), now))
        conn.execute("UPDATE runs SET status = ?, driver = ? WHERE id = ?",
                     ("running" if decisions else "waiting", park.driver, park.run_id))
        self._seq.pop(park.run_id, None)  # whoever carries the run on next numbers its events from the store
        return ParkOutcome(decisions=decisions)

    # ---- decisions: each a transition only one process can make --------------------------------

    def take_over(self, run_id: str, decisions: dict[str, tuple[bool, str, str]], *, driver: str,
                  api_key_id: str | None = None) -> dict[str, Any] | None:
        """Record decisions (action id -> (approved, by, note)), all or none, and take the run over if it is
        parked. Returns {"run", "checkpoint", "actions"} to carry it on with, or None when another process
        is carrying it on right now (it picks the decisions up before it waits again).

        With `api_key_id`, a run started under another key is treated as unknown."""
        with self._session() as conn, conn.transaction():
            row = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)}, driver FROM runs WHERE id = ?{_for_update(conn)}",
                               (run_id,)).fetchone()
            if row is None or (api_key_id is not None and row[RUN_COLUMNS.index("api_key_id")] != api_key_id):
                raise KeyError(f"no run with id {run_id!r}")
            run = dict(zip(RUN_COLUMNS, row))
            if run["status"] not in LIVE:
                raise RunNotWaiting(f"run {run_id} is {run['status']}: nothing of it waits for a decision")
            for action_id, (approved, by, note) in decisions.items():
                self._decide(conn, run_id, action_id, approved, by, note)
            if run["status"] != "waiting":
                return None
            data = conn.execute("SELECT data FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
            if data is None:
                raise RunStoreError(f"run {run_id} waits but has no checkpoint to resume from")
            conn.execute("UPDATE runs SET status = 'running', driver = ?, pid = ?, host = ? WHERE id = ?",
                         (driver, os.getpid(), self.host, run_id))
            actions = {a["id"]: a for a in self._actions(conn, run_id)}
        return {"run": run, "checkpoint": json.loads(data[0]), "actions": actions}

    def release(self, run_id: str, *, driver: str) -> None:
        """Hand a taken-over run back, waiting, when it cannot be carried on here after all."""
        with self._session() as conn, conn.transaction():
            conn.execute("UPDATE runs SET status = 'waiting' WHERE id = ? AND driver = ? AND status = 'running'",
                         (run_id, driver))

    def claim(self, action_id: str, *, driver: str) -> bool:
        """Claim an approved action for execution. Only one caller ever gets True."""
        with self._session() as conn, conn.transaction():
            done = conn.execute("UPDATE actions SET status = 'executed', executed_by = ?, executed_at = ? "
                                "WHERE id = ? AND status = 'approved'", (driver, time.time(), action_id))
            return done.rowcount == 1

    @staticmethod
    def _decide(conn, run_id: str, action_id: str, approved: bool, by: str, note: str) -> None:
        done = conn.execute(
            "UPDATE actions SET status = ?, decided_by = ?, note = ?, decided_at = ? "
            "WHERE id = ? AND run_id = ? AND status = 'pending'",
            ("approved" if approved else "rejected", _text(by), _text(note), time.time(), action_id, run_id))
        if done.rowcount != 1:
            row = conn.execute("SELECT status FROM actions WHERE id = ? AND run_id = ?", (action_id, run_id)).fetchone()
            state = f"it was already {row[0]}" if row else "there is no such action"
            raise ActionNotPending(f"action {action_id!r} of run {run_id} does not wait for a decision: {state}")

    # ---- reading ------------------------------------------------------------------------------

    def list_runs(self, limit: int = 20, status: str | None = None, *, api_key_id: str | None = None,
                  conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first; `conversation_id`: only that conversation's (a prefix of its id is enough)."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if conversation_id:
            where.append("substr(conversation_id, 1, ?) = ?")
            params += [len(conversation_id), conversation_id]
        if api_key_id is not None:
            where.append("api_key_id = ?")
            params.append(api_key_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        params.append(limit)
        with self._session() as conn:
            return [_run_row(row) for row in conn.execute(sql, params).fetchall()]

    def get_run(self, run_id: str, *, api_key_id: str | None = None) -> dict[str, Any]:
        """A run with its events and actions; a unique prefix of the id is enough.

        With `api_key_id`, only that key's runs count, for the id and for what the prefix matches: another
        key's run answers exactly like a run that does not exist (and an ambiguous prefix never says that
        others' runs share it). Without, every run (the operator)."""
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE substr(id, 1, ?) = ?"
        params: list[Any] = [len(run_id), run_id]
        if api_key_id is not None:
            sql += " AND api_key_id = ?"
            params.append(api_key_id)
        with self._session() as conn:
            rows = conn.execute(sql + " LIMIT 2", params).fetchall() if run_id else []
            if not rows:
                raise KeyError(f"no run with id {run_id!r}")
            if len(rows) > 1:
                raise KeyError(f"more than one run starts with {run_id!r}; give more of the id")
            run = _run_row(rows[0])
            events = conn.execute("SELECT data FROM events WHERE run_id = ? ORDER BY seq", (run["id"],)).fetchall()
            run["events"] = [json.loads(data) for (data,) in events]
            run["actions"] = self._actions(conn, run["id"])
        return run

    def search(self, text: str, limit: int = 20, *, api_key_id: str | None = None) -> list[dict[str, Any]]:
        """Runs whose question or answer holds every word of `text` (any case), newest first.

        A LIKE per word (ILIKE on PostgreSQL), so it finds parts of words and needs no index to stay in step."""
        words = text.split()
        if not words:
            raise ValueError("give some text to search for")
        like = "ILIKE" if self.db.dialect == "postgres" else "LIKE"
        where, params = [], []
        for word in words:
            pattern = "%" + _text(word).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(f"(question {like} ? ESCAPE '\\' OR COALESCE(answer, '') {like} ? ESCAPE '\\')")
            params += [pattern, pattern]
        if api_key_id is not None:
            where.append("api_key_id = ?")
            params.append(api_key_id)
        sql = (f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE {' AND '.join(where)} "
               "ORDER BY started_at DESC, id DESC LIMIT ?")
        with self._session() as conn:
            return [_run_row(row) for row in conn.execute(sql, [*params, limit]).fetchall()]

    def latest_conversation(self, *, api_key_id: str | None = None) -> str | None:
        """The conversation of the newest run started by `api_key_id` (None: runs started without a key, the
        command line's), or None when there is none."""
        owner = "api_key_id IS NULL" if api_key_id is None else "api_key_id = ?"
        with self._session() as conn:
            row = conn.execute(f"SELECT conversation_id FROM runs WHERE {owner} ORDER BY started_at DESC, id DESC "
                               "LIMIT 1", () if api_key_id is None else (api_key_id,)).fetchone()
        return row[0] if row else None

    def conversation(self, conversation_id: str) -> list[dict[str, Any]]:
        """The runs of a conversation, oldest first, with their events (a unique prefix of its id is enough)."""
        with self._session() as conn:
            ids = [row[0] for row in conn.execute(
                "SELECT DISTINCT conversation_id FROM runs WHERE substr(conversation_id, 1, ?) = ? LIMIT 2",
                (len(conversation_id), conversation_id)).fetchall()] if conversation_id else []
            if not ids:
                raise KeyError(f"no conversation with id {conversation_id!r} (see: plugdeck runs)")
            if len(ids) > 1:
                raise KeyError(f"more than one conversation starts with {conversation_id!r}; give more of the id")
            rows = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE conversation_id = ? "
                                "ORDER BY started_at, id", (ids[0],)).fetchall()
            runs = [_run_row(row) for row in rows]
            for run in runs:
                events = conn.execute("SELECT data FROM events WHERE run_id = ? ORDER BY seq", (run["id"],)).fetchall()
                run["events"] = [json.loads(data) for (data,) in events]
        return runs

    def pending(self, run_id: str | None = None, *, api_key_id: str | None = None) -> list[dict[str, Any]]:
        """Actions waiting for a person's decision, oldest first, with their run's question and key."""
        sql = (f"SELECT {', '.join('a.' + c for c in ACTION_COLUMNS)}, r.question, r.api_key_id FROM actions a "
               "JOIN runs r ON r.id = a.run_id WHERE a.status = 'pending' AND r.status IN ('waiting', 'running')")
        params: list[Any] = []
        if run_id is not None:
            sql += " AND a.run_id = ?"
            params.append(run_id)
        if api_key_id is not None:
            sql += " AND r.api_key_id = ?"
            params.append(api_key_id)
        with self._session() as conn:
            rows = conn.execute(sql + " ORDER BY a.requested_at, a.id", params).fetchall()
        return [{**_action_row(row[:len(ACTION_COLUMNS)]), "question": row[-2], "api_key_id": row[-1]} for row in rows]

    def tag(self, run_id: str, tag: str, *, remove: bool = False) -> str:
        """Put a tag on a run, or take it off (`runs export --tag` chooses runs by it); returns the run's id."""
        tag = tag.strip()
        if not tag:
            raise ValueError("a tag needs at least one character")
        full = self.get_run(run_id)["id"]  # a unique prefix is enough, as everywhere
        with self._session() as conn, conn.transaction():
            if remove:
                conn.execute("DELETE FROM run_tags WHERE run_id = ? AND tag = ?", (full, tag))
            else:
                conn.execute("INSERT INTO run_tags (run_id, tag) VALUES (?, ?) ON CONFLICT (run_id, tag) DO NOTHING",
                             (full, _text(tag)))
        return full

    def tags(self, run_id: str) -> list[str]:
        with self._session() as conn:
            return [tag for (tag,) in conn.execute("SELECT tag FROM run_tags WHERE run_id = ? ORDER BY tag", (run_id,))]

    def checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The checkpoint of a run that waited for a person (its `setup` says how to rebuild the agent)."""
        with self._session() as conn:
            row = conn.execute("SELECT data FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def costs(self, group_by: str = "day", since: float | date | datetime | None = None) -> list[dict[str, Any]]:
        """Model calls, tokens and cost per day (UTC), per API key or per model, from `since` on."""
        if group_by not in COST_GROUPS:
            raise ValueError(f"group costs by day, key or model, not {group_by!r}")
        sums = ", ".join(f"COALESCE(SUM(m.{column}), 0)" for column in COST_SUMS)
        sql = (f"SELECT {COST_GROUPS[group_by]} AS grp, COUNT(DISTINCT m.run_id), COUNT(*), {sums} "
               "FROM model_calls m JOIN runs r ON r.id = m.run_id WHERE m.at >= ? GROUP BY grp ORDER BY grp")
        with self._session() as conn:
            rows = conn.execute(sql, (_epoch(since),)).fetchall()
        return [{group_by: grp if grp != "" else None, "runs": int(runs), "model_calls": int(calls),
                 **{COST_SUMS[column]: (float if column == "cost" else int)(value)
                    for column, value in zip(COST_SUMS, values)}}
                for grp, runs, calls, *values in rows]

    @staticmethod
    def _actions(conn, run_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(f"SELECT {', '.join(ACTION_COLUMNS)} FROM actions WHERE run_id = ? ORDER BY requested_at, id",
                            (run_id,)).fetchall()
        return [_action_row(row) for row in rows]

    # ---- housekeeping -------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """A connection for one operation; database errors become RunStoreError / RunStoreUnavailable."""
        try:
            with self.db.session() as conn:
                yield conn
        except RunStoreError:
            raise
        except self.db.errors as exc:
            if self.db.is_unavailable(exc):
                raise RunStoreUnavailable(f"the run store at {self.where} is unreachable or busy: {_first_line(exc)}; "
                                          "try again") from None
            raise RunStoreError(f"the run store at {self.where} failed: {_first_line(exc)}") from None

    def _dead_runs(self, conn) -> list[tuple[str, int]]:
        """Runs left `running` by processes of this host that are gone (another host's are its own business)."""
        rows = conn.execute("SELECT id, pid, host FROM runs WHERE status = 'running'").fetchall()
        return [(run_id, pid) for run_id, pid, host in rows
                if (host == self.host or (host is None and self.db.dialect == "sqlite"))
                and pid is not None and not _alive(pid)]

    @staticmethod
    def _abort(conn, dead: list[tuple[str, int]]) -> None:
        for run_id, pid in dead:
            with conn.transaction():
                conn.execute("UPDATE runs SET status = 'aborted', error = 'the process recording this run ended "
                             "before it finished' WHERE id = ? AND status = 'running' AND pid = ?", (run_id, pid))
                conn.execute("UPDATE actions SET status = 'expired' WHERE run_id = ? AND status IN "
                             "('pending', 'approved')", (run_id,))


def _for_update(conn) -> str:
    return " FOR UPDATE" if conn.dialect == "postgres" else ""  # SQLite's BEGIN IMMEDIATE already locks


def _run_row(row) -> dict[str, Any]:
    return dict(zip(RUN_COLUMNS, row))


def _action_row(row) -> dict[str, Any]:
    action = dict(zip(ACTION_COLUMNS, row))
    action["arguments"] = json.loads(action["arguments"])
    action["from_untrusted"] = json.loads(action["from_untrusted"])
    return action


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(value: str | None) -> str | None:
    # PostgreSQL refuses NUL in text; both stores keep the same (visible) replacement.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _epoch(since: float | date | datetime | None) -> float:
    if since is None:
        return 0.0
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, date):
        return datetime(since.year, since.month, since.day, tzinfo=timezone.utc).timestamp()
    return float(since)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
