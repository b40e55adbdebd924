"""The calculator against the General Decimal Arithmetic testcases (add, subtract, multiply, divide).

Each case gives two decimal operands, a precision and a rounding mode, and the correctly rounded
result. The engine computes "(a) op (b)" exactly; the test rounds that exact Fraction once, with the
case's precision and rounding, and compares numerically with the expected Decimal. Cases that
need things the engine deliberately lacks (NaN, infinities, subnormals, exponent clamping, numbers
beyond its size limits) are skipped and counted by reason.

The testcases are Mike Cowlishaw's (IBM), version 2.59, https://speleotrove.com/decimal/ ; CPython
ships them in its test package (`Lib/test/decimaltestdata/`). They carry IBM's copyright and no
licence to redistribute, so they are read from the Python installation, not copied here.
"""

import shlex
import sysconfig
from collections import Counter
from dataclasses import dataclass
from decimal import (
    MAX_EMAX, MIN_EMIN, ROUND_05UP, ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_EVEN,
    ROUND_HALF_UP, ROUND_UP, Context, Decimal, InvalidOperation,
)
from fractions import Fraction
from functools import cache
from pathlib import Path

import pytest

from plugdeck.plugins.calculator.arithmetic import MAX_BITS, CalcError, evaluate

DATA = Path(sysconfig.get_paths()["stdlib"]) / "test" / "decimaltestdata"
pytestmark = pytest.mark.skipif(not (DATA / "add.decTest").exists(),
                                reason=f"this Python has no decTest files in {DATA} (CPython's test package)")
OPERATIONS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}
ROUNDINGS = {
    "ceiling": ROUND_CEILING, "down": ROUND_DOWN, "floor": ROUND_FLOOR, "half_down": ROUND_HALF_DOWN,
    "half_even": ROUND_HALF_EVEN, "half_up": ROUND_HALF_UP, "up": ROUND_UP, "05up": ROUND_05UP,
}
# conditions that only arise from a bounded exponent range, which the engine does not have
UNSUPPORTED_CONDITIONS = ("Overflow", "Underflow", "Subnormal", "Clamped")
MAX_EXPONENT = MAX_BITS // 4  # 10**k has about 3.32*k bits; stay clear of the engine's limit


@dataclass(frozen=True)
class Case:
    id: str
    operation: str
    operands: tuple[str, str]
    result: str
    conditions: tuple[str, ...]
    precision: int
    rounding: str


def load(name: str) -> list[Case]:
    """Read a .decTest file, attaching the precision and rounding in force to every case."""
    cases, precision, rounding = [], None, None
    for line in (DATA / f"{name}.decTest").read_text().splitlines():
        line = line.split("--", 1)[0].strip()  # "--" starts a comment
        if not line:
            continue
        if "->" not in line:
            key, _, value = line.partition(":")
            if key.strip().lower() == "precision":
                precision = int(value)
            elif key.strip().lower() == "rounding":
                rounding = value.strip().lower()
            continue
        left, right = line.split("->")
        case_id, operation, *operands = shlex.split(left)
        result, *conditions = shlex.split(right)
        cases.append(Case(case_id, operation, tuple(operands), result, tuple(conditions), precision, rounding))
    return cases


def finite(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:  # "#", the null reference
        return None
    return value if value.is_finite() else None


def round_exactly(value: Fraction, precision: int, rounding: str) -> Decimal:
    """Round an exact rational once, to the case's precision, as the specification requires."""
    context = Context(prec=precision, rounding=ROUNDINGS[rounding], Emax=MAX_EMAX, Emin=MIN_EMIN)
    return context.divide(Decimal(value.numerator), Decimal(value.denominator))  # one correctly rounded step


def skip_reason(case: Case) -> str | None:
    if case.operation not in OPERATIONS:
        return f"operation {case.operation}"
    operands = [finite(text) for text in case.operands]
    if None in operands:
        return "NaN, infinite or null operand"
    if any(value and abs(value.as_tuple().exponent) > MAX_EXPONENT for value in operands):
        return "operand exponent beyond the engine's size limits"
    if case.operation == "divide" and operands[1] == 0:
        return None  # checked below: the engine must report a division by zero
    for condition in UNSUPPORTED_CONDITIONS:
        if condition.lower() in (c.lower() for c in case.conditions):
            return f"condition {condition} (bounded exponent range)"
    if finite(case.result) is None:
        return "NaN or infinite result"
    return None


def run(case: Case) -> str | None:
    """None when the engine agrees with the case, else a description of the disagreement."""
    a, b = case.operands
    expression = f"({a}) {OPERATIONS[case.operation]} ({b})"
    if case.operation == "divide" and Decimal(b) == 0:
        try:
            evaluate(expression)
        except CalcError as err:
            return None if err.kind == "math" and "division by zero" in str(err) else f"{expression}: {err}"
        return f"{expression}: no division-by-zero error"
    try:
        result = evaluate(expression)
    except CalcError as err:
        return f"{expression}: {err}"
    if not result.exact:
        return f"{expression}: inexact result {result.text()}"
    got = round_exactly(result.value, case.precision, case.rounding)
    return None if got == Decimal(case.result) else f"{expression} -> {got}, expected {case.result}"


@cache
def outcome(name: str) -> tuple[int, Counter, list[str]]:
    ran, skipped, failures = 0, Counter(), []
    for case in load(name):
        reason = skip_reason(case)
        if reason:
            skipped[reason] += 1
            continue
        ran += 1
        problem = run(case)
        if problem:
            failures.append(f"{case.id}: {problem}")
    return ran, skipped, failures


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_dectest_file(name):
    ran, skipped, failures = outcome(name)
    print(f"{name}: {ran} cases ran; skipped {sum(skipped.values())}: {dict(skipped)}")
    assert not failures, "\n".join(failures[:20])
    assert ran >= 200


def test_dectest_totals():
    totals = [outcome(name) for name in OPERATIONS]
    ran = sum(t[0] for t in totals)
    skipped = sum((t[1] for t in totals), Counter())
    print(f"decTest: {ran} cases ran; skipped {sum(skipped.values())}: {dict(skipped)}")
    assert ran >= 2500
    assert set(skipped) <= {
        "NaN, infinite or null operand",
        "NaN or infinite result",
        "operation apply",
        "operand exponent beyond the engine's size limits",
        *(f"condition {c} (bounded exponent range)" for c in UNSUPPORTED_CONDITIONS),
    }
