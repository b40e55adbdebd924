"""The run store's schema, as ordered migration steps recorded in `schema_version`.

A store made by an older plugdeck (including the first one, which had no `schema_version`)
is brought up to date in place when it is opened; the steps run in one transaction under a
lock, so two processes opening the same store at once upgrade it once. Add a step at the end;
never edit one that has shipped. The SQL is what SQLite and PostgreSQL both accept.
"""

from __future__ import annotations

import time

from .rundb import RunStoreError

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "runs and their events", [
        """CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            answer TEXT,
            error TEXT,
            started_at DOUBLE PRECISION NOT NULL,
            duration DOUBLE PRECISION,
            steps INTEGER DEFAULT 0,
            model_calls INTEGER DEFAULT 0,
            tool_calls INTEGER DEFAULT 0,
            prompt_tokens BIGINT DEFAULT 0,
            completion_tokens BIGINT DEFAULT 0,
            pid INTEGER
        )""",
        "CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at)",
        """CREATE TABLE IF NOT EXISTS events (
            run_id TEXT NOT NULL REFERENCES runs(id),
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            t DOUBLE PRECISION NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
    ]),
    (2, "costs, owners, pending confirmations and checkpoints for runs that resume anywhere", [
        "ALTER TABLE runs ADD COLUMN cost DOUBLE PRECISION DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN api_key_id TEXT",
        "ALTER TABLE runs ADD COLUMN host TEXT",
        "ALTER TABLE runs ADD COLUMN driver TEXT",  # the copy of the run that carries it on now
        "ALTER TABLE runs ADD COLUMN lost_events INTEGER DEFAULT 0",  # dropped while the store was down
        "CREATE INDEX IF NOT EXISTS runs_status ON runs(status)",
        """CREATE TABLE IF NOT EXISTS model_calls (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            step INTEGER NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens BIGINT NOT NULL DEFAULT 0,
            completion_tokens BIGINT NOT NULL DEFAULT 0,
            cost DOUBLE PRECISION NOT NULL DEFAULT 0,
            at DOUBLE PRECISION NOT NULL,
            day TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        "CREATE INDEX IF NOT EXISTS model_calls_day ON model_calls(day)",
        "CREATE INDEX IF NOT EXISTS model_calls_at ON model_calls(at)",
        """CREATE TABLE IF NOT EXISTS checkpoints (
            run_id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS actions (
            id TEXT PRIMARY KEY,
            run_id TEXT NOT NULL,
            call_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            summary TEXT NOT NULL,
            reason TEXT NOT NULL,
            from_untrusted TEXT NOT NULL,
            status TEXT NOT NULL,
            requested_at DOUBLE PRECISION NOT NULL,
            decided_by TEXT,
            note TEXT,
            decided_at DOUBLE PRECISION,
            executed_by TEXT,
            executed_at DOUBLE PRECISION
        )""",
        "CREATE INDEX IF NOT EXISTS actions_run ON actions(run_id, status)",
    ]),
    (3, "conversations: each run belongs to one (a run that starts one names it after itself)", [
        "ALTER TABLE runs ADD COLUMN conversation_id TEXT",
        "UPDATE runs SET conversation_id = id WHERE conversation_id IS NULL",
        "CREATE INDEX IF NOT EXISTS runs_conversation ON runs(conversation_id, started_at)",
    ]),
    (4, "tags on runs (plugdeck runs tag), to choose runs for an export", [
        """CREATE TABLE IF NOT EXISTS run_tags (
            run_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY (run_id, tag)
        )""",
        "CREATE INDEX IF NOT EXISTS run_tags_tag ON run_tags(tag)",
    ]),
    (5, "cached and reasoning tokens, estimated counts and unpriced calls per model call", [
        "ALTER TABLE model_calls ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE model_calls ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE model_calls ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0",  # 1: no usage came, counted here
        "ALTER TABLE model_calls ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0",  # 1: no price known, cost 0
    ]),
]

LATEST = MIGRATIONS[-1][0]


def schema_version(conn) -> int:
    """The version the store is at; 0 for a store made before versions were recorded (or empty)."""
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except conn_errors(conn):
        return -1  # no table yet: let migrate() find out, under its lock
    return row[0] or 0


def migrate(conn) -> int:
    """Bring the store to the latest schema; return the version it was at before."""
    if schema_version(conn) == LATEST:
        return LATEST
    with conn.transaction(lock_schema=True):
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                     "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        before = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if before > LATEST:
            raise RunStoreError(f"the run store has schema version {before}, made by a newer plugdeck than this one "
                                f"(which knows up to {LATEST}); upgrade plugdeck")
        for version, description, statements in MIGRATIONS[before:]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                         (version, description, time.time()))
    return before


def conn_errors(conn) -> tuple[type[BaseException], ...]:
    if conn.dialect == "sqlite":
        import sqlite3

        return (sqlite3.OperationalError,)
    import psycopg

    return (psycopg.errors.UndefinedTable,)
