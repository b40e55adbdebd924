"""Query results as text: exact values, one line per row, the count, and notes on what was cut."""

import datetime as dt
from decimal import Decimal

from plugdeck.plugins.sql.format import CELL_LIMIT, format_table, format_value


def test_values_are_exact():
    assert format_value(Decimal("1E-7")) == "0.0000001"  # never scientific notation
    assert format_value(Decimal("123456789012345678901234.50")) == "123456789012345678901234.50"
    assert format_value(0.1 + 0.2) == "0.30000000000000004"  # the float as stored, not rounded
    assert format_value(2328.600000000004) == "2328.600000000004"
    assert format_value(None) == "NULL"
    assert format_value(True) == "true" and format_value(0) == "0"
    assert format_value(dt.datetime(2025, 12, 31, 23, 59, 1)) == "2025-12-31 23:59:01"
    assert format_value(dt.date(2024, 2, 29)) == "2024-02-29"
    assert format_value(b"\x00\xff") == "0x00ff"
    assert format_value(bytes(40)).endswith("… (40 bytes)")
    assert format_value({"a": [1, "é"]}) == '{"a": [1, "é"]}'


def test_table_with_count_and_escaping():
    text = format_table(["id", "name"], [(1, "O'Brien | Pipe\nLine"), (2, None)])
    assert text.splitlines() == ["id | name", "1 | O'Brien \\| Pipe\\nLine", "2 | NULL", "(2 rows)"]
    assert format_table(["n"], [(1,)]).endswith("(1 row)")
    assert format_table(["n"], []) == "n\n(0 rows)"


def test_row_limit_note():
    text = format_table(["n"], [(i,) for i in range(5)], more=True)
    assert "5 rows shown" in text and "more" in text and "LIMIT" in text


def test_budget_cuts_whole_rows_with_a_note():
    rows = [(i, "x" * 50) for i in range(100)]
    text = format_table(["n", "text"], rows, budget=1_000)
    lines = text.splitlines()
    assert len(text) < 1_200
    assert all(line.count(" | ") == 1 for line in lines[:-1])  # no row is cut in half
    shown = len(lines) - 2
    assert lines[-1].startswith(f"({shown} of 100 rows shown") and "1000 characters" in lines[-1]


def test_long_cells_say_how_much_is_missing():
    text = format_table(["doc"], [("y" * (CELL_LIMIT + 123),)])
    assert "…[123 more characters]" in text
