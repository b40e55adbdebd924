"""One error hierarchy: every exception class plugdeck defines is a PlugdeckError, and the surfaces tell
a UserError (its message, one line) from a bug of ours (a traceback behind --debug, a 500) by type."""

from __future__ import annotations

import ast
import builtins
import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import plugdeck
from plugdeck.errors import PlugdeckError, RunStopped, ServiceError, UserError
from plugdeck.extras import MissingExtra, extra_of

SRC = Path(plugdeck.__file__).parent
HERE = Path(__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# A __main__ module would run a program on import.
MODULES = sorted(_module_name(p) for p in SRC.rglob("*.py") if p.stem != "__main__")


def _builtin_exception(node: ast.expr) -> bool:
    value = getattr(builtins, node.id, None) if isinstance(node, ast.Name) else None
    return isinstance(value, type) and issubclass(value, BaseException)


def _classes(tree: ast.Module) -> tuple[list[str], list[ast.ClassDef]]:
    """The module's own top-level classes (by name), and the classes defined inside functions."""
    top = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    nested = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name not in top]
    return top, nested


def _import(name: str):
    try:
        return importlib.import_module(name)
    except MissingExtra as exc:
        pytest.skip(f"{name} needs the extra {exc.extra!r}, not installed here")
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("plugdeck") and extra_of(exc.name):
            pytest.skip(f"{name} needs {exc.name} (extra {extra_of(exc.name)!r}), not installed here")
        raise


@pytest.mark.parametrize("name", MODULES)
def test_every_exception_class_is_a_plugdeck_error(name):
    path = SRC.parent.joinpath(*name.split(".")).with_suffix(".py")
    if not path.exists():
        path = path.with_suffix("") / "__init__.py"
    top, nested = _classes(ast.parse(path.read_text(encoding="utf-8")))
    # A class inside a function cannot be imported: its bases are checked as written.
    strays = [f"{node.name} (line {node.lineno})" for node in nested if any(map(_builtin_exception, node.bases))]
    assert not strays, f"{name}: exception classes not derived from plugdeck.errors: {strays}"
    module = _import(name)
    for cls_name in top:
        cls = getattr(module, cls_name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            assert issubclass(cls, PlugdeckError), (
                f"{name}.{cls_name} is not a PlugdeckError: derive it from plugdeck.errors.UserError when the "
                f"person can act on it (keep its builtin base too, e.g. (UserError, ValueError)), else PlugdeckError")


def test_the_walk_sees_every_package():
    # The parametrised test above must cover the whole tree, not an empty list.
    assert {"plugdeck.errors", "plugdeck.cli.main", "plugdeck.server.errors", "plugdeck.plugins.sql.guard"} <= set(MODULES)


def test_the_branches_and_the_builtin_bases_callers_rely_on():
    from plugdeck.config import ConfigError
    from plugdeck.models.base import ModelError
    from plugdeck.plugins.knowledge.embeddings import EmbeddingError
    from plugdeck.plugins.sql.connect import DatabaseError
    from plugdeck.tools import ToolError

    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)
    assert issubclass(MissingExtra, UserError) and issubclass(MissingExtra, ImportError)
    for service in (ModelError, EmbeddingError, DatabaseError):
        assert issubclass(service, ServiceError)
    assert not issubclass(ToolError, UserError) and issubclass(ToolError, PlugdeckError)
    assert ToolError("no such city", "not_found").to_dict() == {"kind": "not_found", "message": "no such city"}
    assert not issubclass(RunStopped, UserError)
    extra = MissingExtra("sql", ["sqlglot"], "plugdeck plugins add sql")
    assert extra.extra == "sql" and "pip install 'plugdeck[sql]'" in str(extra)


# ---- the CLI ----------------------------------------------------------------------------------

# The real `plugdeck` entry point (main()) with one more command that raises what it is told to.
CLI = """
import sys
from plugdeck.cli import main as cli
from plugdeck.plugins.openapi.spec import SpecError
from plugdeck.models.base import ModelError

@cli.app.command("explode")
def explode(kind: str) -> None:
    if kind == "spec":
        raise SpecError("shop.yaml: GET /orders has no responses (token sk-abcdefghijklmnopqrstuvwx)")
    if kind == "model":
        raise ModelError("http://127.0.0.1:9/v1 refused the connection")
    raise KeyError("a bug of ours")

cli.main()
"""


def _cli(env, *args):
    return subprocess.run([sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_prints_a_user_error_as_one_line_without_a_traceback(cli_env):
    spec = _cli(cli_env, "explode", "spec")
    assert spec.returncode == 1
    # One line, the message as written (a key-shaped secret blanked out), no traceback, no --debug hint.
    assert spec.stderr == "error: shop.yaml: GET /orders has no responses (token [redacted])\n"
    model = _cli(cli_env, "explode", "model")
    assert (model.returncode, model.stderr) == (1, "error: http://127.0.0.1:9/v1 refused the connection\n")


def test_the_cli_calls_anything_else_an_internal_error_and_points_at_debug(cli_env):
    bug = _cli(cli_env, "explode", "bug")
    assert bug.returncode == 1
    assert bug.stderr == "error: KeyError: 'a bug of ours' (run with --debug for the traceback)\n"
    debug = _cli(cli_env, "--debug", "explode", "spec")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "SpecError" in debug.stderr


# ---- the server -------------------------------------------------------------------------------


@pytest.fixture
def server_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    for name in [n for n in os.environ if n.startswith("PLUGDECK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(HERE / "server"))


def test_the_server_answers_a_user_error_with_a_4xx_and_its_message(server_env):
    pytest.importorskip("fastapi")
    from serverkit import start_server

    from plugdeck.assemble import AgentSetup
    from plugdeck.config import ConfigError
    from plugdeck.models.base import ModelError
    from plugdeck.server.errors import ApiError

    raised = {"config": ConfigError("plugdeck.toml: [agents.shop] has unknown key 'modle' (known: model, plugins)"),
              "model": ModelError("http://127.0.0.1:9/v1 refused the connection"),
              "api": ApiError(409, "already decided", code="already_decided"),
              "bug": RuntimeError("a bug of ours, with a path /srv/secret")}

    async def explode(kind: str):
        raise raised[kind]

    with start_server(AgentSetup(plugins=["calculator"])) as server, httpx.Client(timeout=30) as client:
        server.app.add_api_route("/api/explode/{kind}", explode, methods=["GET"])
        config = client.get(f"{server.url}/api/explode/config")
        assert config.status_code == 400
        assert config.json()["error"] == {
            "message": "plugdeck.toml: [agents.shop] has unknown key 'modle' (known: model, plugins)",
            "type": "invalid_request_error", "param": None, "code": "invalid_request"}
        model = client.get(f"{server.url}/api/explode/model")
        assert model.status_code == 502 and model.json()["error"]["code"] == "service_error"
        assert model.json()["error"]["message"] == "http://127.0.0.1:9/v1 refused the connection"
        api = client.get(f"{server.url}/api/explode/api")  # an ApiError keeps its own status and code
        assert api.status_code == 409 and api.json()["error"]["code"] == "already_decided"
        bug = client.get(f"{server.url}/api/explode/bug")
        assert bug.status_code == 500 and "secret" not in bug.text
        assert bug.json()["error"]["message"] == "internal server error; the server's log has the details"
