"""Fixtures for the server tests: a clean home, `plugdeck serve` processes, the pizzeria service as a
plugin, the echo model, and validators for OpenAI's own schemas (from the spec in the shared fixtures)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from cli_env import cli_environment
from serverkit import HERE, ROOT, ServeProcess, plugdeck, spawn_json
from shared_fixtures import FIXTURES


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The shared CLI environment (tests/cli_env.py), for subprocesses and for this process too."""
    values = cli_environment(tmp_path)
    for name in [n for n in os.environ if n not in values]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return values


@pytest.fixture
def serve(env):
    """serve(*args): start `plugdeck serve --port 0 *args`; stopped after the test."""
    started = []

    def start(*args) -> ServeProcess:
        started.append(ServeProcess(env, *args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def echo_model():
    """The echo model in its own process; yields its base URL (ending in /v1)."""
    process, ready = spawn_json(sys.executable, str(HERE / "echo_model.py"), "--first-token-ms", "5", "--chunk-ms", "1")
    yield f"http://127.0.0.1:{ready['port']}/v1"
    process.terminate()
    process.wait(10)


@pytest.fixture
def pizzeria(env):
    """The pizzeria example service, added as the plugin `pizzeria` (its place_order needs a person's OK)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "examples/pizzeria/server.py"), "--port", "0", "--quiet"],
                               stdout=subprocess.PIPE, text=True)
    url = re.search(r"(http://127\.0\.0\.1:\d+)", process.stdout.readline()).group(1)
    added = plugdeck(env, "plugins", "add", "openapi", str(ROOT / "examples/pizzeria/openapi.yaml"), "--name",
                     "pizzeria", "--base-url", url, "--allow-private")
    assert added.returncode == 0, added.stderr
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as c:
        yield c


def _nullable_to_types(node):
    """The spec mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; JSON Schema spells it as a type."""
    if isinstance(node, list):
        return [_nullable_to_types(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_types(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        elif "$ref" in node:
            node = {"anyOf": [{"$ref": node.pop("$ref")}, {"type": "null"}], **node}
        elif "anyOf" in node:
            node["anyOf"] = [*node["anyOf"], {"type": "null"}]
    return node


@pytest.fixture(scope="session")
def openai_schema():
    """openai_schema("CreateChatCompletionResponse").validate(data): OpenAI's own schema, $refs resolved."""
    import yaml
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    with open(FIXTURES / "openai-api" / "openapi.yaml", encoding="utf-8") as f:
        spec = _nullable_to_types(yaml.load(f, Loader=yaml.CSafeLoader))
    registry = Registry().with_resource("urn:openai", Resource.from_contents(spec, default_specification=DRAFT202012))

    def validator(name: str) -> Draft202012Validator:
        assert name in spec["components"]["schemas"], name
        return Draft202012Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=registry)

    return validator
