"""Layer 2 of the read-only defence: connections on which the database itself refuses to change.

Every query gets a fresh connection that is made read-only before the query runs and is closed
after it, so no state (a changed setting, an open transaction) outlives one query:

- SQLite (sqlite.py): the file opened with a `mode=ro` URI, an authorizer that allows only reads
  and allowlisted functions (no writes, ATTACH, PRAGMA changes, temp tables), no attached
  databases at all, and a progress-handler deadline.
- PostgreSQL (postgres.py): `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, the query run
  as a server-side cursor (so PostgreSQL accepts only one SELECT/VALUES/TABLE query), and for
  superuser logins the query runs as the built-in `pg_read_all_data` role.
- MySQL/MariaDB (mysql.py): `START TRANSACTION READ ONLY` with `max_statement_time` (MariaDB) or
  `max_execution_time` (MySQL), no multi-statement protocol, no LOAD DATA LOCAL.

Rows are fetched up to a limit; whether more existed is reported. The URL's password never
appears in messages: `label` is the URL with the password hidden, and driver messages are
scrubbed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...redaction import redact, register_secret
from .url import BadURL, DatabaseURL, parse_url

CONNECT_TIMEOUT = 10.0  # seconds to open a connection to a database server


class DatabaseError(Exception):
    """A failure to tell the model or the person: `kind` is unreachable, query_refused, timeout or query_failed."""

    def __init__(self, message: str, kind: str = "query_failed"):
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass
class Rows:
    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    more: bool = False  # the query had rows beyond the ones fetched


class Database:
    """One database, reached read-only. Subclasses implement `_run` for their driver."""

    dialect = ""  # sqlglot's dialect name
    product = ""  # the database's name for people

    def __init__(self, label: str, timeout: float, password: str | None = None):
        self.label = label  # where it is, without any password
        self.timeout = timeout  # seconds one query may run
        self._password = password
        register_secret(password, f"SQL database {label}")

    def query(self, sql: str, params: Sequence[Any] | None = None, *, max_rows: int = 200) -> Rows:
        """Run one read query on a fresh read-only connection; at most `max_rows` rows come back."""
        try:
            return self._run(sql, params, max_rows)
        except DatabaseError as exc:
            raise DatabaseError(self.scrub(exc.message), exc.kind) from None

    def privilege_warnings(self) -> list[str]:
        """What this account could do beyond reading, were the read-only setup ever bypassed."""
        return []

    def needs(self) -> dict[str, list[str]]:
        """What the plugin reaches, for its manifest: files or network addresses."""
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        raise NotImplementedError

    @staticmethod
    def scrub(text: str) -> str:
        return redact(text)  # the password (registered above) in any form, and key-shaped strings

    def timeout_error(self) -> DatabaseError:
        return DatabaseError(f"the query ran longer than its {self.timeout:g} s limit and was stopped; make it "
                             "cheaper: filter with WHERE, aggregate, or add LIMIT", "timeout")

    @staticmethod
    def refused(reason: str) -> DatabaseError:
        return DatabaseError(f"the database refused the query ({reason}); it may only be read, "
                             "with one SELECT", "query_refused")


def open_database(url: str, *, timeout: float = 10.0, password: str | None = None) -> Database:
    """A Database for a SQLAlchemy-style URL (see url.py); nothing is connected until the first query.

    `password` is used when the URL has none.
    """
    try:
        parsed = parse_url(url)
    except BadURL as exc:
        raise DatabaseError(str(exc), "bad_url") from None
    if parsed.backend == "sqlite":
        from .sqlite import SQLiteDatabase

        return SQLiteDatabase(Path(parsed.database).expanduser().resolve(), timeout=timeout)
    password = parsed.password if parsed.password is not None else password
    if parsed.backend == "postgresql":
        from .postgres import PostgresDatabase

        return PostgresDatabase(parsed, timeout=timeout, password=password)
    from .mysql import MySQLDatabase

    return MySQLDatabase(parsed, timeout=timeout, password=password)


class ServerDatabase(Database):
    """A database reached over the network (or a local socket)."""

    default_port = 0

    def __init__(self, url: DatabaseURL, *, timeout: float, password: str | None):
        super().__init__(url.label(), timeout, password)
        self.url = url

    def needs(self) -> dict[str, list[str]]:
        return {"network": [f"{self.url.host or 'localhost'}:{self.url.port or self.default_port}"]}
