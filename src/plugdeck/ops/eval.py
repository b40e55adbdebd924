"""Evaluation: run a set of questions with expected answers, score every answer, compare two evals.

Cases are JSON Lines, one object per line (blank lines are skipped):

    {"id": "percent", "question": "What is 17.5% of 2,340, plus 12?", "expected": 421.5,
     "checks": [{"type": "numeric", "tolerance": 0.01}, {"type": "tool_used", "tool": "calculator.*"}]}

- `id`: a name unique in the file (default: the line number); `question`: what is asked.
- `expected`: the expected answer; checks without a `value` use it. Without `checks`, a number (or
  a string that is one) is checked with `numeric`, any other string with `contains`.
- `status`: the run status the case expects (default "ok"; e.g. "budget" for a budget test).
- `checks`, each `{"type": ...}` with:
  - `exact`: the answer equals `value` (whitespace collapsed; `"ignore_case": true` to ignore case).
  - `contains`: the answer contains `value` (a string, or a list: all of them); case is ignored
    unless `"ignore_case": false`.
  - `numeric`: some number in the answer is within `tolerance` (absolute, default 1e-9) or
    `relative` (a fraction of `value`) of `value`. "2,340" reads as 2340.
  - `tool_used`: a tool matching `tool` (plugin.tool, globs allowed) ran without error; with
    `arguments`, those arguments had exactly those values.
  - `grounded`: the answer rests on what the tools returned: the grounding check passed where one
    ran (knowledge bases), otherwise at least one tool returned a result and every number in the
    answer appears in the question or a tool result.

A case passes when the run ended with the expected status and every check passed.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError

CHECK_TYPES = ("exact", "contains", "numeric", "tool_used", "grounded")
CASE_KEYS = {"id", "question", "expected", "checks", "status"}
CHECK_KEYS = {
    "exact": {"value", "ignore_case"},
    "contains": {"value", "ignore_case"},
    "numeric": {"value", "tolerance", "relative"},
    "tool_used": {"tool", "arguments"},
    "grounded": set(),
}
RESULTS_FILE, REPORT_FILE = "results.json", "report.html"
FORMAT_VERSION = 1


class EvalError(UserError, ValueError):
    """A cases or results file that cannot be used; the message says where and why."""


@dataclass
class Case:
    id: str
    question: str
    expected: Any = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"


@dataclass
class CheckOutcome:
    type: str
    passed: bool
    detail: str


# ---- reading cases --------------------------------------------------------------------------------


def load_cases(path: str | Path) -> list[Case]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvalError(f"no cases file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {exc}") from None
    cases: list[Case] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line is one case "
                            "object") from None
        case = _case(data, where, default_id=str(number))
        if case.id in seen:
            raise EvalError(f"{where}: the id {case.id!r} is used twice; give each case its own id")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise EvalError(f"{path} has no cases: write one JSON object per line, e.g. "
                        '{"id": "pct", "question": "What is 3% of 1,999?", "expected": 59.97}')
    return cases


def _case(data: Any, where: str, default_id: str) -> Case:
    if not isinstance(data, dict):
        raise EvalError(f"{where}: a case is a JSON object, not {type(data).__name__}")
    unknown = set(data) - CASE_KEYS
    if unknown:
        raise EvalError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(CASE_KEYS))}")
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalError(f"{where}: \"question\" must be a non-empty string")
    expected = data.get("expected")
    checks = data.get("checks")
    if checks is None:
        checks = [] if expected is None else [{"type": "numeric" if _number(expected) is not None else "contains"}]
    if not isinstance(checks, list):
        raise EvalError(f"{where}: \"checks\" must be a list of objects like {{\"type\": \"contains\", \"value\": ...}}")
    for index, check in enumerate(checks):
        _validate_check(check, expected, f"{where}, check {index + 1}")
    status = data.get("status", "ok")
    if not isinstance(status, str):
        raise EvalError(f"{where}: \"status\" must be a run status such as \"ok\" or \"budget\"")
    return Case(str(data.get("id", default_id)), question, expected, checks, status)


def _validate_check(check: Any, expected: Any, where: str) -> None:
    if not isinstance(check, dict) or check.get("type") not in CHECK_TYPES:
        got = check.get("type") if isinstance(check, dict) else check
        raise EvalError(f"{where}: unknown check type {got!r} (known: {', '.join(CHECK_TYPES)})")
    kind = check["type"]
    unknown = set(check) - CHECK_KEYS[kind] - {"type"}
    if unknown:
        known = ", ".join(sorted(CHECK_KEYS[kind])) or "no options"
        raise EvalError(f"{where}: {kind} does not take {', '.join(sorted(unknown))} (it takes {known})")
    value = check.get("value", expected)
    if kind in ("exact", "contains") and not _texts(value):
        raise EvalError(f"{where}: {kind} needs a \"value\" (or the case's \"expected\") that is text")
    if kind == "numeric":
        if _number(value) is None:
            raise EvalError(f"{where}: numeric needs a number as \"value\" (or the case's \"expected\"), not {value!r}")
        for key in ("tolerance", "relative"):
            if key in check and (_number(check[key]) is None or _number(check[key]) < 0):
                raise EvalError(f"{where}: numeric {key} must be a number ≥ 0")
    if kind == "tool_used":
        if not isinstance(check.get("tool"), str):
            raise EvalError(f"{where}: tool_used needs \"tool\": the tool as plugin.tool (globs allowed)")
        if "arguments" in check and not isinstance(check["arguments"], dict):
            raise EvalError(f"{where}: tool_used \"arguments\" must be an object")


# ---- scoring --------------------------------------------------------------------------------------


def score(case: Case, answer: str | None, status: str, events: list[dict[str, Any]]) -> list[CheckOutcome]:
    """Every check of the case against one run (its answer, status and events as dicts)."""
    answer = answer or ""
    ended = f"the run ended with status {status}" + ("" if status == case.status else f", not {case.status}")
    outcomes = [CheckOutcome("status", status == case.status, ended)]
    for check in case.checks:
        value = check.get("value", case.expected)
        kind = check["type"]
        if kind == "exact":
            outcomes.append(_exact(answer, value, check.get("ignore_case", False)))
        elif kind == "contains":
            outcomes.append(_contains(answer, value, check.get("ignore_case", True)))
        elif kind == "numeric":
            outcomes.append(_numeric(answer, _number(value), _number(check.get("tolerance", 0)) or 0.0,
                                     _number(check.get("relative", 0)) or 0.0))
        elif kind == "tool_used":
            outcomes.append(_tool_used(events, check["tool"], check.get("arguments")))
        else:
            outcomes.append(_grounded(answer, events, case.question))
    return outcomes


def _exact(answer: str, value: Any, ignore_case: bool) -> CheckOutcome:
    def norm(text: str) -> str:
        text = " ".join(str(text).split())
        return text.lower() if ignore_case else text

    ok = norm(answer) == norm(value)
    return CheckOutcome("exact", ok, "the answer is exactly the expected text" if ok else f"expected exactly {value!r}")


def _contains(answer: str, value: Any, ignore_case: bool) -> CheckOutcome:
    haystack = answer.lower() if ignore_case else answer
    missing = [v for v in _texts(value) if (v.lower() if ignore_case else v) not in haystack]
    if missing:
        return CheckOutcome("contains", False, "the answer lacks " + ", ".join(repr(m) for m in missing))
    return CheckOutcome("contains", True, "the answer contains " + ", ".join(repr(v) for v in _texts(value)))


def _numeric(answer: str, value: float, tolerance: float, relative: float) -> CheckOutcome:
    from ..policy.numbers import numbers_in

    allowed = max(tolerance, relative * abs(value), 1e-9)
    found = [float(number) for _, number in numbers_in(answer)]
    if any(abs(n - value) <= allowed for n in found):
        return CheckOutcome("numeric", True, f"found {_show(value)} (± {_show(allowed)})")
    seen = ", ".join(_show(n) for n in found[:6]) if found else "no number"
    return CheckOutcome("numeric", False, f"expected {_show(value)} ± {_show(allowed)}; the answer has {seen}")


def _tool_used(events: list[dict[str, Any]], pattern: str, arguments: dict[str, Any] | None) -> CheckOutcome:
    finished = [e for e in events if e.get("type") == "tool_finished"]
    matching = [e for e in finished if fnmatchcase(str(e.get("tool", "")), pattern) and not e.get("error")]
    if arguments:
        matching = [e for e in matching if isinstance(e.get("arguments"), dict)
                    and all(e["arguments"].get(k) == v for k, v in arguments.items())]
    if matching:
        return CheckOutcome("tool_used", True, f"{matching[0]['tool']} ran {len(matching)} time(s)")
    called = ", ".join(sorted({f"{e.get('tool')}" + (" (failed)" if e.get("error") else "") for e in finished}))
    wanted = pattern + (f" with {json.dumps(arguments)}" if arguments else "")
    return CheckOutcome("tool_used", False, f"{wanted} did not run successfully; tools run: {called or 'none'}")


def _grounded(answer: str, events: list[dict[str, Any]], question: str) -> CheckOutcome:
    from ..policy.numbers import numbers_in

    grounding = [e for e in events if e.get("type") == "answer_checked" and e.get("check") == "grounding"]
    if grounding:
        ok = all(e.get("passed") for e in grounding)
        return CheckOutcome("grounded", ok, "the grounding check passed" if ok else
                            "the grounding check found sentences the passages do not support")
    results = [e for e in events if e.get("type") == "tool_finished" and not e.get("error")]
    if not results:
        return CheckOutcome("grounded", False, "no tool returned a result, so the answer rests on nothing retrieved")
    sources = [question] + [json.dumps(e.get("result"), ensure_ascii=False, default=str) for e in results]
    known = {abs(v) for text in sources for _, v in numbers_in(text)}
    untraced = [raw for raw, v in numbers_in(answer) if abs(v) not in known]
    if untraced:
        return CheckOutcome("grounded", False, f"numbers in the answer that no tool returned: {', '.join(untraced)}")
    return CheckOutcome("grounded", True, f"every number in the answer comes from {len(results)} tool result(s)")


# ---- running --------------------------------------------------------------------------------------


async def evaluate(agent, cases: list[Case], *, concurrency: int = 8,
                   on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the cases on the agent, at most `concurrency` at once; results in the cases' order."""
    if concurrency < 1:
        raise EvalError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case) -> dict[str, Any]:
        async with gate:
            result = await run_case(agent, case)
        if on_result:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(case) for case in cases)))


async def run_case(agent, case: Case) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        run = await agent.run(case.question)
    except Exception as exc:  # a bug should cost one case, not the whole eval
        events: list[dict[str, Any]] = []
        answer, status, error, run_id = None, "error", f"internal error: {type(exc).__name__}: {exc}", None
        prompt = completion = 0
        cost = 0.0
    else:
        events = [e.to_dict() for e in run.events]
        answer, status, error, run_id = run.answer, run.status, run.error, run.id
        prompt, completion, cost = run.usage.prompt_tokens, run.usage.completion_tokens, run.usage.cost
    duration = time.perf_counter() - started
    outcomes = score(case, answer, status, events)
    return {
        "id": case.id, "question": case.question, "expected": case.expected,
        "passed": all(o.passed for o in outcomes), "status": status, "answer": answer, "error": error,
        "checks": [asdict(o) for o in outcomes],
        "duration": round(duration, 6), "prompt_tokens": prompt, "completion_tokens": completion,
        "tokens": prompt + completion, "cost": cost,
        "tool_calls": [{"tool": e.get("tool"), "arguments": e.get("arguments"), "error": e.get("error")}
                       for e in events if e.get("type") == "tool_finished"],
        "run_id": run_id,
    }


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_check: dict[str, dict[str, Any]] = {}
    for result in results:
        for check in result["checks"]:
            entry = by_check.setdefault(check["type"], {"passed": 0, "total": 0})
            entry["total"] += 1
            entry["passed"] += bool(check["passed"])
    for entry in by_check.values():
        entry["rate"] = entry["passed"] / entry["total"]
    durations = sorted(r["duration"] for r in results)
    passed = sum(r["passed"] for r in results)
    return {
        "cases": len(results), "passed": passed, "failed": len(results) - passed,
        "pass_rate": passed / len(results) if results else 0.0,
        "by_check": by_check,
        "statuses": {s: sum(r["status"] == s for r in results) for s in sorted({r["status"] for r in results})},
        "duration": {"mean": statistics.fmean(durations) if durations else 0.0, "p50": _percentile(durations, 50),
                     "p95": _percentile(durations, 95), "max": durations[-1] if durations else 0.0},
        "tokens": {"prompt": sum(r["prompt_tokens"] for r in results),
                   "completion": sum(r["completion_tokens"] for r in results),
                   "total": sum(r["tokens"] for r in results)},
        "cost": sum(r["cost"] for r in results),
    }


def write_results(out_dir: str | Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Write results.json and report.html into out_dir; return the whole results document."""
    from .eval_report import render_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {"plugdeck_eval": FORMAT_VERSION, **meta, "summary": summarize(results), "results": results}
    (out / RESULTS_FILE).write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    (out / REPORT_FILE).write_text(render_report(document), encoding="utf-8")
    return document


def run_meta(cases_file: str | Path, agent, concurrency: int, started: float) -> dict[str, Any]:
    return {
        "cases_file": str(cases_file),
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "elapsed": round(time.time() - started, 3),
        "model": agent.model.name, "planner": agent.planner, "concurrency": concurrency,
        "tools": [t.qualified_name for t in agent.tools],
    }


# ---- comparing ------------------------------------------------------------------------------------


def load_results(path: str | Path) -> dict[str, Any]:
    """An eval's results: its folder or its results.json."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"no eval results at {file} (give an eval's output folder or its {RESULTS_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalError(f"cannot read {file}: {exc}") from None
    if not isinstance(document, dict) or "plugdeck_eval" not in document or not isinstance(document.get("results"), list):
        raise EvalError(f"{file} is not a plugdeck eval results file")
    return document


@dataclass
class Comparison:
    before: dict[str, Any]  # summaries
    after: dict[str, Any]
    regressions: list[dict[str, Any]]  # passed before, failed after
    fixes: list[dict[str, Any]]  # failed before, passed after
    only_before: list[str]
    only_after: list[str]
    changes: list[dict[str, Any]]  # cases whose tokens changed or whose time changed markedly

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# A case's time counts as changed at 1.5x (or 1/1.5x) and 50 ms apart: less is noise.
TIME_RATIO, TIME_FLOOR = 1.5, 0.05


def compare(before: dict[str, Any], after: dict[str, Any]) -> Comparison:
    a = {r["id"]: r for r in before["results"]}
    b = {r["id"]: r for r in after["results"]}
    regressions, fixes, changes = [], [], []
    for case_id in (i for i in a if i in b):
        old, new = a[case_id], b[case_id]
        entry = {"id": case_id, "question": new["question"], "answer_before": old["answer"], "answer_after": new["answer"],
                 "failed_checks": [c for c in new["checks"] if not c["passed"]]}
        if old["passed"] and not new["passed"]:
            regressions.append(entry)
        elif new["passed"] and not old["passed"]:
            fixes.append({**entry, "failed_checks": [c for c in old["checks"] if not c["passed"]]})
        slower = new["duration"] / old["duration"] if old["duration"] else math.inf
        time_changed = abs(new["duration"] - old["duration"]) >= TIME_FLOOR and not 1 / TIME_RATIO < slower < TIME_RATIO
        if new["tokens"] != old["tokens"] or time_changed:
            changes.append({"id": case_id, "duration_before": old["duration"], "duration_after": new["duration"],
                            "tokens_before": old["tokens"], "tokens_after": new["tokens"],
                            "cost_before": old.get("cost", 0.0), "cost_after": new.get("cost", 0.0)})
    return Comparison(
        before=summarize(before["results"]), after=summarize(after["results"]),
        regressions=regressions, fixes=fixes,
        only_before=[i for i in a if i not in b], only_after=[i for i in b if i not in a], changes=changes,
    )


# ---- small things ---------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
        return float(number) if number.is_finite() else None
    return None


def _texts(value: Any) -> list[str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [_show(value)]
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return []


def _show(number: float) -> str:
    return f"{number:.10g}"


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * percent / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
