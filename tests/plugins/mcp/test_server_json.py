"""The repository's server.json, the entry for the official MCP registry, checked against the facts of
the registry's server.json schema (modelcontextprotocol/registry, docs/reference/server-json/
server.schema.json, 2025-12-11): required fields, the name pattern, the length limits, what a package
must and may hold. Its versions must be plugdeck's own."""

import json
from pathlib import Path

import jsonschema
import pytest

import plugdeck

SERVER_JSON = Path(__file__).resolve().parents[3] / "server.json"

# The schema's rules, restated (not the registry's file): what its validator would reject.
INPUT = {"type": "object", "properties": {
    "description": {"type": "string"}, "isRequired": {"type": "boolean"}, "isSecret": {"type": "boolean"},
    "format": {"enum": ["string", "number", "boolean", "filepath"]}, "value": {"type": "string"},
    "default": {"type": "string"}, "placeholder": {"type": "string"}, "choices": {"type": "array"}}}
ARGUMENT = {"allOf": [INPUT, {"required": ["type"], "properties": {"type": {"enum": ["positional", "named"]}},
                              "if": {"properties": {"type": {"const": "named"}}}, "then": {"required": ["name"]},
                              "else": {"anyOf": [{"required": ["value"]}, {"required": ["valueHint"]}]}}]}
PACKAGE = {
    "type": "object", "additionalProperties": False,
    "required": ["registryType", "identifier", "version", "transport"],
    "properties": {
        "registryType": {"type": "string"}, "registryBaseUrl": {"type": "string", "pattern": "^https?://"},
        "identifier": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1, "maxLength": 255, "not": {"const": "latest"},
                    "pattern": r"^[^\^~><=*x ]+$"},
        "fileSha256": {"type": "string", "pattern": "^[a-f0-9]{64}$"}, "runtimeHint": {"type": "string"},
        "transport": {"type": "object", "required": ["type"],
                      "properties": {"type": {"enum": ["stdio", "streamable-http", "sse"]}}},
        "runtimeArguments": {"type": "array", "items": ARGUMENT},
        "packageArguments": {"type": "array", "items": ARGUMENT},
        "environmentVariables": {"type": "array", "items": {"allOf": [INPUT, {"required": ["name"]}]}},
    },
}
SERVER = {
    "type": "object", "required": ["name", "description", "version"],
    "properties": {
        "$schema": {"type": "string", "pattern": "^https://static.modelcontextprotocol.io/schemas/"},
        "name": {"type": "string", "minLength": 3, "maxLength": 200, "pattern": "^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255},
        "packages": {"type": "array", "items": PACKAGE},
    },
}


@pytest.fixture(scope="module")
def entry():
    return json.loads(SERVER_JSON.read_text(encoding="utf-8"))


def test_server_json_follows_the_registry_schema(entry):
    jsonschema.validate(entry, SERVER)
    assert entry["name"].startswith("io.github.") and entry["name"].endswith("/plugdeck")


def test_it_is_a_pypi_package_served_over_stdio_with_plugdecks_version(entry):
    package, = entry["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == "plugdeck"
    assert package["transport"] == {"type": "stdio"}
    assert entry["version"] == package["version"] == plugdeck.__version__
    assert [a["value"] for a in package["packageArguments"]] == ["mcp", "serve"]  # plugdeck mcp serve
    secrets = [v["name"] for v in package["environmentVariables"] if v.get("isSecret")]
    assert secrets and all(not v.get("value") for v in package["environmentVariables"])  # no value shipped


@pytest.mark.parametrize("change, problem", [
    (lambda e: e.pop("description"), "'description' is a required property"),
    (lambda e: e.update(name="plugdeck"), "does not match"),
    (lambda e: e["packages"][0].update(version="latest"), "should not be valid"),
    (lambda e: e["packages"][0].update(registry_type="pypi"), "Additional properties"),
])
def test_the_restated_rules_catch_what_the_registry_rejects(entry, change, problem):
    broken = json.loads(json.dumps(entry))
    change(broken)
    with pytest.raises(jsonschema.ValidationError, match=problem):
        jsonschema.validate(broken, SERVER)
