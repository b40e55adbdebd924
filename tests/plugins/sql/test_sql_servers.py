"""The SQL plugin on real PostgreSQL and MariaDB servers: schema, exact answers (computed in Python
from the data the session loaded), and passwords that never show."""

import asyncio
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sql_shop_data import CUSTOMERS, ORDER_ITEMS, ORDERS, PRODUCTS

from plugdeck import ToolError
from plugdeck.plugins.sql import sql_plugin


def call(plugin, tool, **arguments):
    return asyncio.run(plugin.tool(tool).call(arguments))


@pytest.fixture(params=["postgres", "mariadb"])
def server(request):
    """Each test runs against both servers: (dialect, database, plugin as the account that can only read)."""
    db = request.getfixturevalue("postgres_db" if request.param == "postgres" else "mariadb_db")
    return request.param, db, sql_plugin(db.url(db.reader), password=db.reader_password, name="shop", timeout=2)


NAMES = {i: name.replace("|", "\\|").replace("\n", "\\n") for i, name, _, _ in CUSTOMERS}  # as cells show them
PAID_2025 = {o for o, _, placed, status in ORDERS if status == "paid" and placed.year == 2025}
CUSTOMER_OF = {o: c for o, c, _, _ in ORDERS}


def test_tables_and_schema(server):
    dialect, _, shop = server
    tables = call(shop, "list_tables")
    expected = "customers, order_items, orders, products"
    assert tables == (f"5 tables: audit.events, {expected}" if dialect == "postgres" else f"4 tables: {expected}")
    items = call(shop, "describe_table", table="ORDER_ITEMS").splitlines()
    assert items[0] == "table order_items (4 columns)"
    integer, money = ("integer", "numeric(10,2)") if dialect == "postgres" else ("int(11)", "decimal(10,2)")
    assert items[1] == f"- order_id: {integer}, not null, primary key, references orders.id; e.g. 101, 102, 103"
    assert items[2].startswith(f"- product_id: {integer}, not null, primary key, references products.id; e.g. ")
    assert items[4] == f"- unit_price: {money}, not null; e.g. 24.90, 4.35, 129.00"
    customers = call(shop, "describe_table", table="customers")
    assert "e.g. Zoë Ådahl, Ravi Patel, María González" in customers


def test_top_customers_last_year_exact(server, rows_of):
    _, _, shop = server
    result = call(shop, "run_query", sql=(
        "SELECT c.name, SUM(i.quantity * i.unit_price) AS spent FROM customers c "
        "JOIN orders o ON o.customer_id = c.id JOIN order_items i ON i.order_id = o.id "
        "WHERE o.status = 'paid' AND o.placed_at >= '2025-01-01' AND o.placed_at < '2026-01-01' "
        "GROUP BY c.id, c.name ORDER BY spent DESC LIMIT 5;"))
    spent = defaultdict(Decimal)
    for order, _, quantity, price in ORDER_ITEMS:
        if order in PAID_2025:
            spent[CUSTOMER_OF[order]] += quantity * price
    expected = sorted(spent.items(), key=lambda kv: -kv[1])[:5]
    assert rows_of(result) == [[NAMES[c], str(total)] for c, total in expected]
    assert rows_of(result)[0] == ["Zoë Ådahl", "203.70"] and result.endswith("(5 rows)")


def test_monthly_revenue_and_average_order(server, rows_of):
    dialect, _, shop = server
    month = "to_char(o.placed_at, 'YYYY-MM')" if dialect == "postgres" else "DATE_FORMAT(o.placed_at, '%Y-%m')"
    monthly = call(shop, "run_query", sql=(
        f"SELECT {month} AS month, SUM(i.quantity * i.unit_price) FROM orders o JOIN order_items i "
        "ON i.order_id = o.id WHERE o.status = 'paid' GROUP BY 1 ORDER BY 1"))
    per_month = defaultdict(Decimal)
    placed = {o: (when, status) for o, _, when, status in ORDERS}
    for order, _, quantity, price in ORDER_ITEMS:
        when, status = placed[order]
        if status == "paid":
            per_month[when.strftime("%Y-%m")] += quantity * price
    assert rows_of(monthly) == [[m, str(v)] for m, v in sorted(per_month.items())]

    average = call(shop, "run_query", sql=(
        "WITH totals AS (SELECT o.id, SUM(i.quantity * i.unit_price) AS total FROM orders o "
        "JOIN order_items i ON i.order_id = o.id WHERE o.status = 'paid' GROUP BY o.id) "
        "SELECT COUNT(*), ROUND(AVG(total), 2) FROM totals"))
    totals = defaultdict(Decimal)
    for order, _, quantity, price in ORDER_ITEMS:
        if placed[order][1] == "paid":
            totals[order] += quantity * price
    mean = (sum(totals.values()) / len(totals)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert rows_of(average) == [[str(len(totals)), str(mean)]]


def test_window_left_join_nulls_and_types(server, rows_of):
    dialect, _, shop = server
    ranked = call(shop, "run_query", sql=(
        "SELECT p.name, SUM(i.quantity) AS units, RANK() OVER (ORDER BY SUM(i.quantity) DESC) AS place "
        "FROM products p JOIN order_items i ON i.product_id = p.id GROUP BY p.id, p.name ORDER BY place, p.name"))
    units = defaultdict(int)
    for _, product, quantity, _ in ORDER_ITEMS:
        units[product] += quantity
    names = {i: name for i, name, _ in PRODUCTS}
    ordered = sorted(units.items(), key=lambda kv: (-kv[1], names[kv[0]]))
    assert [row[:2] for row in rows_of(ranked)] == [[names[p], str(n)] for p, n in ordered]
    assert [row[2] for row in rows_of(ranked)] == ["1", "2", "3", "3"]

    lonely = call(shop, "run_query", sql=(
        "SELECT c.name, c.vip FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL"))
    assert rows_of(lonely) == [["Nobody Yet", "NULL"]]
    flags = call(shop, "run_query", sql="SELECT c.id, c.vip, o.placed_at FROM customers c JOIN orders o "
                                        "ON o.customer_id = c.id WHERE o.id IN (104, 107) ORDER BY c.id")
    yes, no = ("true", "false") if dialect == "postgres" else ("1", "0")
    assert rows_of(flags) == [["3", yes, "2025-06-01"], ["5", no, "2025-12-31"]]


def test_row_limit_stops_the_query_early(server):
    _, db, _ = server
    small = sql_plugin(db.url(db.reader), password=db.reader_password, name="small", max_rows=3, timeout=2)
    # 12^7 = 35 million rows, with its own LIMIT above ours: fetched in full, it would miss the deadline.
    huge = ("SELECT a.quantity FROM order_items a, order_items b, order_items c, order_items d, order_items e, "
            "order_items f, order_items g LIMIT 100000000")
    result = small.tool("run_query")
    text = asyncio.run(result.call({"sql": huge}))
    assert len(text.splitlines()) == 5 and "3 rows shown, and the query has more" in text


def test_passwords_never_show(server, monkeypatch):
    dialect, db, _ = server
    canary = "canary-Pa55word-7f3a"
    scheme = "postgresql" if dialect == "postgres" else "mysql"
    in_url = sql_plugin(f"{scheme}://nobody_here:{canary}@127.0.0.1/{db.name}", name="leaky")
    monkeypatch.setenv("PLUGDECK_SQLTEST_PASSWORD", canary)
    from_env = sql_plugin(f"{scheme}://nobody_here@127.0.0.1/{db.name}", name="leaky2",
                          password_env="PLUGDECK_SQLTEST_PASSWORD")
    for plugin in (in_url, from_env):
        with pytest.raises(ToolError) as refused:
            call(plugin, "run_query", sql="SELECT 1")
        assert refused.value.kind == "unreachable" and "nobody_here" in refused.value.message
        assert canary not in refused.value.message
        assert canary not in repr(plugin.manifest())
    assert from_env.needs["secrets"] == ["PLUGDECK_SQLTEST_PASSWORD"]
    # The reader's real password, from the environment (PostgreSQL here trusts local logins and ignores it).
    monkeypatch.setenv("PLUGDECK_SQLTEST_PASSWORD", db.reader_password or canary)
    reader = sql_plugin(db.url(db.reader), name="reader", password_env="PLUGDECK_SQLTEST_PASSWORD")
    assert call(reader, "run_query", sql="SELECT COUNT(*) AS n FROM customers") == "n\n6\n(1 row)"


def test_superuser_accounts_are_refused_unless_allowed(server):
    """Issue 11 item 7a: root (MariaDB) and a superuser (PostgreSQL) can reach the server's files even
    in a read-only transaction, so the plugin refuses them before any query, unless allowed explicitly."""
    dialect, db, _ = server
    from plugdeck.plugins.sql.connect import DatabaseError, open_database

    admin = sql_plugin(db.url(), name="admin", timeout=2)
    with pytest.raises(ToolError) as refused:
        call(admin, "run_query", sql="SELECT COUNT(*) AS n FROM customers")
    message = refused.value.message
    assert refused.value.kind == "privileged_account"
    expected = "as postgres: it has superuser" if dialect == "postgres" else "as root@"
    assert expected in message and "allow_superuser = true" in message and "--allow-superuser" in message
    with pytest.raises(DatabaseError) as alone:  # the guard is not involved: the database layer refuses
        open_database(db.url(), timeout=2).query("SELECT 1")
    assert alone.value.kind == "privileged_account"

    allowed = sql_plugin(db.url(), name="admin", timeout=2, allow_superuser=True)
    assert call(allowed, "run_query", sql="SELECT COUNT(*) AS n FROM customers") == "n\n6\n(1 row)"
    warnings = open_database(db.url(), timeout=2, allow_superuser=True).privilege_warnings()
    assert len(warnings) == 1 and "allowed by allow_superuser" in warnings[0]
    assert ("superuser" in warnings[0]) if dialect == "postgres" else ("ALL PRIVILEGES" in warnings[0])
    reader = open_database(db.url(db.reader), timeout=2, password=db.reader_password)
    assert reader.privilege_warnings() == []


def test_server_file_roles_are_refused_on_postgres(postgres_db):
    """A role that is no superuser but may read or write server files (pg_read_server_files) is refused too."""
    from plugdeck.plugins.sql.connect import DatabaseError, open_database

    with postgres_db.admin() as conn:
        conn.execute(f"GRANT pg_read_server_files TO {postgres_db.reader}")
    try:
        with pytest.raises(DatabaseError) as refused:
            open_database(postgres_db.url(postgres_db.reader), timeout=2).query("SELECT 1")
        assert refused.value.kind == "privileged_account" and "pg_read_server_files" in refused.value.message
    finally:
        with postgres_db.admin() as conn:
            conn.execute(f"REVOKE pg_read_server_files FROM {postgres_db.reader}")


def test_file_privilege_is_refused_on_mariadb(mariadb_db):
    """An account with only SELECT plus the global FILE privilege is refused (it could INTO OUTFILE)."""
    from plugdeck.plugins.sql.connect import DatabaseError, open_database

    admin = mariadb_db.admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"GRANT FILE ON *.* TO '{mariadb_db.reader}'@'%'")
        with pytest.raises(DatabaseError) as refused:
            open_database(mariadb_db.url(mariadb_db.reader), timeout=2, password=mariadb_db.reader_password).query(
                "SELECT 1")
        assert refused.value.kind == "privileged_account" and "FILE" in refused.value.message
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"REVOKE FILE ON *.* FROM '{mariadb_db.reader}'@'%'")
        admin.close()
