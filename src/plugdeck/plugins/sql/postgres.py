"""PostgreSQL, read-only at the database level (layer 2), with psycopg 3.

Each query runs on a fresh connection inside `BEGIN READ ONLY` with `SET LOCAL statement_timeout`
(the session default is read-only too). The query is declared as a server-side cursor, so
PostgreSQL itself accepts only one SELECT / VALUES / TABLE query there: stacked statements, COPY,
SET, DO blocks and data-modifying CTEs are refused by the server's grammar; rows are fetched up
to the limit without the rest ever crossing the wire.

A superuser can write server files even in a read-only transaction (COPY ... TO '/file',
lo_export), so a superuser login runs each query as the built-in role `pg_read_all_data`, which
can read every table and nothing else. The login can still switch back (a superuser may always
SET ROLE), so the full guarantee needs a login role that can only read; `privilege_warnings`
says so.
"""

from __future__ import annotations

from typing import Any, Sequence

from .connect import CONNECT_TIMEOUT, DatabaseError, Rows, ServerDatabase

READ_ALL_ROLE = "pg_read_all_data"  # built in since PostgreSQL 14
CURSOR_NAME = "plugdeck_query"


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
        try:
            conn.execute("BEGIN READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {max(1, int(self.timeout * 1000))}")
            if conn.info.parameter_status("is_superuser") == "on" and conn.info.server_version >= 140000:
                conn.execute(f"SET LOCAL ROLE {READ_ALL_ROLE}")
            cursor = conn.cursor(name=CURSOR_NAME)
            cursor.execute(sql, params)
            rows = cursor.fetchmany(max_rows + 1)
            columns = [column.name for column in cursor.description or ()]
        except psycopg.Error as exc:
            raise self._translate(exc) from None
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

    def privilege_warnings(self) -> list[str]:
        row = self.query(
            "SELECT session_user, rolsuper, "
            "pg_has_role(session_user, 'pg_write_server_files', 'USAGE') "
            "OR pg_has_role(session_user, 'pg_execute_server_program', 'USAGE') "
            "FROM pg_roles WHERE rolname = session_user"
        ).rows[0]
        user, superuser, server_files = row
        advice = ("for full protection connect as a role that can only read, for example: CREATE ROLE "
                  "plugdeck_reader LOGIN; GRANT pg_read_all_data TO plugdeck_reader; (set a password with "
                  "\\password and pass it with --password-env)")
        if superuser:
            return [f"{user} is a PostgreSQL superuser. plugdeck runs each query read-only as {READ_ALL_ROLE}, "
                    f"but a superuser can switch back; {advice}"]
        if server_files:
            return [f"{user} may write files on the database server (pg_write_server_files or "
                    f"pg_execute_server_program); {advice}"]
        return []


def _first_line(exc: Exception) -> str:
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    text = primary or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]
