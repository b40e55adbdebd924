"""R24 on MariaDB: the attack corpus is refused or stopped through both layers, and through the
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
    "INSERT INTO customers VALUES (99, 'Mallory', 'Nowhere', 1)",
    "REPLACE INTO products VALUES (1, 'Owned', 0)",
    "DROP TABLE order_items",
    "CREATE TABLE loot AS SELECT * FROM customers",
    "CREATE TEMPORARY TABLE loot (a INT)",
    "ALTER TABLE products ADD COLUMN owned INT",
    "TRUNCATE TABLE order_items",
    "RENAME TABLE orders TO gone",
    "SELECT 1; DELETE FROM order_items",
    "SELECT * FROM customers; DROP TABLE orders",
    "WITH gone AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN (SELECT id FROM gone)",
    "SELECT * FROM orders FOR UPDATE",
    "SELECT * FROM orders INTO OUTFILE '{files}_out'",
    "SELECT 1 INTO DUMPFILE '{files}_dump'",
    "SELECT 1 /*!50000 INTO OUTFILE '{files}_comment' */",
    "LOAD DATA INFILE '/etc/hostname' INTO TABLE customers",
    "SET GLOBAL max_connections = 1",
    "SET GLOBAL general_log = 1",
    "SET GLOBAL read_only = 1",
    "CREATE USER mallory",
    "GRANT ALL ON *.* TO mallory",
    "LOCK TABLES orders WRITE",
    "CREATE PROCEDURE wipe() DELETE FROM orders",
    "CREATE EVENT wipe ON SCHEDULE EVERY 1 SECOND DO DELETE FROM orders",
]
# Shared locks and HANDLER only read: the database lets them run, the guard refuses them anyway.
READ_LOCKS = ["SELECT * FROM orders LOCK IN SHARE MODE", "HANDLER orders OPEN", "SELECT BENCHMARK(10, MD5('x'))"]
SLOW = [
    "SELECT SLEEP(30)",
    "SELECT SUM(a.seq * b.seq) FROM seq_1_to_100000 a, seq_1_to_100000 b",
    "SELECT SUM(a.quantity * h.quantity) FROM order_items a, order_items b, order_items c, order_items d, "
    "order_items e, order_items f, order_items g, order_items h",
]
# Reading a server file: root could; a reader account gets NULL (no FILE privilege).
FILE_READS = ["SELECT LOAD_FILE('/etc/hostname')", "SELECT LOAD_FILE('/etc/passwd') IS NOT NULL"]
# Huge values: MariaDB caps every value at max_allowed_packet (16 MB here) and answers NULL at once.
HUGE = ["SELECT LENGTH(REPEAT('x', 1000000000))", "SELECT LENGTH(LPAD('x', 1000000000, 'y'))",
        "SELECT LENGTH(SPACE(1000000000))"]
FILE_SUFFIXES = ["_out", "_dump", "_comment"]


def files_of(db):
    return f"/tmp/plugdeck_sqltest_{db.token}"


def assert_untouched(db, checksum):
    assert db.checksum() == checksum
    for suffix in FILE_SUFFIXES:
        assert not db.server_file_exists(files_of(db) + suffix), suffix


def test_both_layers_refuse_or_stop_everything(mariadb_db):
    # As root, allowed explicitly: the guard refuses everything (root could write files past layer 2).
    shop = sql_plugin(mariadb_db.url(), name="shop", timeout=TIMEOUT, allow_superuser=True)
    before = mariadb_db.checksum()
    for sql in WRITES + READ_LOCKS + SLOW + FILE_READS + HUGE:
        with pytest.raises(ToolError) as stopped:
            asyncio.run(shop.tool("run_query").call({"sql": sql.format(files=files_of(mariadb_db))}))
        # SLEEP is refused by the guard; the expensive plain queries are stopped by the server.
        expected = "timeout" if sql in SLOW and "SLEEP" not in sql else "query_refused"
        assert stopped.value.kind == expected, (sql, stopped.value.message)
    assert_untouched(mariadb_db, before)


def test_root_is_refused_before_any_query(mariadb_db):
    """Issue 11 item 7a: root with the guard off could SELECT ... INTO OUTFILE and LOAD_FILE. Not allowed
    explicitly, root runs nothing, through the plugin or straight to the database layer."""
    shop = sql_plugin(mariadb_db.url(), name="shop", timeout=TIMEOUT)
    before = mariadb_db.checksum()
    with pytest.raises(ToolError) as refused:
        asyncio.run(shop.tool("run_query").call({"sql": "SELECT COUNT(*) FROM customers"}))
    assert refused.value.kind == "privileged_account" and "--allow-superuser" in refused.value.message
    database = open_database(mariadb_db.url(), timeout=TIMEOUT)  # layer 1 disabled
    for sql in WRITES + FILE_READS + SLOW:
        with pytest.raises(DatabaseError) as stopped:
            database.query(sql.format(files=files_of(mariadb_db)))
        assert stopped.value.kind == "privileged_account", sql
    assert_untouched(mariadb_db, before)


def test_database_layer_alone_with_a_reader_account(mariadb_db):
    """R24's configuration: an account with SELECT only. Every attack fails; sleeps end at the deadline."""
    database = open_database(mariadb_db.url(mariadb_db.reader), timeout=TIMEOUT, password=mariadb_db.reader_password)
    before = mariadb_db.checksum()
    kinds = {}
    for sql in WRITES + READ_LOCKS + SLOW:
        try:
            database.query(sql.format(files=files_of(mariadb_db)))
            kinds[sql] = "ran"
        except DatabaseError as exc:
            kinds[sql] = exc.kind
    assert all(kinds[sql] == "timeout" for sql in SLOW), kinds
    assert all(kinds[sql] in ("query_refused", "query_failed") for sql in WRITES), kinds
    assert [database.query(sql).rows for sql in FILE_READS] == [[(None,)], [(0,)]]  # no file was read
    assert [database.query(sql).rows for sql in HUGE] == [[(None,)]] * 3  # capped by the server, not built
    assert_untouched(mariadb_db, before)
