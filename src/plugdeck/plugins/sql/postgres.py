"""PostgreSQL, read-only at the database level (layer 2), with psycopg 3.

Each query runs on a fresh connection inside `BEGIN READ ONLY` with `SET LOCAL statement_timeout`
(the session default is read-only too). The query is declared as a server-side cursor, so
PostgreSQL itself accepts only one SELECT / VALUES / TABLE query there: stacked statements, COPY,
SET, DO blocks and data-modifying CTEs are refused by the server's grammar; rows are fetched up
to the limit without the rest ever crossing the wire.

A superuser can write server files even in a read-only transaction (COPY ... TO '/file',
lo_export), and so can members of pg_write_server_files / pg_execute_server_program (and read them,
pg_read_server_files). Such a login is refused (connect.py) unless the person allowed it with
`allow_superuser`; an allowed superuser login runs each query as the built-in role
`pg_read_all_data`, which can read every table and nothing else. The login can still switch back
(a superuser may always SET ROLE), so the full guarantee needs a login role that can only read.
"""

from __future__ import annotations

from typing import Any, Sequence

from .connect import CONNECT_TIMEOUT, DatabaseError, Rows, ServerDatabase

READ_ALL_ROLE = "pg_read_all_data"  # built in since PostgreSQL 14
CURSOR_NAME = "plugdeck_query"
# Built-in roles whose members read or write files, or run programs, on the database server.
FILE_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program")


class PostgresDatabase(ServerDatabase):
    dialect = "postgres"
    product = "PostgreSQL"

    default_port = 5432

    def _connect(self):
        import psycopg

        extra = dict(self.url.options)  # libpq settings from the URL's query string, e.g. sslmode
        timeout_ms = max(1, int(self.timeout * 1000))
        options = f"{extra.pop('options', '')} -c default_transaction_read_only=on -c statement_timeout={timeout_ms}"
        login = {"host": self.url.host, "port": self.url.port, "user": self.url.user, "dbname": self.url.database,
                 "password": self._password}
        settings = {"connect_timeout": int(CONNECT_TIMEOUT), "application_name": "plugdeck", **extra,
                    **{key: value for key, value in login.items() if value is not None},
                    "options": options.strip(), "autocommit": True}
        try:
            return psycopg.connect(**settings)
        except psycopg.Error as exc:
            raise DatabaseError(f"could not connect to {self.label}: {_first_line(exc)}", "unreachable") from None

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        import psycopg

        conn = self._connect()
        watchdog = self.watchdog(conn.fileno())
        try:
            conn.execute("BEGIN READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {max(1, int(self.timeout * 1000))}")
            if conn.info.parameter_status("is_superuser") == "on" and conn.info.server_version >= 140000:
                conn.execute(f"SET LOCAL ROLE {READ_ALL_ROLE}")
            cursor = conn.cursor(name=CURSOR_NAME)
            with watchdog:
                cursor.execute(sql, params)
                rows = cursor.fetchmany(max_rows + 1)
            columns = [column.name for column in cursor.description or ()]
        except psycopg.Error as exc:
            raise (self.timeout_error(cut=True) if watchdog.fired else self._translate(exc)) from None
        finally:
            conn.close()  # without COMMIT: the transaction is rolled back
        return Rows(columns, [tuple(row) for row in rows[:max_rows]], more=len(rows) > max_rows)

    def _translate(self, exc) -> DatabaseError:
        from psycopg import errors

        message = _first_line(exc)
        if isinstance(exc, errors.QueryCanceled):
            return self.timeout_error()
        refusals = (errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege, errors.FeatureNotSupported)
        if isinstance(exc, refusals) or "multiple commands" in message:
            return self.refused(message)
        hint = getattr(getattr(exc, "diag", None), "message_hint", None)
        return DatabaseError(f"PostgreSQL error: {message}" + (f" (hint: {hint})" if hint else ""))

    def superuser_powers(self) -> tuple[str, list[str]]:
        row = self._run(
            "SELECT session_user::text, rolsuper, " + ", ".join(
                f"pg_has_role(session_user, '{role}', 'MEMBER')" for role in FILE_ROLES)
            + " FROM pg_roles WHERE rolname = session_user", None, 1).rows[0]
        user, superuser, *members = row
        powers = ["superuser"] if superuser else [role for role, member in zip(FILE_ROLES, members) if member]
        return user, powers

    def reader_advice(self) -> str:
        return ("for example: CREATE ROLE plugdeck_reader LOGIN; GRANT pg_read_all_data TO plugdeck_reader; then "
                "set its password with \\password and pass it with --password-env")


def _first_line(exc: Exception) -> str:
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = primary or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]
