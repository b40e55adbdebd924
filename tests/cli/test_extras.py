"""Missing optional parts (issue 11, item 17), in a real fresh virtual environment with only plugdeck's core
dependencies: what needs an extra says so first, names `pip install 'plugdeck[EXTRA]'` and leaves nothing
half done; the core (the calculator, tool_from_schema) works without any extra.

The environment is built once for this module (about half a minute: pip, from its cache or PyPI)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from plugdeck.extras import MODULES, extra_of

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOT_EXTRAS = {"all", "test", "bench"}  # groups of other extras, and what only the project's own checks need


def test_every_extra_and_its_packages_are_known_to_the_checks():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(MODULES) == set(extras) - NOT_EXTRAS
    provided = importlib.metadata.packages_distributions()  # module -> the distributions that install it
    for extra, requirements in extras.items():
        if extra in NOT_EXTRAS:
            continue
        modules = {d.lower().replace("_", "-") for m in MODULES[extra] for d in provided.get(m.split(".")[0], [])}
        for requirement in requirements:
            if ";" in requirement:  # a platform-specific speed-up (uvloop, httptools): never required
                continue
            name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")
            assert name in modules, (extra, name, modules)
    assert extra_of("yaml") == "openapi" and extra_of("sentence_transformers.models") == "knowledge-torch"
    assert extra_of("safetensors") == "knowledge" and extra_of("tokenizers") == "local"
    assert extra_of("opentelemetry") == "telemetry" and extra_of("json") is None


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """A fresh venv with plugdeck (editable) and its core dependencies only; returns (bin folder, env)."""
    root = tmp_path_factory.mktemp("core")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    for step in ([*PYPROJECT["project"]["dependencies"]], ["--no-deps", "-e", str(ROOT)]):
        installed = subprocess.run([*pip, *step], capture_output=True, text=True, timeout=600)
        assert installed.returncode == 0, installed.stderr
    home = root / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDECK_", "PYTHON", "VIRTUAL_ENV"))}
    env = {**clean, "HOME": str(home), "PLUGDECK_HOME": str(root / "data"), "XDG_CONFIG_HOME": str(home / ".config"),
           "PATH": f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}"}
    return venv / "bin", env, root


def run(core, *args, python=False):
    bin_dir, env, root = core
    command = [str(bin_dir / "python"), "-c", args[0]] if python else [str(bin_dir / "plugdeck"), *args]
    return subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_the_core_works_without_extras(core):
    assert run(core, "import sys, plugdeck; assert 'yaml' not in sys.modules; import sqlglot", python=True) \
        .stderr.strip().endswith("No module named 'sqlglot'")  # really a core-only environment
    answered = run(core, "ask", "10! / 9!")
    assert answered.returncode == 0 and answered.stdout.strip() == "10", answered.stderr
    tool = run(core, "import plugdeck\n"
                     "t = plugdeck.tool_from_schema('double', 'Twice a number', {'type': 'object', 'properties': "
                     "{'x': {'type': 'integer'}}, 'required': ['x']}, lambda x: 2 * x)\n"
                     "print(t.check({'x': 4}))\n"
                     "try:\n    t.check({'x': 'four'})\nexcept plugdeck.ToolError as e:\n    print(e.kind)", python=True)
    assert tool.returncode == 0, tool.stderr
    assert tool.stdout.split() == ["{'x':", "4}", "invalid_arguments"]


@pytest.mark.parametrize("args, extra", [
    (["plugins", "add", "sql", "--name", "shop", "--url", "sqlite:///shop.db"], "sql"),
    (["plugins", "add", "openapi", str(ROOT / "examples/pizzeria/openapi.yaml"), "--name", "pizzeria"], "openapi"),
    (["plugins", "add", "mcp", "--name", "clock", "--yes", "--", "python", "-m", "mcp_server_time"], "mcp"),
    (["mcp", "serve"], "mcp"),
    (["kb", "add", str(ROOT / "examples/pizzeria"), "--name", "menu"], "knowledge"),
    (["kb", "list"], "knowledge"),
    (["ask", "--kb", "menu", "What is on the menu?"], "knowledge"),
    (["serve", "--port", "0"], "server"),
])
def test_a_command_that_needs_an_extra_names_it_first_and_does_nothing(core, args, extra):
    _, env, _ = core
    data = Path(env["PLUGDECK_HOME"])
    before = sorted(p.relative_to(data) for p in data.rglob("*")) if data.exists() else []
    result = run(core, *args)
    assert result.returncode == 1
    assert f"pip install 'plugdeck[{extra}]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    after = sorted(p.relative_to(data) for p in data.rglob("*")) if data.exists() else []
    assert [p for p in after if p not in before and p.name != "runs.db"] == []  # no plugin, no knowledge base
    assert [p["name"] for p in json.loads(run(core, "plugins", "--json").stdout)] == ["calculator"]
