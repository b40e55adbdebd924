"""Read-only SQL on SQLite, PostgreSQL and MySQL/MariaDB: `list_tables`, `describe_table`, `run_query`.

    plugdeck plugins add sql --name shop --url postgresql://reader@localhost/shop --password-env SHOP_DB_PASSWORD

or in Python: `sql_plugin("sqlite:///chinook.db", name="music")`. Queries are refused unless they
are one read statement (guard.py) and run on connections the database keeps read-only (connect.py).
Database drivers load only when the plugin is used.
"""

from .plugin import build_plugin, sql_plugin

__all__ = ["build_plugin", "sql_plugin"]
