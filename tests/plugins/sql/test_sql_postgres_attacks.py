"""R24 on PostgreSQL: the attack corpus is refused or stopped through both layers, and through the
database layer alone; afterwards the database's checksum is unchanged and no server file exists."""

import asyncio

import pytest

from plugdeck import ToolError
from plugdeck.plugins.sql import sql_plugin
from plugdeck.plugins.sql.connect import DatabaseError, open_database

TIMEOUT = 0.3

WRITES = [
    "DELETE FROM order_items",
    "UPDATE products SET price = 0",
    "INSERT INTO customers VALUES (99, 'Mallory', 'Nowhere', true)",
    "DROP TABLE order_items",
    "CREATE TABLE loot AS SELECT * FROM customers",
    "CREATE TEMP TABLE loot (a int)",
    "ALTER TABLE products ADD COLUMN owned int",
    "TRUNCATE orders CASCADE",
    "SELECT 1; DELETE FROM order_items",
    "SELECT * FROM customers; DROP TABLE orders",
    "WITH gone AS (DELETE FROM order_items RETURNING *) SELECT count(*) FROM gone",
    "WITH changed AS (UPDATE products SET price = 0 RETURNING id) SELECT * FROM changed",
    "SELECT * INTO loot FROM customers",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT nextval('invoice_numbers')",
    "SELECT setval('invoice_numbers', 999)",
    "SELECT lo_import('/etc/hostname')",
    "COPY orders TO '{files}_copy.csv'",
    "COPY (SELECT 1) TO PROGRAM 'touch {files}_program'",
    "SELECT lo_export(lo_from_bytea(0, 'payload'), '{files}_lo')",
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT pg_ls_dir('.')",
    "DO $$BEGIN DELETE FROM order_items; END$$",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'DELETE FROM orders RETURNING 1'",
    "SET ROLE postgres",
    "SET TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "COMMIT",
    "RESET ALL",
    "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE",
    "VACUUM orders",
    "ALTER SYSTEM SET work_mem = '1GB'",
    "CREATE EXTENSION IF NOT EXISTS dblink",
    "EXPLAIN ANALYZE DELETE FROM order_items",
    "PREPARE p AS DELETE FROM order_items",
    "SELECT pg_reload_conf()",
    "CREATE ROLE mallory SUPERUSER LOGIN",
    "GRANT ALL ON orders TO PUBLIC",
    "MERGE INTO products p USING (SELECT 1 AS id) s ON p.id = s.id WHEN MATCHED THEN DELETE",
]
# Switching back to a privileged role inside the query: only a login that was never privileged is
# immune at the database level (a superuser may always switch back); the guard refuses set_config.
ROLE_ESCAPES = [
    "SELECT set_config('role', 'postgres', true)",
    "SELECT query_to_xml('SELECT lo_export(lo_from_bytea(0, ''x''), ''{files}_chain'')', true, true, '') "
    "FROM (SELECT set_config('role', 'postgres', true)) AS s",
]
SLOW = [
    "SELECT pg_sleep(30)",
    "WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever) SELECT count(*) FROM forever",
    "SELECT count(*) FROM generate_series(1, 100000000) a CROSS JOIN generate_series(1, 100000000) b",
    "SELECT count(*) FROM order_items a, order_items b, order_items c, order_items d, order_items e, "
    "order_items f, order_items g, order_items h",
]
# One function call that builds a huge value: PostgreSQL checks statement_timeout only between steps,
# so format() ran 16 s under a 0.5 s limit; the guard refuses these, the watchdog cuts them off.
ONE_CALL = [
    "SELECT length(format('%300000000s', 'x'))",
    "SELECT md5(repeat('x', 400000000))",
]
FILE_SUFFIXES = ["_copy.csv", "_program", "_lo", "_chain"]


def files_of(db):
    return f"/tmp/plugdeck_sqltest_{db.token}"


def assert_untouched(db, checksum):
    assert db.checksum() == checksum
    for suffix in FILE_SUFFIXES:
        assert not db.server_file_exists(files_of(db) + suffix), suffix


def test_both_layers_refuse_or_stop_everything(postgres_db):
    # As the superuser, allowed explicitly: the guard and the read-only connection still hold.
    shop = sql_plugin(postgres_db.url(), name="shop", timeout=TIMEOUT, allow_superuser=True)
    before = postgres_db.checksum()
    for sql in WRITES + ROLE_ESCAPES + SLOW + ONE_CALL:
        with pytest.raises(ToolError) as stopped:
            asyncio.run(shop.tool("run_query").call({"sql": sql.format(files=files_of(postgres_db))}))
        # pg_sleep is refused by the guard; the expensive plain queries are stopped by the server.
        expected = "timeout" if sql in SLOW and "pg_sleep" not in sql else "query_refused"  # ONE_CALL: refused
        assert stopped.value.kind == expected, (sql, stopped.value.message)
    assert_untouched(postgres_db, before)


def test_a_superuser_is_refused_before_any_query(postgres_db):
    """Issue 11 item 7a: not allowed explicitly, the superuser login runs nothing, with or without the guard."""
    shop = sql_plugin(postgres_db.url(), name="shop", timeout=TIMEOUT)
    before = postgres_db.checksum()
    with pytest.raises(ToolError) as refused:  # a plain read passes the guard; the account is refused
        asyncio.run(shop.tool("run_query").call({"sql": "SELECT count(*) FROM customers"}))
    assert refused.value.kind == "privileged_account" and "--allow-superuser" in refused.value.message
    kinds = run_layer_two(postgres_db, "postgres", None, WRITES + SLOW + ["SELECT 1"], allow_superuser=False)
    assert set(kinds.values()) == {"privileged_account"}, kinds
    assert_untouched(postgres_db, before)


def run_layer_two(db, url_user, password, corpus, allow_superuser=True):
    """The corpus straight to the read-only connection, guard off: returns the error kind per query."""
    database = open_database(db.url(url_user), timeout=TIMEOUT, password=password, allow_superuser=allow_superuser)
    kinds = {}
    for sql in corpus:
        try:
            database.query(sql.format(files=files_of(db)))
            kinds[sql] = "ran"
        except DatabaseError as exc:
            kinds[sql] = exc.kind
    return kinds


def test_database_layer_alone_with_a_reader_login(postgres_db):
    """R24's configuration: a login role with SELECT grants only. Every attack fails; sleeps end at the deadline."""
    before = postgres_db.checksum()
    kinds = run_layer_two(postgres_db, postgres_db.reader, None, WRITES + ROLE_ESCAPES + SLOW + ONE_CALL)
    assert all(kinds[sql] == "timeout" for sql in SLOW + ONE_CALL), kinds
    assert all(kinds[sql] in ("query_refused", "query_failed") for sql in WRITES + ROLE_ESCAPES), kinds
    assert_untouched(postgres_db, before)


def test_database_layer_alone_with_a_superuser_login(postgres_db):
    """A superuser login, allowed explicitly, runs queries as pg_read_all_data: no writes, no server files, no
    file reads."""
    before = postgres_db.checksum()
    kinds = run_layer_two(postgres_db, "postgres", None, WRITES + SLOW)
    assert all(kinds[sql] == "timeout" for sql in SLOW), kinds
    assert all(kinds[sql] in ("query_refused", "query_failed") for sql in WRITES), kinds
    assert kinds["SELECT pg_read_file('/etc/hostname')"] == "query_refused"
    assert_untouched(postgres_db, before)
