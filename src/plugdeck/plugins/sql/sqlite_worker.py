"""One SQLite query in a process of its own, so its deadline holds even inside one function call.

SQLite checks its progress handler between virtual-machine steps, never inside a single function
call: `printf('%.*c', 1000000000, 'x')` or a pathological LIKE ran for tens of seconds past a one
second limit. The query therefore runs in this small worker (standard library only, started with
`python -I -S`), which sqlite.py kills when the deadline passes; the progress handler still stops
ordinary long queries at the deadline with a typed error, and the limits below bound the size of
any value and the memory of the worker.

Protocol, repeated until stdin closes: a request (a pickled dict, after its length as 8 bytes) on
stdin; the worker answers `R` once the query's connection is open (the deadline starts there),
then ("rows", columns, rows, more) or ("error", kind, message), pickled after its length. Each
request gets a fresh connection, closed after it: nothing outlives one query but the process.

The connection is read-only at the database level (layer 2): `mode=ro` alone is not enough (SQLite
still lets a read-only connection ATTACH a new file, create TEMP tables, and switch `PRAGMA
query_only` off again), so it also gets an authorizer that allows only reading, allowlisted
functions and introspection pragmas, and a limit of zero attached databases.
"""

from __future__ import annotations

import pickle
import sqlite3
import sys
import time

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
MAX_MEMORY_BYTES = 2_000_000_000  # the worker's address space
PROGRESS_STEPS = 1_000  # VM instructions between deadline checks


def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _source: str | None) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in SQLITE_FUNCTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def connect(path: str, timeout: float) -> sqlite3.Connection:
    """The file opened read-only, with the authorizer and limits of layer 2."""
    from pathlib import Path

    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, timeout=timeout)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.set_authorizer(authorize)
    return conn


def run(request: dict, ready) -> tuple:
    try:
        conn = connect(request["path"], request["timeout"])
    except sqlite3.Error as exc:
        return ("error", "unreachable", f"could not open {request['path']} read-only: {exc}")
    ready()
    deadline = time.monotonic() + request["timeout"]
    conn.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
    max_rows = request["max_rows"]
    try:
        cursor = conn.execute(request["sql"], tuple(request["params"] or ()))
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description or ()]
    except sqlite3.Error as exc:
        return ("error", "sqlite", str(exc))
    finally:
        conn.close()
    return ("rows", columns, rows[:max_rows], len(rows) > max_rows)


LENGTH = 8  # bytes of the length before each message


def frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(LENGTH, "big") + data


def main() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MAX_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(MAX_MEMORY_BYTES, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    source, out = sys.stdin.buffer, sys.stdout.buffer

    def ready() -> None:
        out.write(b"R")
        out.flush()

    while True:
        header = source.read(LENGTH)
        if len(header) < LENGTH:
            return  # the other side is done with this worker
        request = pickle.loads(source.read(int.from_bytes(header, "big")))
        out.write(frame(run(request, ready)))
        out.flush()


if __name__ == "__main__":
    main()
