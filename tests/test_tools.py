"""@tool: schemas from type hints and docstrings, strict validation, wire names."""

import asyncio
import re
from datetime import date
from typing import Literal

import jsonschema
import pytest

from plugdeck.tools import (WIRE_NAME, RunContext, Tool, ToolError, Toolset, parse_docstring, to_wire_name, tool,
                            tool_from_schema)
from plugdeck.usage import Usage


@tool
def book_table(restaurant: str, people: int, day: date, seating: Literal["inside", "outside"] = "inside",
               notes: str | None = None) -> str:
    """Book a table at a restaurant.

    Checks availability first.

    Args:
        restaurant: The restaurant's name.
        people: How many guests, including the person booking.
            Must be at least one.
        day: The day of the booking.
        seating: Where to sit.
    """
    return f"{restaurant}:{people}:{day.isoformat()}:{seating}"


def test_schema_comes_from_hints_and_docstring():
    schema = book_table.parameters
    jsonschema.Draft202012Validator.check_schema(schema)
    assert book_table.description == "Book a table at a restaurant. Checks availability first."
    assert schema["required"] == ["restaurant", "people", "day"]
    props = schema["properties"]
    assert props["people"] == {"type": "integer", "description": "How many guests, including the person booking. Must be at least one."}
    assert props["day"]["format"] == "date"
    assert props["seating"]["enum"] == ["inside", "outside"]
    assert props["seating"]["default"] == "inside"
    assert "title" not in props["restaurant"]
    assert book_table.effect == "read" and book_table.timeout == 30.0


@pytest.mark.parametrize("bad, fragment", [
    ({"restaurant": "Luigi", "people": False, "day": "2026-12-01"}, "people"),  # no false -> 0
    ({"restaurant": "Luigi", "people": "2", "day": "2026-12-01"}, "people"),  # no "2" -> 2
    ({"restaurant": "Luigi", "people": 2.5, "day": "2026-12-01"}, "people"),
    ({"restaurant": "Luigi", "people": 2, "day": "tomorrow"}, "day"),
    ({"restaurant": "Luigi", "people": 2, "day": "2026-12-01", "seating": "roof"}, "seating"),
    ({"restaurant": "Luigi", "people": 2, "day": "2026-12-01", "extra": 1}, "extra"),
    ({"people": 2, "day": "2026-12-01"}, "restaurant"),
])
def test_validation_is_strict(bad, fragment):
    with pytest.raises(ToolError) as info:
        book_table.validate(bad)
    assert info.value.kind == "invalid_arguments"
    assert fragment in info.value.message


def test_valid_call_converts_types():
    result = asyncio.run(book_table.call({"restaurant": "Luigi", "people": 2, "day": "2026-12-01"}))
    assert result == "Luigi:2:2026-12-01:inside"


def test_async_tools_and_write_effect():
    @tool(effect="write", timeout=2)
    async def send(to: str) -> dict:
        """Send a message."""
        return {"sent": to}

    assert send.is_async and send.effect == "write" and send.timeout == 2
    assert asyncio.run(send.call({"to": "x"})) == {"sent": "x"}


def test_bad_effect_is_refused():
    with pytest.raises(ValueError):
        tool(effect="delete")(lambda: None)


def test_docstring_styles():
    summary, args = parse_docstring("""Do a thing.

    :param alpha: the first one
    :param int beta: the second
    :returns: nothing
    """)
    assert summary == "Do a thing." and args == {"alpha": "the first one", "beta": "the second"}
    summary, args = parse_docstring("""Numpy style.

    Parameters
    ----------
    x : int
        The x value,
        on two lines.
    y : str
        The y.

    Returns
    -------
    int
    """)
    assert summary == "Numpy style." and args == {"x": "The x value, on two lines.", "y": "The y."}


def test_schema_tools_validate_with_json_schema():
    t = tool_from_schema("math.hypot", "Hypotenuse", {"type": "dict", "properties": {
        "x": {"type": "integer"}, "y": {"type": "float"}}, "required": ["x", "y"]}, lambda **kw: kw)
    assert t.parameters["type"] == "object" and t.parameters["properties"]["y"]["type"] == "number"
    assert t.validate({"x": 3, "y": 4.5}) == {"x": 3, "y": 4.5}
    with pytest.raises(ToolError, match="x: True is not of type 'integer'"):
        t.validate({"x": True, "y": 1})
    with pytest.raises(ToolError, match="'y' is a required property"):
        t.validate({"x": 1})


@pytest.mark.parametrize("name", ["math.factorial", "get weather", "a" * 100, "ünïcode.tool", "", "ok_name-1"])
def test_wire_names_are_valid(name):
    assert WIRE_NAME.match(to_wire_name(name))


def test_toolset_maps_names_reversibly():
    def make(name, plugin):
        return Tool(name, "", {"type": "object", "properties": {}}, lambda: None, plugin=plugin)

    tools = [make("search", "web"), make("search", "docs"), make("math.factorial", None), make("math_factorial", None)]
    toolset = Toolset(tools)
    wires = [spec.name for spec in toolset.specs]
    assert len(set(wires)) == 4 and all(WIRE_NAME.match(w) for w in wires)
    assert wires[0] == "web_search" and wires[1] == "docs_search"  # clashing bare names get qualified
    for t, wire in zip(tools, wires):
        assert toolset.resolve(wire) is t
    assert toolset.resolve("web.search") is tools[0]  # a model echoing the original name still works
    assert toolset.resolve("nope") is None
    assert re.fullmatch(r"math_factorial_[0-9a-f]{6}", wires[3]) or re.fullmatch(r"math_factorial_[0-9a-f]{6}", wires[2])


# ---- RunContext: dependencies for tools, never in the model's schema ---------------------------


class Shop:
    def __init__(self, prices):
        self.prices = prices
        self.seen = []


@tool
def price_of(ctx: RunContext[Shop], item: str) -> float:
    """The price of one item.

    Args:
        ctx: Not for the model.
        item: What to price.
    """
    ctx.deps.seen.append((ctx.run_id, ctx.tool_name, ctx.action_id, ctx.usage.model_calls))
    return ctx.deps.prices[item]


def test_the_context_parameter_is_not_in_the_schema():
    assert price_of.takes_context
    assert price_of.parameters == {"type": "object", "additionalProperties": False, "required": ["item"],
                                   "properties": {"item": {"type": "string", "description": "What to price."}}}
    with pytest.raises(ToolError, match="ctx"):  # the model cannot send one either
        price_of.validate({"item": "tea", "ctx": {"deps": "forged"}})


def test_the_context_is_injected_with_this_calls_details():
    shop = Shop({"tea": 2.5})
    context = RunContext(deps=shop, run_id="run_1", usage=Usage(model_calls=3))
    assert asyncio.run(price_of.invoke(price_of.validate({"item": "tea"}), "act_9", context=context)) == 2.5
    assert shop.seen == [("run_1", "price_of", "act_9", 3)]
    assert context.tool_name == "" and context.action_id is None  # the caller's context is left as it was


def test_async_tools_get_the_context_too_and_outside_a_run_deps_are_none():
    @tool
    async def whoami(ctx: RunContext[None], greeting: str = "hi") -> str:
        """Say who runs this."""
        return f"{greeting} {ctx.run_id or 'nobody'} {ctx.deps} {ctx.tool_name}"

    assert list(whoami.parameters["properties"]) == ["greeting"]
    assert asyncio.run(whoami.call({})) == "hi nobody None whoami"
    context = RunContext(deps=None, run_id="r2", usage=Usage())
    assert asyncio.run(whoami.in_plugin("me").call({"greeting": "yo"}, context)) == "yo r2 None me.whoami"


def test_tools_without_a_context_are_unchanged():
    assert not book_table.takes_context
    context = RunContext(deps=Shop({}), run_id="r", usage=Usage())
    assert asyncio.run(book_table.invoke({"restaurant": "L", "people": 1, "day": date(2026, 1, 2)}, None, context)) \
        == "L:1:2026-01-02:inside"


def test_a_context_parameter_anywhere_but_first_is_refused():
    def late(item: str, ctx: RunContext[Shop]) -> str:
        return item

    with pytest.raises(TypeError, match="the RunContext parameter 'ctx' must come first"):
        tool(late)
