"""Query results as a compact text table for a model: exact values, the row count, and a note
whenever something was left out (rows beyond the limit, rows beyond the character budget, long
cells).

    CustomerId | Name | Total
    6 | Helena Holý | 49.62
    (1 row)

Cells are separated by ` | `; a `|`, a backslash or a line break inside a value is escaped
(`\\|`, `\\\\`, `\\n`) so each row stays one line. NULL is written NULL.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, Sequence

CELL_LIMIT = 500  # characters of one value; longer ones are cut with a note saying how much


def format_value(value: Any) -> str:
    """One value as exact text: decimals in plain notation, floats as their shortest round trip."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        shown = data[:32].hex()
        return f"0x{shown}" + (f"… ({len(data)} bytes)" if len(data) > 32 else "")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _cell(value: Any) -> str:
    text = format_value(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > CELL_LIMIT:
        text = text[:CELL_LIMIT] + f"…[{len(text) - CELL_LIMIT} more characters]"
    return text


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, more: bool = False,
                 budget: int = 12_000) -> str:
    """The rows as `a | b` lines under a header, then the count and any truncation note.

    `more` says the query had rows beyond those given (the row limit cut it).
    """
    header = " | ".join(_cell(c) for c in columns)
    lines = [header]
    used = len(header) + 1
    shown = 0
    for row in rows:
        line = " | ".join(_cell(v) for v in row)
        if used + len(line) + 1 > budget and shown:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    lines.append(_summary(shown, len(rows), more, budget))
    return "\n".join(lines)


def _summary(shown: int, fetched: int, more: bool, budget: int) -> str:
    noun = "row" if fetched == 1 else "rows"
    if shown < fetched:
        rest = f"{fetched}{'+' if more else ''}"
        return (f"({shown} of {rest} rows shown: the rest did not fit in {budget} characters; "
                "select fewer columns, aggregate, or add LIMIT)")
    if more:
        return (f"({fetched} rows shown, and the query has more that were not fetched; "
                "aggregate, filter with WHERE, or add ORDER BY ... LIMIT to get the rows that matter)")
    return f"({fetched} {noun})"
