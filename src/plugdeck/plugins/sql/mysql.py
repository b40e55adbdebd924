"""MySQL and MariaDB, read-only at the database level (layer 2), with PyMySQL.

Each query runs on a fresh connection, without the multi-statement protocol (so `SELECT 1; DROP
...` is a syntax error on the server) and without LOAD DATA LOCAL, inside `START TRANSACTION READ
ONLY` (the session default is read-only too), with `max_statement_time` (MariaDB) or
`max_execution_time` (MySQL) as its deadline and `sql_select_limit` as its row limit. Rows are
read unbuffered; when the limit is reached the rest of the query is killed, not downloaded.

A read-only transaction still lets an account with the FILE or SUPER privilege write server files
(SELECT ... INTO OUTFILE), read them (LOAD_FILE) or change global settings, so such an account
(and `root`) is refused (connect.py) unless the person allowed it with `allow_superuser`.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from .connect import CONNECT_TIMEOUT, DatabaseError, Rows, ServerDatabase

TIMEOUT_ERRORS = {1969, 3024, 2013}  # max_statement_time, max_execution_time, lost connection (our read timeout)
# Read-only transaction; access denied (1045 too: after login it means a missing FILE privilege).
REFUSAL_ERRORS = {1792, 1142, 1143, 1227, 1044, 1045, 1370}
CONNECT_ERRORS = {2003, 2005, 2006}  # the server went away mid-query
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
RISKY_PRIVILEGES = {"ALL PRIVILEGES", "FILE", "SUPER"}  # global grants that reach server files or settings


class MySQLDatabase(ServerDatabase):
    dialect = "mysql"
    product = "MySQL/MariaDB"

    default_port = 3306

    def _connect(self):
        import pymysql

        extra = self.url.options
        # Over loopback or a socket TLS protects nothing, and PyMySQL's default attempt at it costs ~60 ms
        # per connection (loading the system's certificates); remote servers keep PyMySQL's TLS default.
        local = bool(extra.get("unix_socket")) or (self.url.host or "localhost") in LOCAL_HOSTS
        try:
            return pymysql.connect(
                host=self.url.host or "localhost", port=self.url.port or self.default_port,
                user=self.url.user, password=self._password or "", database=self.url.database,
                unix_socket=extra.get("unix_socket"), charset=extra.get("charset", "utf8mb4"),
                connect_timeout=CONNECT_TIMEOUT, read_timeout=self.timeout + CONNECT_TIMEOUT,
                write_timeout=CONNECT_TIMEOUT, autocommit=True, local_infile=False, ssl_disabled=local or None,
            )
        except pymysql.err.MySQLError as exc:
            raise DatabaseError(f"could not connect to {self.label}: {_message(exc)}", "unreachable") from None

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        import pymysql

        conn = self._connect()
        watchdog = self.watchdog(conn._sock.fileno())  # PyMySQL names no public accessor for its socket
        try:
            with conn.cursor() as setup:
                if "mariadb" in conn.get_server_info().lower():
                    setup.execute(f"SET SESSION max_statement_time = {self.timeout:.3f}")
                else:
                    setup.execute(f"SET SESSION max_execution_time = {max(1, int(self.timeout * 1000))}")
                setup.execute(f"SET SESSION sql_select_limit = {max_rows + 1}")
                setup.execute("SET SESSION TRANSACTION READ ONLY")
                setup.execute("START TRANSACTION READ ONLY")
            cursor = conn.cursor(pymysql.cursors.SSCursor)
            with watchdog:
                cursor.execute(sql, tuple(params) if params is not None else None)
                rows = cursor.fetchmany(max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
            if len(rows) > max_rows:
                self._stop_rest(conn.thread_id())
            _close_quietly(cursor)
        except pymysql.err.MySQLError as exc:
            raise (self.timeout_error(cut=True) if watchdog.fired else self._translate(exc)) from None
        finally:
            conn.close()  # without COMMIT: the transaction is rolled back
        return Rows(columns, [tuple(row) for row in rows[:max_rows]], more=len(rows) > max_rows)

    def _stop_rest(self, thread_id: int) -> None:
        """Kill the rest of a query whose row limit was reached (its LIMIT may exceed ours)."""
        side = self._connect()
        try:
            with side.cursor() as cursor:
                cursor.execute(f"KILL QUERY {int(thread_id)}")
        finally:
            side.close()

    def _translate(self, exc) -> DatabaseError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = _message(exc)
        if code in TIMEOUT_ERRORS:
            return self.timeout_error()
        if code in REFUSAL_ERRORS:
            return self.refused(message)
        if code in CONNECT_ERRORS:
            return DatabaseError(f"could not connect to {self.label}: {message}", "unreachable")
        return DatabaseError(f"MySQL/MariaDB error: {message}")

    def superuser_powers(self) -> tuple[str, list[str]]:
        account = self._run("SELECT CURRENT_USER()", None, 1).rows[0][0]
        powers = set()
        for (grant,) in self._run("SHOW GRANTS", None, 1_000).rows:
            match = re.match(r"GRANT (.+?) ON \*\.\* TO", grant)
            if match:
                privileges = {p.strip().upper() for p in match.group(1).split(",")}
                powers |= privileges & RISKY_PRIVILEGES
        if account.split("@")[0] == "root":
            powers.add("the root account")
        return account, sorted(powers)

    def reader_advice(self) -> str:
        return ("for example: CREATE USER 'plugdeck_reader'@'localhost' IDENTIFIED BY '...'; "
                "GRANT SELECT, SHOW VIEW ON yourdb.* TO 'plugdeck_reader'@'localhost';")


def _close_quietly(cursor) -> None:
    """Close an unbuffered cursor; after KILL QUERY its last packet is the 'interrupted' error."""
    import pymysql

    try:
        cursor.close()
    except pymysql.err.MySQLError:
        pass


def _message(exc: Exception) -> str:
    if len(exc.args) >= 2:
        return str(exc.args[1]).strip().splitlines()[0]
    return str(exc) or type(exc).__name__
