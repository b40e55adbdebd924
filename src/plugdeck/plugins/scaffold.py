"""`plugdeck plugins new NAME`: a ready-to-install plugin package with one tool and a test."""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "plugdeck-{dist}"
version = "0.1.0"
description = "A plugdeck plugin: {name}"
requires-python = ">=3.11"
dependencies = ["plugdeck"]

[project.optional-dependencies]
test = ["pytest"]

# This line is what makes plugdeck find the plugin once the package is installed.
[project.entry-points."plugdeck.plugins"]
{name} = "{module}:plugin"
'''

MODULE = '''"""The {name} plugin for plugdeck."""

from plugdeck import Plugin, tool


@tool
def greet(name: str, excited: bool = False) -> str:
    """Greet someone by name.

    Args:
        name: Who to greet.
        excited: End with an exclamation mark.
    """
    return f"Hello, {{name}}" + ("!" if excited else ".")


plugin = Plugin(
    name="{name}",
    version="0.1.0",
    description="An example plugin: replace greet with your own tools.",
    tools=[greet],
)
'''

TEST = '''import asyncio

from plugdeck import Agent, ScriptedModel

from {module} import plugin


def test_greet_through_the_agent():
    model = ScriptedModel([{{"tool_calls": [{{"name": "greet", "arguments": {{"name": "Ada"}}}}]}}, "Said hello."])
    run = Agent(model, [plugin]).run_sync("Say hello to Ada")
    assert run.tool_results[0].result == "Hello, Ada."


def test_arguments_are_validated():
    tool = plugin.tool("greet")
    assert asyncio.run(tool.call({{"name": "Ada", "excited": True}})) == "Hello, Ada!"
'''

README = '''# plugdeck-{dist}

A plugdeck plugin. Install it next to plugdeck and it appears in `plugdeck plugins`:

```
pip install -e ".[test]" && python -m pytest
plugdeck plugins
plugdeck tools call {name}.greet '{{"name": "Ada"}}'
```

Plugins installed from packages are denied until your policy allows them. In plugdeck.toml:

```toml
[policy]
allow = ["{name}.*"]
```
'''


def scaffold(name: str, parent: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"plugin name {name!r}: use lowercase letters, digits and '_', starting with a letter")
    folder = parent / f"plugdeck-{name.replace('_', '-')}"
    if folder.exists():
        raise ValueError(f"{folder} already exists; choose another name or remove it")
    module = f"plugdeck_{name}"
    values = {"name": name, "dist": name.replace("_", "-"), "module": module}
    files = {
        "pyproject.toml": PYPROJECT,
        f"{module}/__init__.py": MODULE,
        f"tests/test_{name}.py": TEST,
        "README.md": README,
    }
    for relative, template in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return folder
