"""The calculator plugin: exact arithmetic for models that should not do sums in their heads."""

from __future__ import annotations

from ... import __version__
from ...tools import ToolError, tool
from ..base import Plugin


@tool(capabilities=("arithmetic",), timeout=5.0)
def calculate(expression: str) -> dict:
    """Evaluate an arithmetic expression exactly (rational arithmetic, no rounding errors).

    Supports + - * / ^ (or **), parentheses, percentages ("17.5% of 2,340", "200 + 15%",
    "15% more than 80", "15% less than 80"), factorial (5!), mod, thousands separators, and the
    functions sqrt, cbrt, root, abs, round, floor, ceil, min, max, exp, ln, log, log2, log10,
    sin, cos, tan, factorial, gcd, lcm; constants pi, e, tau.

    Args:
        expression: The expression to evaluate, for example "17.5% of 2,340 + 12" or "sqrt(2) * 3".
    """
    from .arithmetic import CalcError, evaluate

    try:
        return evaluate(expression).to_dict()
    except CalcError as exc:
        raise ToolError(str(exc), kind=f"calc_{exc.kind}") from None


plugin = Plugin(
    name="calculator",
    version=__version__,
    description="Exact arithmetic: fractions, percentages, powers, roots and common functions, without eval.",
    author="plugdeck",
    tools=[calculate],
)
