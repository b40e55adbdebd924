"""A tool-calling conformance set for `plugdeck models probe`: how well a model calls tools.

The cases are a small sample of BFCL v3 (conformance_set.json: simple, multiple, parallel,
irrelevance). Each case offers its functions, asks its question once, and is scored the way BFCL's
AST checker does in spirit: the right functions (any order for parallel calls), every required
argument, no unknown argument, each value among the accepted ones (strings compared without case,
spaces or punctuation; numbers by value); for irrelevance, no call at all. Scores, the format the
calls came in, parse failures and latency make the report; `recommend` turns it into profile settings.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tools import Toolset, tool_from_schema
from .base import Model, ModelError, ModelResponse

CATEGORIES = ("simple", "multiple", "parallel", "irrelevance")
SET_FILE = Path(__file__).with_name("conformance_set.json")


@dataclass
class Case:
    id: str
    category: str
    question: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    answer: list[dict[str, dict[str, list[Any]]]]  # [{function: {argument: [accepted values]}}]

    def toolset(self) -> Toolset:
        return Toolset([tool_from_schema(f["name"], f.get("description", ""), f.get("parameters"), lambda **kw: kw)
                        for f in self.functions])


@dataclass
class Outcome:
    case: Case
    passed: bool
    reason: str = ""
    tool_format: str | None = None
    parse_failures: int = 0
    latency: float = 0.0


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def accuracy(self) -> dict[str, float]:
        scores = {}
        for category in CATEGORIES:
            mine = [o for o in self.outcomes if o.case.category == category]
            if mine:
                scores[category] = sum(o.passed for o in mine) / len(mine)
        return scores

    def formats(self) -> dict[str, int]:
        return dict(Counter(o.tool_format for o in self.outcomes if o.tool_format))

    def parse_failures(self) -> int:
        return sum(o.parse_failures for o in self.outcomes)

    def errors(self) -> list[str]:
        return [f"{o.case.id}: {o.reason}" for o in self.outcomes if o.reason.startswith("the model failed")]

    def latency(self) -> dict[str, float]:
        times = sorted(o.latency for o in self.outcomes)
        if not times:
            return {}
        return {"p50": times[len(times) // 2], "max": times[-1], "mean": sum(times) / len(times)}

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy(), "formats": self.formats(), "parse_failures": self.parse_failures(),
                "latency": self.latency(), "cases": len(self.outcomes), "errors": self.errors(),
                "failed": {o.case.id: o.reason for o in self.outcomes if not o.passed}}


def load_cases(per_category: int = 5, categories: tuple[str, ...] = CATEGORIES) -> list[Case]:
    data = json.loads(SET_FILE.read_text())
    cases, taken = [], Counter()
    for raw in data["cases"]:
        if raw["category"] in categories and taken[raw["category"]] < per_category:
            taken[raw["category"]] += 1
            cases.append(Case(raw["id"], raw["category"], raw["question"], raw["functions"], raw["answer"]))
    return cases


async def run_cases(model: Model, cases: list[Case]) -> Report:
    """Ask each case once, one after another (latency is per case, not contended by the others)."""
    report = Report()
    for case in cases:
        toolset = case.toolset()
        started = time.perf_counter()
        try:
            response = await _answer(model, case, toolset)
        except ModelError as exc:
            report.outcomes.append(Outcome(case, False, f"the model failed: {exc}", latency=time.perf_counter() - started))
            continue
        elapsed = time.perf_counter() - started
        failures = len(response.tool_parse_errors) + sum(1 for c in response.tool_calls if c.error)
        passed, reason = score(case, response, toolset)
        report.outcomes.append(Outcome(case, passed, reason, response.tool_format, failures, elapsed))
    return report


async def _answer(model: Model, case: Case, toolset: Toolset) -> ModelResponse:
    response = None
    async for item in model.stream(list(case.question), toolset.specs):
        if isinstance(item, ModelResponse):
            response = item
    if response is None:
        raise ModelError("the model's stream ended without a response")
    return response


def score(case: Case, response: ModelResponse, toolset: Toolset) -> tuple[bool, str]:
    calls = response.tool_calls
    if case.category == "irrelevance":
        return (not calls, "" if not calls else f"called {calls[0].name} though no offered function fits")
    if not calls:
        return False, "no tool call"
    if len(calls) != len(case.answer):
        return False, f"{len(calls)} calls, expected {len(case.answer)}"
    wanted = list(case.answer)
    for call in calls:
        if call.error:
            return False, f"a call could not be read: {call.error}"
        target = toolset.resolve(call.name)
        name = target.name if target else call.name
        match = next((i for i, w in enumerate(wanted) if name in w and _arguments_fit(call.arguments or {}, w[name])), None)
        if match is None:
            return False, f"{name}({json.dumps(call.arguments)}) matches no expected call"
        wanted.pop(match)
    return True, ""


def _arguments_fit(given: dict[str, Any], accepted: dict[str, list[Any]]) -> bool:
    if set(given) - set(accepted):
        return False
    for key, options in accepted.items():
        if key not in given:
            if "" not in options:  # BFCL marks an optional argument with "" among the accepted values
                return False
            continue
        if not any(_same(given[key], option) for option in options if option != ""):
            return False
    return True


def _same(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, (int, float)) and isinstance(value, (int, float)):
        return float(value) == float(expected)
    if isinstance(expected, str) and isinstance(value, str):
        return _norm(value) == _norm(expected)
    if isinstance(expected, list) and isinstance(value, list):
        return len(value) == len(expected) and all(_same(v, e) for v, e in zip(value, expected))
    if isinstance(expected, dict) and isinstance(value, dict):  # nested: each key lists accepted values
        return _arguments_fit(value, {k: v if isinstance(v, list) else [v] for k, v in expected.items()})
    return value == expected


def _norm(text: str) -> str:
    return re.sub(r"[\s,./\-_*^]", "", text).lower()


def recommend(report: Report, *, local: bool = False) -> dict[str, Any]:
    """Profile settings the results call for, each with why."""
    formats = report.formats()
    settings: dict[str, Any] = {}
    reasons: list[str] = []
    text_formats = {f: n for f, n in formats.items() if f not in ("native", "prompted")}
    if local:
        settings["constrain"] = True
        reasons.append("in process, tool calls can be generated under a grammar from the tools' schemas")
    elif text_formats and "native" not in formats:
        fmt = max(text_formats, key=text_formats.get)
        settings["tool_format"] = fmt
        reasons.append(f"the server never returned native tool_calls; the model wrote them as {fmt} text "
                       "(enable the server's tool parser, or keep this setting)")
    elif "native" in formats:
        settings["tool_format"] = "auto"
        reasons.append("the server returns native tool_calls" + (
            f", though some came as text ({', '.join(text_formats)})" if text_formats else ""))
    elif report.errors() and all("tools" in e or "400" in e for e in report.errors()):
        settings["tool_format"] = "prompted"
        reasons.append("the server refused requests with tools: describe them in the prompt")
    accuracy = report.accuracy()
    if accuracy.get("irrelevance", 1.0) < 0.6:
        reasons.append("the model calls tools where none fits: keep tool_choice at auto and consider a stronger model")
    if report.parse_failures():
        reasons.append(f"{report.parse_failures()} tool calls could not be read; the model was told each time")
    return {"settings": settings, "reasons": reasons}
