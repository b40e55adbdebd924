"""`plugdeck plugins add sql`: add a database as a read-only SQL plugin.

    plugdeck plugins add sql --name shop --url postgresql://reader@localhost/shop --password-env SHOP_DB_PASSWORD

The database is checked once (its tables are listed) before anything is stored; the stored entry
holds the URL without a password and the name of the variable that holds it.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from .common import fail as _fail


def add(
    name: str = typer.Option(..., "--name", help="The plugin's name: its tools become NAME.list_tables, "
                                                 "NAME.describe_table and NAME.run_query."),
    url: str = typer.Option(..., "--url", help="sqlite:///path/to/file.db, postgresql://user@host:5432/dbname "
                                               "or mysql://user@host:3306/dbname (never with a password)."),
    password_env: Optional[str] = typer.Option(None, "--password-env",
                                               help="Environment variable that holds the database password."),
    max_rows: int = typer.Option(200, "--max-rows", min=1, help="Most rows one query returns to the model."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds one query may run before it is stopped."),
    allow_superuser: bool = typer.Option(False, "--allow-superuser",
                                         help="Accept a superuser account (root, SUPER/FILE, a PostgreSQL superuser), "
                                              "which can reach the server's files; refused otherwise."),
) -> None:
    """Add a SQL database (SQLite, PostgreSQL, MySQL/MariaDB) as a read-only plugin."""
    from ..config import load_config
    from ..plugins import registry
    from ..plugins.sql import build_plugin
    from ..plugins.sql.connect import DatabaseError, open_database
    from ..plugins.sql.schema import list_tables

    url = _checked_url(url, password_env)
    options = {"url": url, "max_rows": max_rows, "timeout": timeout}
    if password_env:
        options["password_env"] = password_env
    if allow_superuser:
        options["allow_superuser"] = True
    config = load_config()
    if name in registry.configured(config.home):
        _fail(f"a plugin named {name!r} is already added; remove it first or choose another --name")
    try:
        build_plugin(name, options, config.home)  # the same checks as every later run
    except ValueError as exc:
        _fail(str(exc))
    db = open_database(url, timeout=timeout, password=os.environ.get(password_env) if password_env else None,
                       allow_superuser=allow_superuser)
    try:
        tables = list_tables(db)
        warnings = db.privilege_warnings()
    except DatabaseError as exc:
        if exc.kind == "privileged_account":
            _fail(f"{exc.message}. Nothing was added.")
        _fail(f"{exc.message}. Nothing was added; check the URL "
              "(and --password-env) and that the database is running.")
    registry.add(config.home, name, "sql", options)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    shown = ", ".join(t.shown for t in tables[:20]) + (", ..." if len(tables) > 20 else "")
    print(f"added sql plugin {name!r}: {db.product} {db.label}, {len(tables)} table(s){': ' + shown if tables else ''}")
    print(f"try: plugdeck tools call {name}.list_tables")


def _checked_url(url: str, password_env: str | None) -> str:
    """The URL as it will be stored: no password, and a SQLite path made absolute."""
    from pathlib import Path

    from ..plugins.sql.url import BadURL, parse_url

    try:
        parsed = parse_url(url)
    except BadURL as exc:
        _fail(f"--url: {exc}")
    if parsed.password is not None:
        variable = password_env or "SHOP_DB_PASSWORD"
        _fail("the URL contains a password, and plugdeck never stores passwords. Remove it from the URL, put it in "
              f"an environment variable and name that variable: export {variable}=...; "
              f"plugdeck plugins add sql ... --password-env {variable}")
    if parsed.backend == "sqlite":
        return f"{parsed.scheme}:///{Path(parsed.database).expanduser().resolve()}"
    return url
