"""The typed public face: a user's file type-checks under `mypy --strict`, the exports resolve, and
`import plugdeck` stays light.

mypy runs as a user's would: against plugdeck as an installed package (its py.typed marker), so it
reports errors in the user's file only, judged by plugdeck's annotations.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import plugdeck

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "typed_api.py"


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("mypy_cache")


def mypy_strict(path: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_plugdeck_ships_its_types():
    assert (Path(plugdeck.__file__).parent / "py.typed").is_file()


def test_the_public_api_example_is_clean_under_mypy_strict(mypy_cache):
    result = mypy_strict(EXAMPLE, mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_public_api_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # price_of, then the order waits; resumed, it runs and the third turn is the quote
    assert lines[0].startswith("3 x tea = 7.50 EUR; orders: ['3 x tea']; 3 model calls, 2 tool calls")
    assert "  answer: Tea costs 2.50 euros." in lines
    assert lines[-1] == "2 + 2 = 4"


# What the lead's Agent does not touch: tools with a RunContext, limits, the policy, events, output parsing.
TYPED_PARTS = '''
    from dataclasses import dataclass

    from pydantic import BaseModel

    from plugdeck import (AnswerGiven, Event, Limits, LimitsError, PlugdeckError, Policy, RunContext, Tool,
                          ToolError, ToolFinished, Usage, UserError, tool)
    from plugdeck.agent.output import OutputInvalid, instructions, parse, retry_message
    from plugdeck.policy.engine import limit_reached


    @dataclass
    class Shop:
        prices: dict[str, float]


    @tool
    def price_of(ctx: RunContext[Shop], item: str) -> float:
        """The price of one item."""
        return ctx.deps.prices[item]


    @tool(effect="write", timeout=5)
    async def order(ctx: RunContext[Shop], item: str) -> str:
        """Order one item."""
        return f"{item} for {ctx.deps.prices[item]} in run {ctx.run_id} ({ctx.usage.model_calls} model calls)"


    class Quote(BaseModel):
        item: str
        total: float


    def check(usage: Usage) -> str | None:
        limits: Limits = Policy().limits.tighter(Limits(max_steps=3, max_cost=0.5))
        reached = limit_reached(limits, usage, before="model")
        return reached[1] if reached else None


    def read(text: str) -> Quote | dict[str, object]:
        try:
            return parse(text, Quote)
        except OutputInvalid as exc:
            return retry_message(exc)


    def show(event: Event) -> str:
        if isinstance(event, ToolFinished):
            return f"{event.tool}: {event.result!r}"
        return event.text if isinstance(event, AnswerGiven) else event.type


    tools: list[Tool] = [price_of, order]
    errors: tuple[type[PlugdeckError], ...] = (UserError, ToolError, LimitsError, OutputInvalid)
    prompt: str = instructions(Quote)
'''


def test_the_parts_outside_the_agent_are_clean_under_mypy_strict(tmp_path, mypy_cache):
    user_file = tmp_path / "typed_parts.py"
    user_file.write_text(textwrap.dedent(TYPED_PARTS))
    result = mypy_strict(user_file, mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("mistake, message", [
    ("Limits(max_steps='3')", 'Argument "max_steps" to "Limits" has incompatible type "str"'),
    ("price_of.invoke({}, context=RunContext(deps=Shop({}), run_id=1, usage=Usage()))",
     'Argument "run_id" to "RunContext" has incompatible type "int"'),
    ("parse('{}', Quote).price", '"Quote" has no attribute "price"'),
    ("Policy().limits.max_tools", '"Limits" has no attribute "max_tools"'),
])
def test_mypy_catches_a_misuse(tmp_path, mypy_cache, mistake, message):
    # The clean check above means something only if the types are precise enough to catch these.
    user_file = tmp_path / "misuse.py"
    user_file.write_text(textwrap.dedent(TYPED_PARTS) + f"\n\nmistake = {mistake}\n")
    result = mypy_strict(user_file, mypy_cache)
    assert result.returncode == 1 and message in result.stdout, result.stdout + result.stderr


# plugdeck's own modules behind the public face, outside the agent core: kept clean under --strict
# (imports they make are followed silently: only these modules are judged).
CLEAN_MODULES = ("plugdeck", "plugdeck.usage", "plugdeck.errors", "plugdeck.events", "plugdeck.tools",
                 "plugdeck.models.base", "plugdeck.models.scripted", "plugdeck.plugins.base", "plugdeck.checks",
                 "plugdeck.agent.output", "plugdeck.policy")


def test_the_public_modules_are_clean_under_mypy_strict(tmp_path):
    targets = [arg for name in CLEAN_MODULES for arg in ("-p" if name == "plugdeck.policy" else "-m", name)]
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir",
                             str(tmp_path), *targets], cwd=ROOT / "src", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_export_resolves_to_its_module():
    for name in plugdeck.__all__:
        value = getattr(plugdeck, name)
        if name != "__version__":
            assert value.__module__ == plugdeck._EXPORTS[name], name
    assert set(plugdeck.__all__) == {"__version__", *plugdeck._EXPORTS}
    with pytest.raises(AttributeError, match="no attribute 'Agnet'"):
        plugdeck.Agnet  # noqa: B018


def test_import_plugdeck_loads_nothing_else():
    code = ("import sys, json, plugdeck; print(json.dumps(sorted(m for m in sys.modules if m.startswith("
            "('plugdeck', 'pydantic', 'httpx', 'rich', 'typer', 'jsonschema')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert loaded == ["plugdeck"]
