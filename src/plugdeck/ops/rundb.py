"""Connections for the run store: one small interface over SQLite (a file) and PostgreSQL (a URL).

The store writes its SQL once, with `?` placeholders and standard syntax both databases accept
(`ON CONFLICT`, `DOUBLE PRECISION`); the few real differences live here: how a transaction takes
its lock, how a row is locked, placeholders, timeouts and which errors mean "unreachable".
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from ..agent.pause import BookError
from ..errors import ServiceError
from ..redaction import is_postgres, redact_url


class RunStoreError(BookError, RuntimeError):
    """The run store cannot do what was asked (a damaged file, a schema from a newer plugdeck, ...)."""


class RunStoreUnavailable(RunStoreError, ServiceError):
    """The database cannot be reached right now; the message says where and what to check."""


def open_database(target: str | Path, timeout: float) -> SQLiteDatabase | PostgresDatabase:
    if is_postgres(target):
        return PostgresDatabase(str(target), timeout)
    text = str(target)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif "://" in text:
        shown = redact_url(text, "run store URL")
        raise RunStoreError(f"unsupported run store {shown!r}: give a file path (SQLite) or a "
                            "postgresql://USER@HOST/DATABASE URL")
    return SQLiteDatabase(Path(text), timeout)


class Connection:
    """One database connection: `execute` with `?` placeholders, and transactions."""

    dialect = ""

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, params: tuple | list = ()):
        return self.raw.execute(sql, params)

    def batch(self):
        """Around many statements whose results are not needed at once (the writer's batches)."""
        return nullcontext()

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # closing a broken connection may fail; it is gone either way
            pass


class SQLiteConnection(Connection):
    dialect = "sqlite"

    @contextmanager
    def transaction(self, lock_run: str | None = None, lock_schema: bool = False) -> Iterator[SQLiteConnection]:
        # BEGIN IMMEDIATE takes the database's write lock at once: it serializes every writer,
        # which is all the row and schema locks that PostgreSQL needs spelled out.
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")


class PostgresConnection(Connection):
    dialect = "postgres"

    def execute(self, sql: str, params: tuple | list = ()):
        return super().execute(sql.replace("?", "%s"), params)

    def batch(self):
        return self.raw.pipeline()  # statements go out without waiting for each answer: one round trip, not N

    @contextmanager
    def transaction(self, lock_run: str | None = None, lock_schema: bool = False) -> Iterator[PostgresConnection]:
        with self.raw.transaction():
            if lock_schema:
                self.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            if lock_run is not None:
                self.execute("SELECT 1 FROM runs WHERE id = ? FOR UPDATE", (lock_run,))
            yield self


_SCHEMA_LOCK = 0x706C7567646563  # "plugdec": one advisory lock for migrations


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path: Path, timeout: float):
        self.path = path
        self.timeout = timeout
        self.where = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> SQLiteConnection:
        try:
            raw = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            raw.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss too; pending confirmations and costs are records
            # people act on. The writer thread pays for the fsync, never the agent.
            raw.execute("PRAGMA synchronous=FULL")
            raw.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise RunStoreError(f"cannot open the run store {self.path}: {exc}") from None
        return SQLiteConnection(raw)

    @contextmanager
    def session(self) -> Iterator[SQLiteConnection]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    def check_integrity(self, conn: SQLiteConnection) -> None:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise RunStoreError(f"the run store {self.path} is damaged ({result}); move it aside and plugdeck "
                                "starts a new one (sqlite3 .recover can rescue what is left)")

    def close(self) -> None:
        pass

    errors = (sqlite3.Error,)

    def is_unavailable(self, exc: BaseException) -> bool:
        # A locked database or a full disk may pass; retrying is the right response to both.
        return isinstance(exc, sqlite3.OperationalError)


class PostgresDatabase:
    """PostgreSQL through psycopg 3, sessions from a psycopg_pool pool. Each connection is pinged before
    it is lent; when one the server dropped turns up, the pool checks all its idle ones at once (after a
    restart every one of them is dead) and replaces those that are."""

    dialect = "postgres"
    POOL = 4  # connections kept open while sessions come and go
    MAX_CONNECTIONS = 16  # sessions beyond this wait for a free connection, up to the timeout

    def __init__(self, url: str, timeout: float):
        from ..extras import require

        require("postgres", "a PostgreSQL run store")
        import psycopg  # only when PostgreSQL is used: `import plugdeck` stays light
        from psycopg_pool import ConnectionPool

        self.psycopg = psycopg
        self.url = url
        self.where = redact_url(url, "run store URL")
        self.timeout = timeout
        self.errors = (psycopg.Error,)
        millis = int(timeout * 1000)
        self._options = {
            "autocommit": True, "connect_timeout": max(1, int(timeout)),
            # No statement may hang past the deadline: not a slow query, not a lock wait.
            "options": f"-c statement_timeout={millis} -c lock_timeout={millis}",
            "application_name": "plugdeck-runstore",
        }
        # Opened at the first session, once a direct connection has shown the server is there: a server
        # that is away is then reported at once, with its reason, not after the pool's wait.
        self._pool = ConnectionPool(url, kwargs=self._options, min_size=self.POOL, max_size=self.MAX_CONNECTIONS,
                                    open=False, timeout=timeout,
                                    name="plugdeck-runstore")
        self._opened = False
        self._lock = threading.Lock()

    def connect(self) -> PostgresConnection:
        """A connection of its own, outside the pool (the writer thread keeps one)."""
        psycopg = self.psycopg
        try:
            raw = psycopg.connect(self.url, **self._options)
        except psycopg.Error as exc:
            raise RunStoreUnavailable(
                f"cannot reach the run store at {self.where}: {_first_line(exc)}. Check that PostgreSQL is "
                "running and accepts this user and database (run_store in plugdeck.toml or PLUGDECK_RUN_STORE)"
            ) from None
        return PostgresConnection(raw)

    @contextmanager
    def session(self) -> Iterator[PostgresConnection]:
        raw = self._checkout()
        try:
            yield PostgresConnection(raw)
        except BaseException as exc:
            if isinstance(exc, self.psycopg.OperationalError) or raw.closed or raw.broken:
                raw.close()  # the pool drops a closed connection instead of lending it again
            raise
        finally:
            self._pool.putconn(raw)

    def _checkout(self):
        from psycopg_pool import PoolTimeout

        with self._lock:
            if not self._opened:
                self.connect().close()  # raises RunStoreUnavailable, naming why, when the server is away
                self._pool.open(wait=False)
                self._opened = True
                try:
                    self._pool.wait(self.timeout)  # its POOL connections ready, so the first sessions share them
                except PoolTimeout:
                    self.connect().close()
                    raise RunStoreUnavailable(f"the run store at {self.where} did not open {self.POOL} connections "
                                              f"within {self.timeout:g}s; try again") from None
        for _ in range(2):  # a dead connection found: every idle one is checked, then one more try
            try:
                raw = self._pool.getconn()
            except PoolTimeout:
                self.connect().close()  # the server is away: say why
                raise RunStoreUnavailable(f"the run store at {self.where} had no free connection within "
                                          f"{self.timeout:g}s ({self.MAX_CONNECTIONS} in use); try again") from None
            try:
                raw.execute("SELECT 1")
                return raw
            except self.psycopg.Error:
                raw.close()
                self._pool.putconn(raw)  # dropped by the pool, which opens a replacement
                self._pool.check()
        return self._pool.getconn()

    def check_integrity(self, conn: PostgresConnection) -> None:
        pass  # PostgreSQL keeps its own consistency (WAL, checksums); nothing to check from here

    def close(self) -> None:
        self._pool.close()

    def is_unavailable(self, exc: BaseException) -> bool:
        return isinstance(exc, (RunStoreUnavailable, self.psycopg.OperationalError, self.psycopg.InterfaceError))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
