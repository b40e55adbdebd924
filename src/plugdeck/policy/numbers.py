"""The number check: every number in an answer must come from the person's message or a tool result.

A calculator result is a tool result, so numbers computed from the data pass too. Citation marks
like [2] and list markers like "1." are not claims and are skipped. Untraceable numbers are
flagged in the answer, or the answer is refused, as the policy says.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ..checks import CheckResult
from ..events import ToolFinished

NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,]*\d)|(?<![\w.,])[-−]?\d+(?:\.\d+)?(?![\w.]*\d)")
CITATION = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)]\s")
FLAG = " [unverified]"


def numbers_in(text: str) -> list[tuple[str, Decimal]]:
    text = LIST_MARKER.sub(" ", CITATION.sub(" ", text))  # not claims
    found = []
    for match in NUMBER.finditer(text):
        raw = match.group(0)
        try:
            found.append((raw, Decimal(raw.replace(",", "").replace("−", "-")).normalize()))
        except InvalidOperation:
            continue
    return found


class NumberCheck:
    name = "numbers"

    def __init__(self, mode: str = "flag"):
        self.mode = mode  # flag | refuse

    async def check(self, answer: str, run: Any) -> CheckResult:  # a Run (policy does not import the agent)
        sources = [m.get("content") or "" for m in run.messages if m.get("role") == "user"] or [run.question]
        sources += [json.dumps(e.result, ensure_ascii=False, default=str) for e in run.events
                    if isinstance(e, ToolFinished) and e.error is None]
        known = {abs(value) for text in sources for _, value in numbers_in(text)}
        untraced = [raw for raw, value in numbers_in(answer) if abs(value) not in known]
        if not untraced:
            return CheckResult(True, answer, {"untraced": []})
        details = {"untraced": untraced, "mode": self.mode}
        if self.mode == "refuse":
            listed = ", ".join(dict.fromkeys(untraced))
            return CheckResult(False, f"I can't give this answer: it contains numbers ({listed}) that neither your "
                                      "message nor any tool result supports.", details)
        return CheckResult(False, _flag(answer, set(untraced)), details)


def _flag(answer: str, untraced: set[str]) -> str:
    blank = lambda m: " " * len(m.group(0))  # noqa: E731 - keep offsets, hide what is not a claim
    protected = LIST_MARKER.sub(blank, CITATION.sub(blank, answer))
    pieces, last = [], 0
    for match in NUMBER.finditer(protected):
        if match.group(0) in untraced:
            end = match.end() + (answer[match.end():match.end() + 1] == "%")  # flag "12%" as a whole
            pieces += [answer[last:end], FLAG]
            last = end
    return "".join(pieces) + answer[last:]
