"""The SQL plugin on a copy of the real Chinook database: exact answers to analytical questions, and
the R24 attack corpus refused or stopped with the file unchanged and no new file, through both
layers and through the database layer alone."""

import sqlite3
from collections import defaultdict
from decimal import Decimal

import pytest

from plugdeck import ToolError
from plugdeck.plugins.sql import sql_plugin
from plugdeck.plugins.sql.connect import DatabaseError, open_database


def call(plugin, tool, **arguments):
    import asyncio

    return asyncio.run(plugin.tool(tool).call(arguments))


def cents(value) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


@pytest.fixture
def music(chinook):
    return sql_plugin(chinook.url, name="music", timeout=0.5)


def raw(chinook, sql):
    """Rows read with the stdlib, for expected answers computed in Python rather than SQL."""
    with sqlite3.connect(chinook.path) as conn:
        return conn.execute(sql).fetchall()


def test_tables_and_schema(music):
    tables = call(music, "list_tables")
    assert tables == ("11 tables: Album, Artist, Customer, Employee, Genre, Invoice, InvoiceLine, MediaType, "
                      "Playlist, PlaylistTrack, Track")
    invoice = call(music, "describe_table", table="invoice")  # the model's spelling is forgiven
    lines = invoice.splitlines()
    assert lines[0] == "table Invoice (9 columns)"
    assert lines[1] == "- InvoiceId: INTEGER, not null, primary key; e.g. 1, 2, 3"
    assert lines[2].startswith("- CustomerId: INTEGER, not null, references Customer.CustomerId; e.g. ")
    assert "- Total: NUMERIC(10,2), not null; e.g. 1.98, 3.96, 5.94" in lines
    with pytest.raises(ToolError) as missing:
        call(music, "describe_table", table="Invoices; DROP TABLE Invoice")
    assert missing.value.kind == "unknown_table" and "InvoiceLine" in missing.value.message


def test_top_customers_last_year_exact(music, chinook, rows_of):
    result = call(music, "run_query", sql=(
        "SELECT c.CustomerId, c.FirstName || ' ' || c.LastName AS name, ROUND(SUM(i.Total), 2) AS spent "
        "FROM Customer c JOIN Invoice i ON i.CustomerId = c.CustomerId "
        "WHERE i.InvoiceDate >= '2025-01-01' AND i.InvoiceDate < '2026-01-01' "
        "GROUP BY c.CustomerId ORDER BY spent DESC, c.CustomerId LIMIT 5"))
    spent = defaultdict(Decimal)
    for customer, when, total in raw(chinook, "SELECT CustomerId, InvoiceDate, Total FROM Invoice"):
        if when.startswith("2025"):
            spent[customer] += Decimal(str(total))
    people = raw(chinook, "SELECT CustomerId, FirstName, LastName FROM Customer")
    names = {i: f"{first} {last}" for i, first, last in people}
    expected = sorted(spent.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert result.splitlines()[0] == "CustomerId | name | spent"
    assert rows_of(result) == [[str(i), names[i], cents(total)] for i, total in expected]
    assert result.endswith("(5 rows)")
    assert rows_of(result)[0] == ["6", "Helena Holý", "27.84"]


@pytest.mark.parametrize("sql,expected", [
    ("SELECT COUNT(*), ROUND(SUM(Total), 2), MIN(InvoiceDate) FROM Invoice",
     [["412", "2328.6", "2021-01-01 00:00:00"]]),
    ("SELECT ar.Name, COUNT(*) AS tracks FROM Track t JOIN Album al ON al.AlbumId = t.AlbumId "
     "JOIN Artist ar ON ar.ArtistId = al.ArtistId GROUP BY ar.ArtistId ORDER BY tracks DESC LIMIT 3",
     [["Iron Maiden", "213"], ["U2", "135"], ["Led Zeppelin", "114"]]),
    ("SELECT g.Name, ROUND(SUM(il.UnitPrice * il.Quantity), 2) AS sales FROM InvoiceLine il "
     "JOIN Track t ON t.TrackId = il.TrackId JOIN Genre g ON g.GenreId = t.GenreId "
     "GROUP BY g.GenreId ORDER BY sales DESC LIMIT 3",
     [["Rock", "826.65"], ["Latin", "382.14"], ["Metal", "261.36"]]),
    ("WITH counts AS (SELECT GenreId, COUNT(*) AS n FROM Track GROUP BY GenreId) "
     "SELECT g.Name, n, RANK() OVER (ORDER BY n DESC) FROM counts JOIN Genre g USING (GenreId) LIMIT 3",
     [["Rock", "1297", "1"], ["Latin", "579", "2"], ["Metal", "374", "3"]]),
    ("SELECT e.FirstName || ' ' || e.LastName, COUNT(c.CustomerId) FROM Employee e "
     "JOIN Customer c ON c.SupportRepId = e.EmployeeId GROUP BY e.EmployeeId ORDER BY 2 DESC",
     [["Jane Peacock", "21"], ["Margaret Park", "20"], ["Steve Johnson", "18"]]),
    ("SELECT Name, Composer FROM Track WHERE TrackId IN (1, 63) ORDER BY TrackId",
     [["For Those About To Rock (We Salute You)", "Angus Young, Malcolm Young, Brian Johnson"],
      ["Desafinado", "NULL"]]),
])
def test_analytical_queries_exact(music, rows_of, sql, expected):
    assert rows_of(call(music, "run_query", sql=sql)) == expected


def test_revenue_per_year_matches_python(music, chinook, rows_of):
    result = call(music, "run_query", sql=(
        "SELECT strftime('%Y', InvoiceDate) AS year, COUNT(*), ROUND(SUM(Total), 2) FROM Invoice GROUP BY year"))
    per_year = defaultdict(lambda: [0, Decimal(0)])
    for when, total in raw(chinook, "SELECT InvoiceDate, Total FROM Invoice"):
        per_year[when[:4]][0] += 1
        per_year[when[:4]][1] += Decimal(str(total))
    assert rows_of(result) == [[y, str(n), cents(s).rstrip("0").rstrip(".")] for y, (n, s) in sorted(per_year.items())]


def test_row_limit_and_budget(chinook):
    small = sql_plugin(chinook.url, name="small", max_rows=5, budget=400)
    limited = call(small, "run_query", sql="SELECT TrackId FROM Track ORDER BY TrackId")
    assert limited.splitlines()[1:6] == ["1", "2", "3", "4", "5"]
    assert "5 rows shown, and the query has more" in limited
    wide = call(small, "run_query", sql="SELECT * FROM Track ORDER BY TrackId")
    assert "rows shown: the rest did not fit in 400 characters" in wide


# The R24 corpus for SQLite. Through the plugin each is refused by the guard or stopped by the deadline.
ATTACKS = [
    "DELETE FROM InvoiceLine",
    "UPDATE Customer SET Email = 'attacker@example.com'",
    "INSERT INTO Genre VALUES (999, 'Injected')",
    "DROP TABLE Track",
    "CREATE TABLE loot AS SELECT * FROM Customer",
    "CREATE TEMP TABLE loot (a)",
    "ALTER TABLE Customer ADD COLUMN owned INTEGER",
    "REPLACE INTO Genre VALUES (1, 'Owned')",
    "SELECT 1; DROP TABLE Track",
    "SELECT * FROM Artist; DELETE FROM Artist",
    "ATTACH DATABASE '{folder}/evil.db' AS evil",
    "DETACH DATABASE main",
    "PRAGMA query_only = 0",
    "PRAGMA journal_mode = WAL",
    "PRAGMA writable_schema = 1",
    "VACUUM",
    "VACUUM INTO '{folder}/stolen.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "SAVEPOINT s",
    "CREATE TRIGGER t AFTER INSERT ON Genre BEGIN DELETE FROM Track; END",
    "CREATE VIEW v AS SELECT 1",
    "SELECT load_extension('{folder}/evil.so')",
    "SELECT writefile('{folder}/dropped.txt', 'x')",
    "SELECT randomblob(1000000000)",
    "SELECT * FROM pragma_table_info('Track')",
]
SLOW = [
    "WITH RECURSIVE forever(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM forever) SELECT count(*) FROM forever",
    "SELECT count(*) FROM Track a, Track b, Track c",
]
# One function call that runs for minutes: SQLite never checks its progress handler inside it, so
# only killing the worker stops it (issue 11 item 7b; in-process it ran past a 1 s limit for > 20 s).
ONE_CALL = [
    "SELECT instr(printf('%.40000000c', 'a'), printf('%.100000c', 'a') || 'b')",  # the guard refuses the width
    # Only allowed functions: a 33 MB string built by doubling, then one quadratic instr() over it.
    "WITH RECURSIVE doubling(s, n) AS (SELECT 'a', 1 UNION ALL SELECT s || s, n + 1 FROM doubling WHERE n < 26) "
    "SELECT instr(s, substr(s, 1, 100000) || 'b') FROM doubling WHERE n = 26",
]
# Values that would outgrow the 50 MB cap on any value: refused by SQLite itself, at once.
TOO_BIG = [
    "SELECT length(replace(printf('%.30000000c', 'x'), 'x', 'xx'))",
    "SELECT length(group_concat(printf('%.1000000c', 'x'))) FROM Track",
]


def test_attacks_through_the_plugin_are_refused_or_stopped(music, chinook):
    before = chinook.state()
    folder = chinook.path.parent
    for sql in ATTACKS + SLOW + ONE_CALL + TOO_BIG:
        with pytest.raises(ToolError) as stopped:
            call(music, "run_query", sql=sql.format(folder=folder))
        expected = "timeout" if sql in SLOW or sql == ONE_CALL[1] else "query_refused"  # printf widths: the guard
        assert stopped.value.kind == expected, (sql, stopped.value.message)
        if sql == ONE_CALL[1]:  # past the guard, stopped by killing the worker
            assert "cut it off" in stopped.value.message
    assert chinook.state() == before  # same bytes, no new file (no ATTACH target, no VACUUM INTO copy)


def test_database_layer_alone_holds(chinook):
    """R24: the same corpus with the guard switched off, straight to the read-only connection."""
    db = open_database(chinook.url, timeout=0.5)
    before = chinook.state()
    folder = chinook.path.parent
    for sql in ATTACKS + SLOW + ONE_CALL + TOO_BIG:
        with pytest.raises(DatabaseError) as stopped:
            db.query(sql.format(folder=folder))
        message = stopped.value.message
        if sql in SLOW:  # stopped at the deadline by SQLite's progress handler, not run to the end
            assert stopped.value.kind == "timeout" and "cut it off" not in message, (sql, message)
        elif sql in ONE_CALL:  # the handler never ran: the worker process was killed at the deadline
            assert stopped.value.kind == "timeout" and "cut it off" in message, (sql, message)
        elif sql in TOO_BIG:
            assert stopped.value.kind == "query_failed" and "string or blob too big" in message, (sql, message)
        else:
            assert stopped.value.kind in ("query_refused", "query_failed"), (sql, message)
    assert chinook.state() == before
    assert db.query("SELECT COUNT(*) FROM Genre").rows == [(25,)]  # and reading still works
    assert db.query("SELECT length(printf('%.60000000c', 'x'))").rows == [(None,)]  # printf gives up: NULL


def test_garak_version_probes_change_nothing(music, chinook):
    from test_sql_guard import GARAK_PROBES

    before = chinook.state()
    for probe in GARAK_PROBES:
        with pytest.raises(ToolError) as stopped:
            call(music, "run_query", sql=probe)
        assert stopped.value.kind in ("query_refused", "query_failed"), probe  # v$version: no such table
    assert chinook.state() == before


def test_a_killed_worker_is_replaced_and_reading_goes_on(chinook):
    """After the deadline kill, the next query gets a fresh worker; a worker ended from outside while
    idle is noticed and replaced too."""
    db = open_database(chinook.url, timeout=0.5)
    assert db.query("SELECT COUNT(*) FROM Genre").rows == [(25,)]
    idle = list(db._idle)
    with pytest.raises(DatabaseError) as stopped:
        db.query(ONE_CALL[0])
    assert stopped.value.kind == "timeout" and all(w.process.poll() is not None for w in idle)
    assert db.query("SELECT COUNT(*) FROM Artist").rows == [(275,)]
    db._idle[0].process.kill()
    db._idle[0].process.wait()
    assert db.query("SELECT COUNT(*) FROM Genre").rows == [(25,)]
    db.close()
    assert db._idle == []


def test_manifest_marks_outside_data(music, chinook):
    assert music.effect == "read"
    assert all(t.untrusted and t.effect == "read" for t in music.tools)
    assert [t.name for t in music.tools] == ["list_tables", "describe_table", "run_query"]
    assert music.needs == {"files": [str(chinook.path)]}
    assert "SQLite" in music.tool("run_query").description


def test_clear_errors(chinook, tmp_path):
    broken = call_error(sql_plugin(chinook.url, name="m"), "SELECT NoSuchColumn FROM Track")
    assert broken.kind == "query_failed" and "no such column: NoSuchColumn" in broken.message
    missing = call_error(sql_plugin(f"sqlite:///{tmp_path}/absent.db", name="m"), "SELECT 1")
    assert missing.kind == "unreachable" and "absent.db" in missing.message
    assert not (tmp_path / "absent.db").exists()  # read-only: opening never creates the file
    with pytest.raises(ValueError, match="sqlite://, postgresql://"):
        sql_plugin("oracle://scott@localhost/orcl")


def call_error(plugin, sql) -> ToolError:
    with pytest.raises(ToolError) as failed:
        call(plugin, "run_query", sql=sql)
    return failed.value
