"""The shared tools: one definition (name, description, JSON Schema, behaviour) wrapped by every agent.

Each tool is a pure function of its arguments over a seeded synthetic world (`world.py`), plus a
simulated latency (`asyncio.sleep`) scaled by `set_latency_scale`. Every call is recorded in the
run that made it (a context variable set by the worker around each run), so a run can be checked
against the calls its task needs. This module imports no agent framework: each worker process
loads only its own.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import hashlib
import operator
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from . import world


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    parameters: dict[str, Any]
    latency: float  # seconds at scale 1
    compute: Callable[..., str]
    # What a model must have been told about an argument to write it right (phrases of its schema);
    # the mock refuses to write an argument whose phrases, or whose enum value, it was not shown.
    must_read: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _string_parameter(name: str, description: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string", "description": description}},
            "required": [name], "additionalProperties": False}


# ---- the computations (pure) --------------------------------------------------------------------

def search(query: str) -> str:
    return world.FACTS.get(query.strip().lower(), "No results for that query.")


def lookup_kv(key: str) -> str:
    return world.READINGS.get(key.strip(), f"No value stored under {key!r}.")


def retrieve(query: str) -> str:
    return world.CORPUS.best(query)


def fetch_doc(doc_id: str) -> str:
    return world.CORPUS.text(doc_id.strip())


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def calculator(expression: str) -> str:
    try:
        value = _evaluate(ast.parse(expression.replace(",", ""), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError) as exc:
        return f"Error: cannot evaluate {expression!r} ({exc or type(exc).__name__})."
    return format_number(value)


def _evaluate(node: ast.AST) -> Fraction:
    """Exact arithmetic over + - * / and parentheses; anything else is refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("only numbers, + - * / and parentheses are allowed")


DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DIRECTIONS = {"up": "towards the mountains", "down": "towards the coast"}


def trains(station: str, date: str, direction: str) -> str:
    """Departures from a station on one day in one direction; a date or direction in any other form is refused."""
    if not DATE.match(date):
        return f"Error: date must be written YYYY-MM-DD, not {date!r}."
    if direction not in DIRECTIONS:
        return f"Error: direction must be one of {sorted(DIRECTIONS)}, not {direction!r}."
    if station.strip() not in world.CITY_NAMES:
        return f"Error: no station named {station!r}."
    digest = hashlib.sha256(f"{station.strip()}|{date}|{direction}".encode()).digest()
    return str(12 + int.from_bytes(digest[:2], "big") % 140)


def format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


TOOLS: list[ToolDef] = [
    ToolDef("search", "Look up one fact in the encyclopedia, for example \"population of Arvenia\" or "
            "\"capital of Arvenia\". Returns the value only.",
            _string_parameter("query", "The fact to look up, as \"<attribute> of <subject>\"."), 0.30, search),
    ToolDef("lookup_kv", "Read the latest value of a sensor from the key-value store.",
            _string_parameter("key", "The sensor key, for example \"sensor-17\"."), 0.005, lookup_kv),
    ToolDef("calculator", "Evaluate an arithmetic expression exactly (+ - * / and parentheses).",
            _string_parameter("expression", "The expression, for example \"(412345 + 12) / 1000\"."), 0.0,
            calculator),
    ToolDef("retrieve", "Search the operations handbook; returns the id of the best matching passage.",
            _string_parameter("query", "Keywords to search for."), 0.05, retrieve),
    ToolDef("fetch_doc", "Read one passage of the operations handbook by its id.",
            _string_parameter("doc_id", "The passage id returned by retrieve, for example \"doc-0042\"."), 0.02,
            fetch_doc),
    # The right date and direction are written only in the parameters' schemas: a model shown the
    # tool's name, description and argument types alone cannot write them.
    ToolDef("trains", "Count the trains leaving a station on one day in one direction.",
            {"type": "object", "properties": {
                "station": {"type": "string", "description": "The town the station is in."},
                "date": {"type": "string", "format": "date", "description": "The day, written YYYY-MM-DD."},
                "direction": {"type": "string", "enum": sorted(DIRECTIONS), "description": "; ".join(
                    f"{name}: trains {meaning}" for name, meaning in sorted(DIRECTIONS.items())) + "."}},
             "required": ["station", "date", "direction"], "additionalProperties": False},
            0.15, trains, must_read={"date": ("YYYY-MM-DD",), "direction": tuple(DIRECTIONS.values())}),
]
BY_NAME = {t.name: t for t in TOOLS}


def compute(name: str, arguments: dict[str, Any]) -> str:
    """What the tool returns for these arguments (used to work out each task's expected results)."""
    return BY_NAME[name].compute(**arguments)


# ---- the async callables the frameworks wrap ----------------------------------------------------

RECORDED: contextvars.ContextVar[list | None] = contextvars.ContextVar("agentbench_calls", default=None)
_state = {"scale": 1.0, "cpu": 0.0}  # latency scale; CPU seconds spent computing results


def set_latency_scale(scale: float) -> None:
    _state["scale"] = scale


def tool_cpu() -> float:
    """CPU seconds the tools themselves used in this process (subtracted from framework CPU)."""
    return _state["cpu"]


def make_callable(definition: ToolDef):
    async def call(**arguments: Any) -> str:
        calls = RECORDED.get()
        if calls is not None:
            calls.append([definition.name, arguments])
        await asyncio.sleep(definition.latency * _state["scale"])
        started = time.thread_time()
        result = definition.compute(**arguments)
        _state["cpu"] += time.thread_time() - started
        return result

    call.__name__ = definition.name
    return call
