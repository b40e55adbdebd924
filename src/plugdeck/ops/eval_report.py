"""The eval report: one self-contained HTML file with a table of the cases and inline SVG charts.

No scripts, no remote resources (a Content-Security-Policy says so), every piece of text escaped:
answers come from a model and may hold markup.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
.figures{display:flex;flex-wrap:wrap;gap:1.5rem}.figures figure{margin:0}
.numbers{display:flex;gap:2rem;flex-wrap:wrap}.numbers div{font-size:1.3rem}.numbers small{display:block;color:#666;font-size:.8rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}tr.failed td:first-child{border-left:4px solid #c62828}
tr.passed td:first-child{border-left:4px solid #2e7d32}.bad{color:#c62828}.good{color:#2e7d32}code{font-size:.85rem}
svg text{font:12px system-ui,sans-serif;fill:#333}svg .axis{stroke:#999}svg .grid{stroke:#eee}
.pass{fill:#2e7d32}.fail{fill:#c62828}.prompt{fill:#1565c0}.completion{fill:#90caf9}.latency{fill:#6a1b9a}.cost{fill:#ef6c00}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
LONG = 300  # characters of an answer shown before it folds


def render_report(document: dict[str, Any]) -> str:
    results = document["results"]
    summary = document["summary"]
    ids = [r["id"] for r in results]
    charts = [
        pass_rate_chart(summary["by_check"]),
        latency_histogram([r["duration"] for r in results]),
        columns_chart("Tokens per case", ids, [("prompt", [r["prompt_tokens"] for r in results], "prompt"),
                                                ("completion", [r["completion_tokens"] for r in results], "completion")],
                      unit="tokens"),
    ]
    if any(r.get("cost") for r in results):
        charts.append(columns_chart("Cost per case", ids, [("cost", [r.get("cost") or 0.0 for r in results], "cost")],
                                    unit="cost"))
    title = f"plugdeck eval: {document.get('cases_file', '')}"
    return "".join([
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _about(document),
        _numbers(summary),
        '<h2>Figures</h2><div class="figures">', "".join(f"<figure>{c}</figure>" for c in charts), "</div>",
        "<h2>Cases</h2>", _table(results), "</body></html>",
    ])


def _about(document: dict[str, Any]) -> str:
    facts = [f"model <b>{escape(str(document['model']))}</b>" if document.get("model") else "",
             f"planner {escape(str(document['planner']))}" if document.get("planner") else "",
             escape(str(document.get("started_at") or "")),
             f"{document['concurrency']} at once" if document.get("concurrency") else "",
             f"{_seconds(document['elapsed'])} in all" if document.get("elapsed") else ""]
    return "<p>" + " · ".join(f for f in facts if f) + "</p>"


def _numbers(summary: dict[str, Any]) -> str:
    items = [
        (f"{summary['pass_rate']:.0%}", f"{summary['passed']} of {summary['cases']} cases passed"),
        (_seconds(summary["duration"]["p50"]), "median time per case"),
        (_seconds(summary["duration"]["p95"]), "95th percentile"),
        (f"{summary['tokens']['total']:,}", "tokens"),
        (f"{summary['cost']:.4f}", "cost (in the model profile's currency)"),
    ]
    shown = "".join(f"<div>{escape(value)}<small>{escape(label)}</small></div>" for value, label in items)
    return f'<div class="numbers">{shown}</div>'


def _table(results: list[dict[str, Any]]) -> str:
    rows = ["<table><thead><tr><th>case</th><th>result</th><th>question</th><th>expected</th><th>answer</th>"
            "<th>checks</th><th>time</th><th>tokens</th><th>cost</th><th>run</th></tr></thead><tbody>"]
    for r in results:
        verdict = '<span class="good">pass</span>' if r["passed"] else '<span class="bad">fail</span>'
        checks = "<br>".join(
            f'<span class="{"good" if c["passed"] else "bad"}">{"✓" if c["passed"] else "✗"} {escape(c["type"])}</span>'
            + ("" if c["passed"] else f": {escape(c['detail'])}") for c in r["checks"])
        answer = r["answer"] if r["answer"] is not None else (r.get("error") or "")
        expected = "" if r.get("expected") is None else str(r["expected"])
        rows.append(
            f'<tr class="{"passed" if r["passed"] else "failed"}"><td>{escape(str(r["id"]))}</td><td>{verdict}</td>'
            f"<td>{escape(r['question'])}</td><td>{escape(expected)}</td><td>{_folded(answer)}</td><td>{checks}</td>"
            f'<td class="n">{_seconds(r["duration"])}</td><td class="n">{r["tokens"]:,}</td>'
            f'<td class="n">{(r.get("cost") or 0):.4f}</td><td><code>{escape(str(r.get("run_id") or ""))}</code></td></tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _folded(text: str) -> str:
    if len(text) <= LONG:
        return escape(text)
    return f"<details><summary>{escape(text[:LONG])}…</summary>{escape(text)}</details>"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


# ---- charts ---------------------------------------------------------------------------------------


def pass_rate_chart(by_check: dict[str, dict[str, Any]]) -> str:
    """Horizontal bars: the share of each kind of check that passed."""
    rows = sorted(by_check.items())
    label_w, bar_w, row_h, top = 90, 320, 26, 30
    height = top + row_h * max(len(rows), 1) + 10
    parts = [_svg_open("Pass rate by check", label_w + bar_w + 140, height)]
    for i, (kind, entry) in enumerate(rows):
        y = top + i * row_h
        passed_w = bar_w * entry["rate"]
        parts += [
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(kind)}</text>',
            f'<rect class="fail" x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" opacity=".25"/>',
            f'<rect class="pass" x="{label_w}" y="{y + 3}" width="{passed_w:.1f}" height="{row_h - 8}"/>',
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}">{entry["rate"]:.0%} ({entry["passed"]}/{entry["total"]})</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def latency_histogram(durations: list[float]) -> str:
    """How many cases took how long, in equal-width bins of milliseconds."""
    values = [d * 1000 for d in durations]
    if not values:
        return columns_chart("Time per case (histogram)", [], [], unit="cases")
    low, high = min(values), max(values)
    bins = min(10, max(1, math.ceil(math.sqrt(len(values)))))
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - low) / width), bins - 1)] += 1
    digits = 0 if width >= 10 else 1 if width >= 1 else 2
    labels = [f"{low + i * width:.{digits}f}–{low + (i + 1) * width:.{digits}f} ms" for i in range(bins)]
    return columns_chart("Time per case (histogram)", labels, [("cases", counts, "latency")], unit="cases")


def columns_chart(title: str, labels: list[str], series: list[tuple[str, list[float], str]], *, unit: str) -> str:
    """Vertical columns, one per label, the series stacked; a y axis with a few gridlines."""
    left, plot_h, bottom = 56, 180, 80
    legend_h = 20 if len(series) > 1 else 0
    top = 44 + legend_h
    column_w = min(48.0, 600 / max(len(labels), 1))  # many cases make thin columns, never a wider chart
    gap = 1.0 if column_w >= 4 else 0.0
    plot_w = max(column_w * len(labels), 200)
    totals = [sum(values[i] for _, values, _ in series) for i in range(len(labels))]
    whole = all(float(v).is_integer() for _, values, _ in series for v in values)
    ceiling = _nice_ceiling(max(totals, default=0), whole)
    parts = [_svg_open(title, left + plot_w + 20, top + plot_h + bottom)]
    x = left
    for name, _, css in series if legend_h else ():
        parts.append(f'<rect class="{css}" x="{x}" y="{26}" width="10" height="10"/>'
                     f'<text x="{x + 14}" y="{35}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    for k in range(5):  # gridlines and y labels
        value = ceiling * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(value)}</text>')
    parts.append(f'<text x="{left - 6}" y="{top - 12}" text-anchor="end">{escape(unit)}</text>')
    every = max(1, math.ceil(len(labels) / 20))  # at most 20 labels under the axis
    for i, label in enumerate(labels):
        x = left + i * column_w
        base = top + plot_h
        for name, values, css in series:
            h = plot_h * values[i] / ceiling
            base -= h
            parts.append(f'<rect class="{css}" x="{x + gap:.2f}" y="{base:.1f}" width="{column_w - 2 * gap:.2f}" '
                         f'height="{h:.1f}">'
                         f"<title>{escape(str(label))}: {_tick(values[i])} {escape(name)}</title></rect>")
        if i % every == 0:
            cx, cy = x + column_w / 2, top + plot_h + 12
            parts.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="end" transform="rotate(-40 {cx:.1f} {cy})">'
                         f"{escape(_short(str(label)))}</text>")
    parts.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(title: str, width: float, height: float) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>')


def _nice_ceiling(value: float, whole: bool = False) -> float:
    """The top of the y axis: 1, 2, 2.5 or 5 × 10^k at or above value, so the four gridlines read well;
    for counts, a multiple of 4, so each gridline is a whole number."""
    if whole:
        return 4 * _nice(max(value / 4, 1.0), (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10), whole=True)
    return _nice(value, (1, 2, 2.5, 5, 10)) if value > 0 else 1.0


def _nice(value: float, steps: tuple[float, ...], whole: bool = False) -> float:
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in steps if step * power >= value and (not whole or float(step * power).is_integer()))


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
