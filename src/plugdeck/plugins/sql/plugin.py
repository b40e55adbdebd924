"""The SQL plugin: `list_tables`, `describe_table` and `run_query` on one database, read-only in depth.

The model writes SQL from the schema; every query passes layer 1 (guard.py: one read statement,
allowlisted functions) and then runs on a connection the database itself keeps read-only, with a
deadline and a row limit (layer 2, connect.py). Database rows are outside data, so the tools are
marked untrusted. The password never sits in the plugin's options: they name the environment
variable that holds it. A superuser account (root, SUPER/FILE, PostgreSQL superuser or server-file
roles) is refused at the first call unless `allow_superuser` is set.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Callable

from ... import __version__
from ...tools import ToolError, tool
from ..base import Plugin
from . import schema
from .connect import CONNECT_TIMEOUT, Database, DatabaseError, open_database
from .format import format_table
from .guard import QueryRefused, check_read_query
from .url import BadURL, parse_url

DEFAULT_MAX_ROWS = 200
DEFAULT_TIMEOUT = 10.0  # seconds one query may run
RESULT_BUDGET = 12_000  # characters of one query result shown to the model
OPTION_KEYS = {"url", "max_rows", "timeout", "password_env", "allow_superuser"}


def sql_plugin(
    url: str,
    *,
    name: str = "sql",
    max_rows: int = DEFAULT_MAX_ROWS,
    timeout: float = DEFAULT_TIMEOUT,
    password: str | None = None,
    password_env: str | None = None,
    budget: int = RESULT_BUDGET,
    allow_superuser: bool = False,
) -> Plugin:
    """A read-only SQL plugin for a SQLAlchemy-style URL (sqlite:///file.db, postgresql://user@host/db,
    mysql://user@host/db). The password comes from `password`, the environment variable named by
    `password_env`, or the URL; nothing connects until the first call. An account that can reach
    the server's files (a superuser, root, FILE) is refused unless `allow_superuser` is true.
    """
    if max_rows < 1 or timeout <= 0:
        raise ValueError("max_rows must be at least 1 and timeout more than 0 seconds")
    if password is None and password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise ValueError(f"the environment variable {password_env} is not set; it should hold the password "
                             f"of the database for plugin {name!r}")
    try:
        db = open_database(url, timeout=timeout, password=password, allow_superuser=allow_superuser)
    except DatabaseError as exc:
        raise ValueError(exc.message) from None
    tools = _tools(db, max_rows, budget)
    return Plugin(
        name=name,
        tools=tools,
        version=__version__,
        description=f"Read-only SQL on the {db.product} database {db.label}",
        source=f"sql {db.label}",
        needs=_needs(db, password_env),
    )


def build_plugin(name: str, options: dict[str, Any], home: Path) -> Plugin:
    """The registry's builder for `plugdeck plugins add sql` entries."""
    unknown = set(options) - OPTION_KEYS
    if unknown or "url" not in options:
        raise ValueError(f"sql plugin {name!r}: options need a url and may have {', '.join(sorted(OPTION_KEYS))}; "
                         f"found {', '.join(sorted(options)) or 'none'}")
    try:
        has_password = parse_url(options["url"]).password is not None
    except BadURL:
        has_password = False  # sql_plugin explains a bad URL
    if has_password:
        raise ValueError(f"sql plugin {name!r}: the stored URL holds a password; remove it and name an environment "
                         "variable with password_env instead")
    return sql_plugin(
        options["url"],
        name=name,
        max_rows=int(options.get("max_rows", DEFAULT_MAX_ROWS)),
        timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
        password_env=options.get("password_env"),
        allow_superuser=options.get("allow_superuser") is True,
    )


def _tools(db: Database, max_rows: int, budget: int) -> list:
    margin = CONNECT_TIMEOUT + 5  # the database stops a query at its deadline; this only catches a hang
    # Rows are the user's private data; a query goes to the database server (a SQLite file stays on this machine).
    egress = None if db.label.startswith("sqlite") else db.label

    @tool(untrusted=True, private=True, egress=egress, timeout=db.timeout + margin)
    async def list_tables() -> str:
        """List the tables and views of the database."""
        tables = await _blocking(schema.list_tables, db)
        if not tables:
            return "The database has no tables."
        lines = []
        for kind in ("table", "view"):
            names = [t.shown for t in tables if t.kind == kind]
            if names:
                lines.append(f"{len(names)} {kind}{'' if len(names) == 1 else 's'}: {', '.join(names)}")
        return "\n".join(lines)

    @tool(untrusted=True, private=True, egress=egress, timeout=4 * db.timeout + margin)
    async def describe_table(table: str) -> str:
        """Describe one table before querying it: its columns with types, primary and foreign keys, and a few
        sample values.

        Args:
            table: The table's name as list_tables shows it.
        """

        def read() -> str:
            found = schema.find_table(schema.list_tables(db), table)
            return schema.render_table(found, schema.describe(db, found))

        return await _blocking(read)

    @tool(
        untrusted=True,
        private=True,
        egress=egress,
        timeout=db.timeout + margin,
        description=(
            f"Run one read-only SQL query ({db.product} dialect) and get the rows back as a table with exact "
            f"values and the row count (at most {max_rows} rows; {db.timeout:g} s limit). Use only tables and "
            "columns that describe_table showed; aggregate in SQL rather than fetching many rows. One SELECT "
            "(WITH and UNION allowed); writes, DDL, PRAGMA/SET and several statements are refused."
        ),
    )
    async def run_query(sql: str) -> str:
        """Run one read-only SQL query.

        Args:
            sql: One SELECT statement in the database's SQL dialect.
        """
        text = sql.strip()
        while text.endswith(";"):
            text = text[:-1].rstrip()

        def read() -> str:
            try:
                check_read_query(text, db.dialect)  # layer 1; the connection is layer 2
            except QueryRefused as exc:
                raise DatabaseError(f"query refused: {exc}", "query_refused") from None
            rows = db.query(text, max_rows=max_rows)
            return format_table(rows.columns, rows.rows, more=rows.more, budget=budget)

        return await _blocking(read)

    return [list_tables, describe_table, run_query]


async def _blocking(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Database work runs in a thread; its failures become errors the model can read."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except DatabaseError as exc:
        raise ToolError(exc.message, exc.kind) from None


def _needs(db: Database, password_env: str | None) -> dict[str, Any]:
    needs = db.needs()
    if password_env:
        needs["secrets"] = [password_env]
    return needs
