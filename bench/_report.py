"""Shared output for benchmarks: a JSON document on stdout's last line and a readable table."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path


def environment() -> dict:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform()}


def report(name: str, rows: list[dict], columns: list[str], extra: dict | None = None) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print(f"\n{name}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))
    document = {"benchmark": name, "environment": environment(), "results": rows, **(extra or {})}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=2))
    print(json.dumps(document), file=sys.stdout)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
