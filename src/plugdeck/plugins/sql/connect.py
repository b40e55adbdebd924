"""Layer 2 of the read-only defence: connections on which the database itself refuses to change.

Every query gets a fresh connection that is made read-only before the query runs and is closed
after it, so no state (a changed setting, an open transaction) outlives one query:

- SQLite (sqlite.py): the file opened with a `mode=ro` URI, an authorizer that allows only reads
  and allowlisted functions (no writes, ATTACH, PRAGMA changes, temp tables), no attached
  databases at all, and a progress-handler deadline, in a worker process killed at the deadline.
- PostgreSQL (postgres.py): `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, the query run
  as a server-side cursor (so PostgreSQL accepts only one SELECT/VALUES/TABLE query), and for
  superuser logins the query runs as the built-in `pg_read_all_data` role.
- MySQL/MariaDB (mysql.py): `START TRANSACTION READ ONLY` with `max_statement_time` (MariaDB) or
  `max_execution_time` (MySQL), no multi-statement protocol, no LOAD DATA LOCAL.

Rows are fetched up to a limit; whether more existed is reported. The URL's password never
appears in messages: `label` is the URL with the password hidden, and driver messages are
scrubbed.

A server's own deadline is checked only between steps of its work, so one long function call can
run past it (PostgreSQL's `format('%1000000000s', 'x')` ran 16 s under a 0.5 s limit): a watchdog
cuts the connection when the deadline plus a grace has passed, and the query ends with the same
`timeout` error.

A superuser account is refused before its first query unless `allow_superuser` says otherwise:
such an account can read and write files on the database server (SELECT ... INTO OUTFILE,
LOAD_FILE, COPY ... TO, pg_read_file) even inside a read-only transaction.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ...errors import ServiceError
from ...redaction import redact, register_secret
from .url import BadURL, DatabaseURL, parse_url

CONNECT_TIMEOUT = 10.0  # seconds to open a connection to a database server
CUT_GRACE = 1.0  # seconds past its deadline before a query the server did not stop is cut off


class DatabaseError(ServiceError):
    """A failure to tell the model or the person: `kind` is unreachable, query_refused, timeout, query_failed
    or privileged_account."""

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

    def __init__(self, label: str, timeout: float, password: str | None = None, allow_superuser: bool = False):
        self.label = label  # where it is, without any password
        self.timeout = timeout  # seconds one query may run
        self._password = password
        self.allow_superuser = allow_superuser  # the person said so explicitly
        self._account_checked = False
        register_secret(password, f"SQL database {label}")

    def query(self, sql: str, params: Sequence[Any] | None = None, *, max_rows: int = 200) -> Rows:
        """Run one read query on a fresh read-only connection; at most `max_rows` rows come back."""
        try:
            self._check_account()
            return self._run(sql, params, max_rows)
        except DatabaseError as exc:
            raise DatabaseError(self.scrub(exc.message), exc.kind) from None

    def superuser_powers(self) -> tuple[str, list[str]]:
        """(the account, what it may do beyond reading: superuser, file privileges); no powers: an empty list."""
        return "", []

    def _check_account(self) -> None:
        """Refuse a superuser account before its first query, unless the person allowed it."""
        if self._account_checked:
            return
        account, powers = self.superuser_powers()
        if powers and not self.allow_superuser:
            raise DatabaseError(
                f"plugdeck will not query {self.product} as {account}: it has {', '.join(powers)}, so it can read and "
                "write files on the database server even in a read-only transaction. Connect as an account that "
                f"can only read ({self.reader_advice()}), or, to accept the risk, allow it explicitly: "
                "allow_superuser = true in the plugin's options (plugdeck plugins add sql ... --allow-superuser, "
                "or sql_plugin(..., allow_superuser=True))", "privileged_account")
        self._account_checked = True

    def reader_advice(self) -> str:
        return ""

    def privilege_warnings(self) -> list[str]:
        """What an allowed superuser account could do beyond reading, were the read-only setup bypassed."""
        try:
            account, powers = self.superuser_powers()
        except DatabaseError as exc:
            raise DatabaseError(self.scrub(exc.message), exc.kind) from None
        if not powers:
            return []
        return [f"{account} has {', '.join(powers)}: allowed by allow_superuser, but such an account can read and "
                "write files on the database server. plugdeck refuses those queries itself; for full protection "
                f"connect as an account that can only read: {self.reader_advice()}"]

    def needs(self) -> dict[str, list[str]]:
        """What the plugin reaches, for its manifest: files or network addresses."""
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        raise NotImplementedError

    @staticmethod
    def scrub(text: str) -> str:
        return redact(text)  # the password (registered above) in any form, and key-shaped strings

    def timeout_error(self, cut: bool = False) -> DatabaseError:
        """`cut`: the database did not stop the query itself, so plugdeck ended it (killed its worker
        or cut its connection)."""
        how = " (the database did not stop it in time, so plugdeck cut it off)" if cut else ""
        return DatabaseError(f"the query ran longer than its {self.timeout:g} s limit and was stopped{how}; make it "
                             "cheaper: filter with WHERE, aggregate, or add LIMIT", "timeout")

    @staticmethod
    def refused(reason: str) -> DatabaseError:
        return DatabaseError(f"the database refused the query ({reason}); it may only be read, "
                             "with one SELECT", "query_refused")


def open_database(url: str, *, timeout: float = 10.0, password: str | None = None,
                  allow_superuser: bool = False) -> Database:
    """A Database for a SQLAlchemy-style URL (see url.py); nothing is connected until the first query.

    `password` is used when the URL has none. A superuser account is refused at the first query
    unless `allow_superuser` is true.
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

        return PostgresDatabase(parsed, timeout=timeout, password=password, allow_superuser=allow_superuser)
    from .mysql import MySQLDatabase

    return MySQLDatabase(parsed, timeout=timeout, password=password, allow_superuser=allow_superuser)


class ServerDatabase(Database):
    """A database reached over the network (or a local socket)."""

    default_port = 0

    def __init__(self, url: DatabaseURL, *, timeout: float, password: str | None, allow_superuser: bool = False):
        super().__init__(url.label(), timeout, password, allow_superuser)
        self.url = url

    def needs(self) -> dict[str, list[str]]:
        return {"network": [f"{self.url.host or 'localhost'}:{self.url.port or self.default_port}"]}

    def watchdog(self, fileno: int) -> Watchdog:
        return Watchdog(fileno, self.timeout + CUT_GRACE)


class Watchdog:
    """Cuts a connection's socket if the query is still running `seconds` from now, so a statement the
    server does not stop at its deadline still ends (the driver then fails with a connection error)."""

    def __init__(self, fileno: int, seconds: float):
        self.fired = False
        self._socket_fd = fileno
        self._fileno = -1
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.fired = True
        try:
            socket.socket(fileno=os.dup(self._fileno)).shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self) -> Watchdog:
        self._fileno = os.dup(self._socket_fd)  # ours to close, whatever the driver does with its own
        self._timer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._timer.cancel()
        self._timer.join()
        os.close(self._fileno)
