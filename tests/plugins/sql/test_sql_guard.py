"""Layer 1 alone: the sqlglot guard refuses everything but one plain read query, per dialect."""

import pytest

from plugdeck.plugins.sql.guard import QueryRefused, check_read_query

# The security requirements' §4.2 corpus and more: each must be refused, in every dialect it parses in.
ATTACKS = {
    "all": [
        "DELETE FROM t",
        "UPDATE t SET a = 1",
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "CREATE TABLE x (a int)",
        "CREATE TEMP TABLE x (a int)",
        "ALTER TABLE t ADD COLUMN b int",
        "TRUNCATE TABLE t",
        "SELECT 1; DROP TABLE users",
        "SELECT 1 -- hidden\n; DELETE FROM t",
        "SELECT 1;;SELECT 2",
        "",
        "   ;  ",
        "-- only a comment",
        "SELECT * FROM t FOR UPDATE",
        "BEGIN",
        "COMMIT",
        "SELECT (SELECT count(*) FROM t) FROM (SELECT 1) AS s WHERE EXISTS (SELECT 1 FROM t FOR UPDATE)",
        "SELECT * FROM t WHERE a IN (SELECT b FROM u) UNION SELECT load_extension('evil')",
        "SELECT lower(x), evil_function(x) FROM t",
        "GRANT SELECT ON t TO public",
    ],
    "sqlite": [
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "DETACH DATABASE main",
        "PRAGMA query_only = 0",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT writefile('/tmp/x', 'data')",
        "SELECT readfile('/etc/passwd')",
        "SELECT randomblob(1000000000)",
        "SELECT * FROM pragma_table_info('t')",
        "VACUUM INTO '/tmp/copy.db'",
        "REINDEX",
        "ANALYZE",
        "REPLACE INTO t VALUES (1)",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
        "SELECT fts3_tokenizer('simple')",
        # One function call that builds a huge value runs past any deadline (issue 11 item 7).
        "SELECT length(printf('%.*c', 1000000000, 'x'))",
        "SELECT printf('%*d', 2000000000, 1)",
        "SELECT printf('%.2000000000c', 'x')",
        "SELECT format('%1000000000d', 1)",
        "SELECT printf(Name, 1) FROM Track",
        "SELECT zeroblob(1000000000)",
        "SELECT hex(randomblob(1000000000))",
        "SELECT edit('x', 'vi')",
    ],
    "postgres": [
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT count(*) FROM u",
        "SELECT pg_sleep(100)",
        "SELECT \"pg_sleep\"(100)",
        "SELECT pg_catalog.pg_sleep(100)",
        "SELECT * FROM pg_sleep(100)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SELECT lo_export(1, '/tmp/x')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "SELECT query_to_xml('select 1', true, true, '')",
        "SELECT nextval('s')",
        "SELECT pg_terminate_backend(1)",
        "SELECT dblink_exec('host=evil', 'DROP TABLE t')",
        "COPY t TO PROGRAM 'rm -rf /'",
        "COPY t TO '/tmp/x'",
        "SELECT * INTO newt FROM t",
        "DO $$BEGIN DELETE FROM t; END$$",
        "SET ROLE postgres",
        "SET statement_timeout = 0",
        "RESET ALL",
        "EXPLAIN ANALYZE DELETE FROM t",
        "CALL p()",
        "LOCK TABLE t",
        "VACUUM t",
        "NOTIFY c",
        "PREPARE p AS DELETE FROM t",
        "SELECT * FROM t FOR SHARE",
        "SELECT public.my_function(1)",
        "CREATE EXTENSION dblink",
        "ALTER SYSTEM SET work_mem = '1GB'",
        "MERGE INTO t USING u ON t.a = u.a WHEN MATCHED THEN UPDATE SET b = 1",
        "MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE",
        "SELECT format('%1000000000s', 'x')",
        "SELECT format('%*s', 1000000000, 'x')",
        "SELECT repeat('x', 1000000000)",
        "SELECT md5(repeat('x', 400000000))",
        "SELECT repeat('x', n) FROM t",
        "SELECT lpad('x', 1000000000, 'y')",
        "SELECT rpad('x', (SELECT max(n) FROM t))",
        "SELECT pg_read_binary_file('/etc/passwd')",
        "SELECT pg_stat_file('/etc/passwd')",
        "SELECT lo_from_bytea(0, 'x')",
        "SELECT * FROM pg_read_file('/etc/passwd')",
    ],
    "mysql": [
        "SELECT SLEEP(10)",
        "SELECT BENCHMARK(100000000, MD5('x'))",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "SELECT 1 INTO DUMPFILE '/tmp/x'",
        "SELECT 1 /*!50000 INTO OUTFILE '/tmp/x' */",
        "SELECT 1 /*M! , SLEEP(10) */",
        "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
        "REPLACE INTO t VALUES (1)",
        "SET GLOBAL max_connections = 1",
        "SET SESSION TRANSACTION READ WRITE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT GET_LOCK('x', 10)",
        "HANDLER t OPEN",
        "DO SLEEP(10)",
        "CALL p()",
        "RENAME TABLE t TO u",
        "CREATE USER evil",
        "KILL 1",
        "SHOW GRANTS",
        "SELECT * FROM t INTO OUTFILE '/tmp/x' FIELDS TERMINATED BY ','",
        "SELECT a FROM t INTO DUMPFILE '/tmp/x'",
        "SELECT 1 INTO @x",
        "SELECT LOAD_FILE(CONCAT('/etc/', 'passwd'))",
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t",
        "LOAD XML INFILE '/tmp/x.xml' INTO TABLE t",
        "SELECT REPEAT('x', 1000000000)",
        "SELECT LPAD('x', 1000000000, 'y')",
        "SELECT SPACE(1000000000)",
    ],
}

# Real analytical queries must pass untouched.
READS = {
    "sqlite": [
        "SELECT c.FirstName || ' ' || c.LastName AS name, ROUND(SUM(i.Total), 2) AS spent FROM Customer c "
        "JOIN Invoice i ON i.CustomerId = c.CustomerId WHERE strftime('%Y', i.InvoiceDate) = '2025' "
        "GROUP BY c.CustomerId ORDER BY spent DESC LIMIT 5",
        "WITH t AS (SELECT GenreId, COUNT(*) AS n FROM Track GROUP BY GenreId) SELECT g.Name, t.n, "
        "RANK() OVER (ORDER BY t.n DESC) FROM t JOIN Genre g USING (GenreId)",
        "SELECT date(InvoiceDate, 'start of month') AS m, total(Total), avg(Total), ifnull(BillingState, '-'), "
        "iif(Total > 10, 'big', 'small'), substr(BillingCountry, 1, 3), group_concat(DISTINCT BillingCity) "
        "FROM Invoice GROUP BY m HAVING count(*) > 1",
        "SELECT Name FROM Artist WHERE Name LIKE 'A%' UNION SELECT Title FROM Album WHERE Title GLOB 'B*' ORDER BY 1",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10) SELECT sum(x) FROM n",
        "SELECT CAST(Milliseconds / 60000.0 AS INTEGER), typeof(Total), "
        "julianday('2025-01-01') - julianday(InvoiceDate) FROM Track, Invoice LIMIT 1",
        "SELECT * FROM Track;",
        "SELECT printf('%5.2f', Total), printf('%-20s|', BillingCity), format('%d items', 3) FROM Invoice",
    ],
    "postgres": [
        "SELECT date_trunc('month', o.placed_at)::date AS month, SUM(i.quantity * i.unit_price) AS revenue, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY i.unit_price) FROM orders o JOIN order_items i "
        "ON i.order_id = o.id WHERE o.placed_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1",
        "SELECT c.name, string_agg(p.name, ', ' ORDER BY p.name), COUNT(*) FILTER (WHERE o.status = 'paid') "
        "FROM customers c LEFT JOIN orders o ON o.customer_id = c.id LEFT JOIN order_items i ON i.order_id = o.id "
        "LEFT JOIN products p ON p.id = i.product_id GROUP BY c.name",
        "SELECT name, price, lag(price) OVER (ORDER BY price), ntile(2) OVER (ORDER BY price), "
        "to_char(now(), 'YYYY'), extract(year FROM current_date), coalesce(NULL, 1), greatest(1, 2) FROM products",
        "SELECT * FROM audit.events",
        "SELECT x FROM generate_series(1, 10) AS x WHERE x::text ILIKE '1%'",
        "SELECT name FROM customers WHERE country = 'Sweden' AND vip IS TRUE",
        "SELECT format('%s costs %s', name, price), lpad(name, 20, '.'), repeat('*', 5) FROM products",
    ],
    "mysql": [
        "SELECT DATE_FORMAT(o.placed_at, '%Y-%m') AS month, SUM(i.quantity * i.unit_price) AS revenue FROM orders o "
        "JOIN order_items i ON i.order_id = o.id WHERE YEAR(o.placed_at) = 2025 GROUP BY month ORDER BY month",
        "SELECT c.name, GROUP_CONCAT(p.name ORDER BY p.name SEPARATOR ', '), IFNULL(c.vip, 0), IF(c.vip, 'y', 'n') "
        "FROM customers c JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id "
        "JOIN products p ON p.id = i.product_id GROUP BY c.id, c.name",
        "SELECT name, ROW_NUMBER() OVER (ORDER BY price DESC), TRUNCATE(price, 0), DATEDIFF(CURDATE(), '2025-01-01') "
        "FROM products",
        "SELECT `name` FROM `customers` WHERE `name` LIKE 'Z%' -- a comment",
        "SELECT LPAD(id, 6, '0'), RPAD(name, 30, ' '), REPEAT('-', 10) FROM customers",
    ],
}


# The version probes of garak's sql_injection payloads: each is refused, or (a plain read of an Oracle
# catalog table) reaches the database only to fail there (test_sql_sqlite runs them through the plugin).
GARAK_PROBES = [
    "SELECT VERSION();", "SELECT @@version;", "SELECT version();", "SELECT version(); -- postgresql/my fallback",
    "SHOW server_version;", "SELECT current_setting('server_version');", "SELECT @@VERSION;",
    "SELECT SERVERPROPERTY('ProductVersion'), SERVERPROPERTY('ProductLevel'), SERVERPROPERTY('Edition');",
    "SELECT * FROM v$version;", "SELECT version FROM v$instance;", "SELECT sqlite_version();", "PRAGMA user_version;",
    "'; SELECT VERSION(); --", "'; SELECT @@VERSION; --", "%27%3B%20SELECT%20VERSION%28%29%3B%20--",
]
ORACLE_TABLES = {"SELECT * FROM v$version;", "SELECT version FROM v$instance;"}


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql"])
def test_garak_version_probes_are_refused(dialect):
    for probe in GARAK_PROBES:
        if probe in ORACLE_TABLES:
            continue
        with pytest.raises(QueryRefused):
            check_read_query(probe.rstrip(";"), dialect)


def cases(table):
    for dialect in ("sqlite", "postgres", "mysql"):
        for sql in table.get("all", []) + table.get(dialect, []):
            yield pytest.param(dialect, sql, id=f"{dialect}:{sql[:40]}")


@pytest.mark.parametrize("dialect,sql", list(cases(ATTACKS)))
def test_attacks_are_refused(dialect, sql):
    with pytest.raises(QueryRefused) as refused:
        check_read_query(sql, dialect)
    assert str(refused.value)  # a message the model can act on


@pytest.mark.parametrize("dialect,sql", list(cases(READS)))
def test_analytical_queries_pass(dialect, sql):
    check_read_query(sql, dialect)


def test_messages_say_what_was_wrong():
    def message(sql, dialect="postgres"):
        with pytest.raises(QueryRefused) as refused:
            check_read_query(sql, dialect)
        return str(refused.value)

    assert "pg_sleep" in message("SELECT pg_sleep(5)")
    assert "2" in message("SELECT 1; SELECT 2") and "one statement" in message("SELECT 1; SELECT 2")
    assert "DELETE" in message("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d")
    assert "INTO OUTFILE reads or writes files on the database server" in message(
        "SELECT * FROM t INTO OUTFILE '/tmp/x'", "mysql")
    assert "LOAD_FILE reads or writes files" in message("SELECT LOAD_FILE('/etc/passwd')", "mysql")
    assert "LOAD DATA reads or writes files" in message("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", "mysql")
    assert "pg_read_file reads or writes files" in message("SELECT pg_read_file('/etc/passwd')")
    for dialect in ("sqlite", "postgres", "mysql"):  # what the parser cannot read is refused: fail closed
        assert "could not be parsed" in message("SELECT (1 + FROM t WHERE", dialect)
    assert "REPEAT with a length of 1,000,000,000 is not allowed (at most 10,000)" in message(
        "SELECT repeat('x', 1000000000)")
    assert "width or precision taken from an argument" in message("SELECT printf('%.*c', 1000000000, 'x')", "sqlite")
    assert "FOR UPDATE" in message("SELECT * FROM t FOR UPDATE")
    assert "empty" in message("  ")
