"""SQLite, read-only at the database level (layer 2), each query in a worker process that is killed
at its deadline.

The connection itself (sqlite_worker.py) is opened with `mode=ro`, an authorizer that allows only
reading, allowlisted functions and introspection pragmas, no attached databases, a cap on the size
of any value, and a progress handler that stops an ordinary long query at its deadline. SQLite
never checks that handler inside one function call, so the query runs in a process of its own,
and this side kills it when the deadline (plus a short grace) has passed: the deadline holds for
any single statement. A worker that answered in time is kept for the next query (each query still
gets a fresh connection); one that was killed is replaced.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from ...errors import PlugdeckError
from . import sqlite_worker
from .connect import CONNECT_TIMEOUT, Database, DatabaseError, Rows

KILL_GRACE = 0.5  # seconds past the deadline before the worker is killed (its own handler goes first)
WORKER = [sys.executable, "-I", "-S", sqlite_worker.__file__]  # no site-packages, no PYTHON* settings
IDLE_WORKERS = 4  # kept per database for the next queries


class _Killed(PlugdeckError):
    """The worker was killed at the deadline."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(WORKER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)

    def ask(self, request: dict, timeout: float) -> tuple:
        """Send one request and read the answer; kill the worker if the query outlives its deadline."""
        self.process.stdin.write(sqlite_worker.frame(request))
        self.process.stdin.flush()
        fd, buffer = self.process.stdout.fileno(), bytearray()
        started, ready_at, size = time.monotonic(), None, None
        while size is None or len(buffer) < size:
            # Opening the file may take a while on a busy machine; the query's deadline starts once it is open.
            limit = started + CONNECT_TIMEOUT if ready_at is None else ready_at + timeout + KILL_GRACE
            remaining = limit - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise _Killed(ready_at is not None)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise DatabaseError(f"the SQLite worker ended without an answer ({self._last_words()}); the query "
                                    "may need too much memory", "query_failed")
            buffer += chunk
            if ready_at is None and buffer.startswith(b"R"):
                ready_at = time.monotonic()
                del buffer[:1]
            if size is None and len(buffer) >= sqlite_worker.LENGTH:
                size = sqlite_worker.LENGTH + int.from_bytes(buffer[: sqlite_worker.LENGTH], "big")
        return pickle.loads(bytes(buffer[sqlite_worker.LENGTH :]))

    def _last_words(self) -> str:
        self.kill()
        lines = self.process.stderr.read().decode(errors="replace").strip().splitlines()
        return f"exit code {self.process.returncode}" + (f": {lines[-1]}" if lines else "")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


class SQLiteDatabase(Database):
    dialect = "sqlite"
    product = "SQLite"

    def __init__(self, path: Path, *, timeout: float):
        super().__init__(str(path), timeout)
        self.path = path
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def needs(self) -> dict[str, list[str]]:
        return {"files": [str(self.path)]}

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        if not self.path.is_file():
            raise DatabaseError(f"there is no SQLite database at {self.path}", "unreachable")
        request = {"path": str(self.path), "sql": sql, "params": list(params or ()), "max_rows": max_rows,
                   "timeout": self.timeout}
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None and worker.process.poll() is not None:  # ended while idle (killed from outside)
            worker.kill()
            worker = None
        worker = worker or _Worker()
        try:
            answer = worker.ask(request, self.timeout)
        except _Killed as killed:
            raise self.timeout_error(cut=killed.args[0]) from None
        except BaseException:
            worker.kill()
            raise
        with self._lock:
            if len(self._idle) < IDLE_WORKERS:
                self._idle.append(worker)
                worker = None
        if worker is not None:
            worker.kill()
        if answer[0] == "rows":
            _, columns, rows, more = answer
            return Rows(columns, rows, more=more)
        _, kind, message = answer
        if kind == "unreachable":
            raise DatabaseError(message, "unreachable")
        raise self._translate(message)

    def close(self) -> None:
        """End the idle workers (they also end on their own when this object is gone)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def _translate(self, message: str) -> DatabaseError:
        if message == "interrupted":
            return self.timeout_error()
        refusals = ("not authorized", "authorization denied", "readonly", "attached databases",
                    "one statement at a time")
        if any(part in message for part in refusals):
            return self.refused(message)
        if message == "string or blob too big":
            return DatabaseError(f"SQLite error: {message} (values are limited to "
                                 f"{sqlite_worker.MAX_VALUE_BYTES // 1_000_000} MB)", "query_failed")
        return DatabaseError(f"SQLite error: {message}")
