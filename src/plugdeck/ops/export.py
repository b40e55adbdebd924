"""`plugdeck runs export`: stored runs as fine-tuning data (formats in export_formats.py).

Runs are chosen by status (default: ok), start date, tag and eval score; every record is
redacted (the platform's secrets and key shapes, as redaction.py knows them, plus PII patterns:
email addresses and phone numbers by default, more from `[export] redact = ["regex", ...]` in
plugdeck.toml) and checked against its format before anything is written: a bad record stops the
export with a list of what is wrong where, unless `skip_invalid` leaves such runs out.

Eval scores are not kept in the run store: `plugdeck eval` writes them to its results.json, with
each case's run id. A run's score is the share of its case's checks that passed (the status check
included); `min_score` keeps runs scored at least that in the given results.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import UserError
from ..redaction import MARK, redact_value
from .export_formats import FORMATS, conversation, record_and_problems

PII = {  # what `[export] pii` may name; all are on unless it names fewer
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # Written as phone numbers are (a leading +, or groups apart), so that plain numbers, dates, versions
    # and addresses stay; groups of digits apart ("12 345 678") are taken for a phone number too.
    "phone": r"(?<![\w+.-])(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?)(?:[ .-]?\d{1,8}){1,5}"
             r"|(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{2,4}[ .-]\d{3,4})(?!\w|[.-]\d)",
}
EXPORT_KEYS = {"redact", "pii"}
ALL_RUNS = 10_000_000  # list_runs needs a limit


class ExportError(UserError, ValueError):
    """The export cannot be made as asked; the message says which run or setting and why."""


@dataclass
class Selection:
    status: str | None = "ok"  # None: every status
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    tag: str | None = None
    min_score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)  # run id -> eval score

    def keeps(self, run: dict[str, Any], tags: Callable[[str], list[str]]) -> bool:
        if self.status and run["status"] != self.status:
            return False
        if self.since is not None and run["started_at"] < self.since:
            return False
        if self.until is not None and run["started_at"] >= self.until:
            return False
        if self.min_score is not None and self.scores.get(run["id"], -1.0) < self.min_score:
            return False
        return self.tag is None or self.tag in tags(run["id"])


@dataclass
class Report:
    written: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # run id -> why it was left out
    out: str = ""


# ---- settings and filters ----------------------------------------------------------------------


def redactor(patterns: Iterable[str] = (), pii: Iterable[str] = tuple(PII)) -> Callable[[Any], Any]:
    """A function that redacts a record: registered secrets and key shapes, then the PII patterns."""
    compiled = []
    for name in pii:
        if name not in PII:
            raise ExportError(f"[export] pii knows {', '.join(PII)}, not {name!r}")
        compiled.append(re.compile(PII[name]))
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ExportError(f"[export] redact: {pattern!r} is not a regular expression: {exc}") from None

    def text(value: str) -> str:
        for regex in compiled:
            value = regex.sub(MARK, value)
        return value

    def scrub(value: Any, key: str = "") -> Any:
        if isinstance(value, str):
            parsed = _json_object(value) if key == "arguments" else None
            if parsed is not None:  # a call's arguments: redacted inside, so they stay JSON
                return json.dumps(scrub(parsed), ensure_ascii=False)
            return text(value)
        if isinstance(value, dict):
            return {k: scrub(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return lambda value: scrub(redact_value(value))


def settings(tables: list[tuple[Path, Any]]) -> dict[str, list[str]]:
    """`[export]` of the configuration files (config.config_tables("export")), checked."""
    found: dict[str, list[str]] = {"redact": [], "pii": list(PII)}
    for path, table in tables:
        if not isinstance(table, dict) or set(table) - EXPORT_KEYS:
            raise ExportError(f"{path}: [export] knows {', '.join(sorted(EXPORT_KEYS))}")
        for key in EXPORT_KEYS & set(table):
            value = table[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ExportError(f"{path}: [export] {key} must be a list of strings")
            found[key] = found["redact"] + value if key == "redact" else value
    return found


def parse_day(text: str, *, end: bool = False) -> float:
    """YYYY-MM-DD (UTC; with `end`, the day's end) or an ISO date-time, as epoch seconds."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError:
        raise ExportError(f"{text!r} is not a date: write it as 2026-03-01 or 2026-03-01T14:00") from None
    return moment.timestamp()


def eval_scores(paths: Iterable[str | Path]) -> dict[str, float]:
    """Run id -> score from `plugdeck eval` results (folders or results.json files)."""
    from .eval import EvalError, load_results

    scores: dict[str, float] = {}
    for path in paths:
        try:
            document = load_results(path)
        except EvalError as exc:
            raise ExportError(str(exc)) from None
        for result in document["results"]:
            if result.get("run_id"):
                scores[result["run_id"]] = case_score(result)
    return scores


def case_score(result: dict[str, Any]) -> float:
    """The share of the case's checks that passed; the run's status is one of them (ops/eval.py)."""
    checks = result.get("checks") or []
    if not checks:
        return float(bool(result.get("passed")))
    return sum(bool(c.get("passed")) for c in checks) / len(checks)


# ---- exporting ---------------------------------------------------------------------------------


def build_records(store, fmt: str, selection: Selection, scrub: Callable[[Any], Any], *,
                  skip_invalid: bool = False) -> tuple[list[dict[str, Any]], Report]:
    """The chosen runs as checked records of `fmt`, oldest first; ExportError lists bad records."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    report, records, bad = Report(), [], []
    runs = [r for r in store.list_runs(ALL_RUNS, selection.status) if selection.keeps(r, store.tags)]
    for summary in sorted(runs, key=lambda r: (r["started_at"], r["id"])):
        convo = conversation(store.get_run(summary["id"]))
        if convo is None:
            report.skipped[summary["id"]] = "no model call of it was answered"
            continue
        record, problems = record_and_problems(fmt, scrub(convo))
        if problems:
            bad.append((summary["id"], problems))
            report.skipped[summary["id"]] = "; ".join(problems)
            continue
        records.append({"run_id": summary["id"], "record": record, "run": summary})
    if bad and not skip_invalid:
        listed = "\n".join(f"  run {run_id}: {'; '.join(problems)}" for run_id, problems in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise ExportError(f"{len(bad)} run(s) would not make valid {fmt} records, so nothing was written:\n"
                          f"{listed}{more}\n(--skip-invalid leaves them out)")
    return records, report


def write(records: list[dict[str, Any]], fmt: str, out: str | None, selection: Selection) -> str:
    """Write the records; return where they went ("-": standard output)."""
    if fmt == "hf":
        if not out:
            raise ExportError("--format hf writes a dataset folder (or a .parquet file): give --out PATH")
        return _write_dataset(records, out, selection)
    lines = [json.dumps(r["record"], ensure_ascii=False) for r in records]
    if not out or out == "-":
        import sys

        sys.stdout.write("".join(line + "\n" for line in lines))
        return "-"
    path = Path(out)
    if path.is_dir():
        raise ExportError(f"{path} is a folder: give the JSONL file to write")
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed: never half a file
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    partial.replace(path)
    return str(path)


def _write_dataset(records: list[dict[str, Any]], out: str, selection: Selection) -> str:
    """A Hugging Face dataset of openai records: messages as rows of fixed columns, tools as JSON text
    (each tool's schema has its own shape, which one Arrow column cannot hold)."""
    from ..extras import require

    require("tune", "plugdeck runs export --format hf")
    import datasets

    call = {"id": datasets.Value("string"), "type": datasets.Value("string"),
            "function": {"name": datasets.Value("string"), "arguments": datasets.Value("string")}}
    message = {"role": datasets.Value("string"), "content": datasets.Value("string"),
               "tool_calls": datasets.List(call), "tool_call_id": datasets.Value("string")}
    features = datasets.Features({
        "run_id": datasets.Value("string"), "model": datasets.Value("string"),
        "started_at": datasets.Value("float64"), "score": datasets.Value("float64"),
        "messages": datasets.List(message), "tools": datasets.Value("string"),
        "parallel_tool_calls": datasets.Value("bool"),
    })
    rows = [{
        "run_id": r["run_id"], "model": r["run"]["model"], "started_at": r["run"]["started_at"],
        "score": selection.scores.get(r["run_id"]),
        "messages": [{"role": m["role"], "content": _flat(m.get("content")),
                      "tool_calls": m.get("tool_calls"), "tool_call_id": m.get("tool_call_id")}
                     for m in r["record"]["messages"]],
        "tools": json.dumps(r["record"].get("tools") or [], ensure_ascii=False),
        "parallel_tool_calls": bool(r["record"].get("parallel_tool_calls")),
    } for r in records]
    dataset = datasets.Dataset.from_list(rows, features=features)
    if out.endswith(".parquet"):
        dataset.to_parquet(out)
    else:
        dataset.save_to_disk(out)
    return out


def _flat(content: Any) -> str | None:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
