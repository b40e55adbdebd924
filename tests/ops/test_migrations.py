"""Versioned migrations: stores made by an older plugdeck upgrade in place, once, under a lock."""

import sqlite3
import threading

import pytest

from plugdeck import Agent, RunStore, ScriptedModel
from plugdeck.ops.migrations import LATEST
from plugdeck.ops.rundb import RunStoreError, open_database

# The schema of the first run store, which recorded no version: stores made by it are out there.
FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, question TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL, answer TEXT,
    error TEXT, started_at REAL NOT NULL, duration REAL, steps INTEGER DEFAULT 0, model_calls INTEGER DEFAULT 0,
    tool_calls INTEGER DEFAULT 0, prompt_tokens INTEGER DEFAULT 0, completion_tokens INTEGER DEFAULT 0, pid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, type TEXT NOT NULL, t REAL NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (run_id, seq)
);
"""


def versions(target):
    with open_database(target, 5).session() as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]


def test_a_store_made_by_the_first_version_upgrades_in_place(tmp_path):
    path = tmp_path / "runs.db"
    with sqlite3.connect(path) as old:
        old.executescript(FIRST_SCHEMA)
        old.execute("INSERT INTO runs VALUES ('0001old', 'what is 2+2', 'rules', 'ok', '4', NULL, 1700000000.0, 0.01,"
                    " 2, 2, 1, 0, 0, 4242)")
        old.execute("""INSERT INTO events VALUES ('0001old', 0, 'run_started', 0.0, '{"type": "run_started"}')""")
    with RunStore(path) as store:
        (run,) = store.list_runs()
        assert run["id"] == "0001old" and run["answer"] == "4" and run["cost"] == 0 and run["api_key_id"] is None
        assert store.get_run("0001old")["events"] == [{"type": "run_started"}]
        new = Agent(ScriptedModel(["fine"]), sinks=[store.record]).run_sync("and now?", api_key_id="team-a")
        store.flush()
        assert store.get_run(new.id)["api_key_id"] == "team-a"
    assert versions(path) == list(range(1, LATEST + 1))
    with RunStore(path):  # opening an up-to-date store changes nothing
        pass
    assert versions(path) == list(range(1, LATEST + 1))


def test_many_processes_opening_a_new_store_at_once_migrate_it_once(store_target):
    opened, errors = [], []

    def open_store():
        try:
            opened.append(RunStore(store_target))
        except Exception as exc:  # reported below: every opener must succeed
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    assert not errors and len(opened) == 6
    assert versions(store_target) == list(range(1, LATEST + 1))


def test_a_store_from_a_newer_plugdeck_is_refused(store_target):
    RunStore(store_target).close()
    with open_database(store_target, 5).session() as conn:
        conn.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, 'future', 0)",
                     (LATEST + 1,))
    with pytest.raises(RunStoreError, match="newer plugdeck"):
        RunStore(store_target)


def test_a_damaged_sqlite_file_is_a_clear_error(tmp_path):
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(RunStoreError, match="runs.db"):
        RunStore(path)
