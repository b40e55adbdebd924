"""The PostgreSQL run store's sessions come from a psycopg_pool pool, on the real server: connections
are reused, a pool whose connections the server ended recovers at the next session, and concurrent
sessions share a bounded set."""

from __future__ import annotations

import threading
from contextlib import closing

from runstore_pg import admin

from plugdeck.ops.rundb import PostgresDatabase, open_database


def backend_pid(db) -> int:
    with db.session() as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_sessions_reuse_pooled_connections(pg_url):
    with closing(open_database(pg_url, 5)) as db:
        pids = {backend_pid(db) for _ in range(30)}
    assert 1 <= len(pids) <= PostgresDatabase.POOL


def test_the_pool_recovers_when_the_server_ended_every_connection(pg_url):
    with closing(open_database(pg_url, 5)) as db:
        before = backend_pid(db)
        with admin() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                         "AND pid <> pg_backend_pid()", (pg_url.rsplit("/", 1)[1],))
        after = [backend_pid(db) for _ in range(3)]
    assert before not in after


def test_concurrent_sessions_share_a_bounded_set_of_connections(pg_url):
    pids, errors = [], []

    def work():
        try:
            for _ in range(10):
                with db.session() as conn:
                    pids.append(conn.execute("SELECT pg_backend_pid() FROM pg_sleep(0.005)").fetchone()[0])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with closing(open_database(pg_url, 5)) as db:
        threads = [threading.Thread(target=work) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [] and len(pids) == 120
    assert len(set(pids)) <= PostgresDatabase.MAX_CONNECTIONS
