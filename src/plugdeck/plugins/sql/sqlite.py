"""SQLite, read-only at the database level (layer 2).

`mode=ro` alone is not enough: SQLite still lets a read-only connection ATTACH a new file (and so
create it), create TEMP tables, and switch `PRAGMA query_only` off again. So the connection also
gets an authorizer that allows only reading, allowlisted functions and introspection pragmas, a
limit of zero attached databases, and a progress handler that stops the query at its deadline.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Sequence

from .connect import Database, DatabaseError, Rows

# Built-in SQLite functions a read query may call: pure computations. Not load_extension,
# readfile/writefile (shell), randomblob/zeroblob (memory), fts3_tokenizer, sqlite_* internals.
SQLITE_FUNCTIONS = frozenset("""
count sum avg min max total group_concat string_agg
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
abs round sign random ceil ceiling floor trunc sqrt pow power exp ln log log2 log10 mod pi
degrees radians sin cos tan asin acos atan atan2 sinh cosh tanh
coalesce ifnull nullif iif likely unlikely likelihood typeof
lower upper length substr substring trim ltrim rtrim replace instr printf format char unicode hex
quote concat concat_ws octet_length like glob
date time datetime julianday unixepoch strftime timediff
json json_extract json_array_length json_type json_valid json_quote json_array json_object
json_group_array json_group_object
""".split())

# Pragmas that only describe the schema; the plugin's describe_table uses them.
READ_PRAGMAS = frozenset({"table_info", "table_xinfo", "foreign_key_list", "index_list", "index_info"})

MAX_VALUE_BYTES = 50_000_000  # the longest string or blob a query may build
PROGRESS_STEPS = 1_000  # VM instructions between deadline checks


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _source: str | None) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class SQLiteDatabase(Database):
    dialect = "sqlite"
    product = "SQLite"

    def __init__(self, path: Path, *, timeout: float):
        super().__init__(str(path), timeout)
        self.path = path

    def needs(self) -> dict[str, list[str]]:
        return {"files": [str(self.path)]}

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise DatabaseError(f"there is no SQLite database at {self.path}", "unreachable")
        try:
            conn = sqlite3.connect(self.path.as_uri() + "?mode=ro", uri=True, timeout=self.timeout)
        except sqlite3.Error as exc:
            raise DatabaseError(f"could not open {self.path} read-only: {exc}", "unreachable") from None
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.set_authorizer(_authorize)
        return conn

    def _run(self, sql: str, params: Sequence[Any] | None, max_rows: int) -> Rows:
        conn = self._connect()
        deadline = time.monotonic() + self.timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        try:
            cursor = conn.execute(sql, tuple(params or ()))
            rows = cursor.fetchmany(max_rows + 1)
            columns = [d[0] for d in cursor.description or ()]
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        finally:
            conn.close()
        return Rows(columns, rows[:max_rows], more=len(rows) > max_rows)

    def _translate(self, exc: sqlite3.Error) -> DatabaseError:
        message = str(exc)
        if message == "interrupted":
            return self.timeout_error()
        refusals = ("not authorized", "authorization denied", "readonly", "attached databases",
                    "one statement at a time")
        if any(part in message for part in refusals):
            return self.refused(message)
        return DatabaseError(f"SQLite error: {message}")
