"""Every real-world spec in ../shared/fixtures/openapi imports: one tool per operation, every
parameter schema valid JSON Schema, names valid on the wire, effects right; bad input is refused
with a message that names the spec and the problem."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from shared_fixtures import FIXTURES

from plugdeck.plugins import registry
from plugdeck.plugins.openapi import build_plugin, guard_for, load_source, openapi_plugin, prepare, snapshot_spec
from plugdeck.plugins.openapi.operations import count_operations
from plugdeck.plugins.openapi.spec import SpecError, from_document
from plugdeck.tools import WIRE_NAME

OPENAPI = FIXTURES / "openapi"
META_SCHEMA = OPENAPI / "oai-v3.0-examples" / "openapi-3.0-schema.yaml"
SPECS = sorted(
    p for p in OPENAPI.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p != META_SCHEMA
)
BASE = "https://api.example.com/v1"


def _prepared(path: Path):
    guard = guard_for({})
    spec, _ = load_source(str(path), guard)
    # Specs whose server is relative or a placeholder get a base URL, as a person would give one.
    return prepare("fixture", {"base_url": BASE}, spec=spec, guard=guard)


def test_the_fixture_folder_is_there():
    assert len(SPECS) == 38, f"expected the shared OpenAPI fixtures under {OPENAPI}"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(OPENAPI)))
def test_every_operation_becomes_one_valid_tool(path):
    if path.name == "webhooks.json":  # webhooks are calls the API makes, not ones we make: no tool at all
        with pytest.raises(SpecError, match="has no operations \\(only webhooks"):
            _prepared(path)
        return
    prepared = _prepared(path)
    plugin = prepared.plugin()
    assert prepared.skipped == []
    assert len(plugin.tools) == count_operations(prepared.spec)
    names = [t.name for t in plugin.tools]
    assert len(set(names)) == len(names)
    for tool, op in zip(plugin.tools, prepared.operations):
        assert WIRE_NAME.match(tool.name), tool.name
        Draft202012Validator.check_schema(tool.parameters)
        assert tool.parameters["type"] == "object"
        assert all(WIRE_NAME.match(arg.replace(".", "_")) for arg in tool.parameters["properties"])
        assert tool.effect == ("read" if op.method in ("get", "head") else "write")
        assert tool.untrusted and tool.description
        json.dumps(tool.parameters)  # plain JSON: no cycles left


@pytest.mark.parametrize("path, count", [
    ("spotify-sonallux/fixed-spotify-open-api.yml", 97),
    ("swagger-petstore3/openapi.yaml", 19),
    ("nytimes-swagger2/books_api.json", 6),
])
def test_operation_counts_of_known_specs(path, count):
    assert len(_prepared(OPENAPI / path).operations) == count


def test_the_meta_schema_is_refused_clearly():
    with pytest.raises(SpecError, match="openapi-3.0-schema.yaml is not an OpenAPI document"):
        load_source(str(META_SCHEMA), guard_for({}))


# ---- $ref cycles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["circular.json", "circular-paths.json", "schema-circular.json"])
def test_circular_specs_finish_and_cut_the_cycle(name):
    result = {}
    worker = threading.Thread(target=lambda: result.update(plugin=_prepared(OPENAPI / "readme-oas-examples/3.0" / name).plugin()),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), f"importing {name} did not finish"
    assert result["plugin"].tools


def test_a_cycle_is_cut_with_a_placeholder_naming_the_schema():
    plugin = _prepared(OPENAPI / "readme-oas-examples/3.0/schema-circular.json").plugin()
    text = json.dumps([t.parameters for t in plugin.tools])
    assert "(recursive: see " in text


def test_self_reference_in_a_small_spec():
    spec = {
        "openapi": "3.1.0", "info": {"title": "tree", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {"/nodes": {"post": {"operationId": "add_node", "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
        "components": {"schemas": {"Node": {"type": "object", "properties": {
            "name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}}},
    }
    tool = openapi_plugin(spec, name="tree").tool("add_node")
    children = tool.parameters["properties"]["children"]
    assert children["items"] == {"description": "(recursive: see Node)"}


# ---- Swagger 2.0 ---------------------------------------------------------------------------------


def test_swagger2_is_converted():
    spec, _ = load_source(str(OPENAPI / "nytimes-swagger2/article_search_v2.json"), guard_for({}))
    assert spec.version == "2.0"
    prepared = prepare("nyt", {}, spec=spec)
    assert prepared.base_url == "https://api.nytimes.com/svc/search/v2"
    schemes = spec.document["components"]["securitySchemes"]
    assert schemes["apikey"] == {"type": "apiKey", "name": "api-key", "in": "query"}
    tool = prepared.plugin().tools[0]
    props = tool.parameters["properties"]
    assert "q" in props and props["sort"]["enum"] == ["newest", "oldest"]
    assert "api-key" not in props  # a credential is never asked of the model


def test_swagger2_body_and_form_parameters():
    doc = {
        "swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "api.example.com", "basePath": "/v2",
        "schemes": ["https"], "consumes": ["application/json"],
        "definitions": {"Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
        "securityDefinitions": {"basic": {"type": "basic"},
                                "cc": {"type": "oauth2", "flow": "application", "tokenUrl": "https://auth.example.com/t"}},
        "paths": {
            "/pets": {"post": {"operationId": "addPet", "parameters": [
                {"in": "body", "name": "pet", "required": True, "schema": {"$ref": "#/definitions/Pet"}}]}},
            "/pets/{id}/photo": {"post": {"operationId": "upload", "consumes": ["multipart/form-data"], "parameters": [
                {"in": "path", "name": "id", "required": True, "type": "integer"},
                {"in": "formData", "name": "file", "type": "file", "required": True},
                {"in": "query", "name": "tags", "type": "array", "items": {"type": "string"}, "collectionFormat": "pipes"}]}},
        },
    }
    spec = from_document(doc, "inline-swagger")
    assert spec.document["components"]["securitySchemes"]["basic"]["scheme"] == "basic"
    assert "clientCredentials" in spec.document["components"]["securitySchemes"]["cc"]["flows"]
    plugin = prepare("pets", {}, spec=spec).plugin()
    add = plugin.tool("addPet").parameters
    assert add["properties"]["name"] == {"type": "string"} and add["required"] == ["name"]
    upload = plugin.tool("upload").parameters
    assert set(upload["properties"]) == {"id", "file", "tags"}
    op = prepare("pets", {}, spec=spec).operations[1]
    assert op.body.media_type == "multipart/form-data" and op.body.binary_fields == ("file",)
    assert next(p for p in op.params if p.name == "tags").style == "pipeDelimited"


@pytest.mark.parametrize("doc, message", [
    ({"swagger": "1.2", "paths": {}}, "Swagger 1.2 is not supported"),
    ({"openapi": "4.0.0", "paths": {}}, "OpenAPI 4.0.0 is not supported"),
    ({"info": {}}, "is not an OpenAPI document"),
])
def test_unsupported_versions_are_named(doc, message):
    with pytest.raises(SpecError, match=message):
        from_document(doc, "my-spec.json")


# ---- bad input --------------------------------------------------------------------------------------


def test_a_spec_that_does_not_parse_names_the_file_and_the_line(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("openapi: 3.0.0\npaths:\n  /x: {get: {\n")
    with pytest.raises(SpecError, match=r"broken.yaml is neither valid JSON nor valid YAML: .* line \d+"):
        load_source(str(bad), guard_for({}))
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"openapi": "3.0.0", "paths": {')
    with pytest.raises(SpecError, match=r"broken.json is not valid JSON: .* line 1"):
        load_source(str(broken_json), guard_for({}))


def test_an_operation_with_an_unsupported_feature_is_skipped_and_named():
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {
            "/ok": {"get": {"operationId": "fine"}},
            "/ext": {"get": {"operationId": "external", "parameters": [
                {"name": "q", "in": "query", "schema": {"$ref": "common.yaml#/components/schemas/Q"}}]}},
            "/body": {"get": {"operationId": "weird", "parameters": [{"name": "x", "in": "body"}]}},
        },
    }
    prepared = prepare("t", {}, spec=from_document(spec, "svc.yaml"))
    assert [op.name for op in prepared.operations] == ["fine"]
    reasons = {s.label: s.reason for s in prepared.skipped}
    assert "common.yaml#/components/schemas/Q" in reasons["GET /ext"] and "svc.yaml" in reasons["GET /ext"]
    assert "bundle" in reasons["GET /ext"]
    assert "'body'" in reasons["GET /body"]


def test_a_broken_plugin_does_not_stop_the_others(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text((Path(__file__).parents[3] / "examples/pizzeria/openapi.yaml").read_text())
    bad.write_text("openapi: [")
    registry.add(tmp_path, "good", "openapi", {"spec": str(good), "allow_private": ["127.0.0.1"]})
    registry.add(tmp_path, "bad", "openapi", {"spec": str(bad)})
    plugins, problems = registry.build_all(tmp_path)
    assert [p.name for p in plugins] == ["good"] and len(plugins[0].tools) == 3
    assert problems[0].name == "bad" and "bad.yaml" in problems[0].message


# ---- names and schemas --------------------------------------------------------------------------------


def test_names_are_sanitised_and_unique():
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {
            "/pets/{pet id}": {"get": {"parameters": [{"name": "pet id", "in": "path", "required": True,
                                                       "schema": {"type": "string"}}]},
                               "delete": {"operationId": "remove pet!"}},
            "/a": {"get": {"operationId": "remove pet?"}},
            "/b": {"get": {"operationId": "x" * 80}},
        },
    }
    plugin = openapi_plugin(spec, name="t")
    names = [t.name for t in plugin.tools]
    assert names[0] == "get_pets_pet_id"
    assert names[1] == "remove_pet_" and names[2].startswith("remove_pet__") and names[2] != names[1]
    assert len(names[3]) <= 64
    assert all(WIRE_NAME.match(n) for n in names)
    assert plugin.tools[0].parameters["properties"] == {"pet_id": {"type": "string"}}


def test_parameters_and_body_merge_without_clashes():
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {"/items/{id}": {"put": {
            "operationId": "put_item",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "id", "in": "query", "schema": {"type": "string"}},
                           {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                           {"name": "Authorization", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "readOnly": True},
                                                                      "name": {"type": "string"}}}}}},
        }}},
    }
    tool = openapi_plugin(spec, name="t").tool("put_item")
    props = tool.parameters["properties"]
    assert set(props) == {"id", "query_id", "X-Trace", "name"}  # readOnly id dropped; Authorization never asked
    assert tool.parameters["required"] == ["id"]
    assert tool.effect == "write"


def test_openapi30_schema_dialect_becomes_json_schema():
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {"/x": {"get": {"operationId": "x", "parameters": [
            {"name": "n", "in": "query", "schema": {"type": "integer", "nullable": True, "minimum": 0,
                                                   "exclusiveMinimum": True, "example": 3, "x-internal": 1}},
            {"name": "e", "in": "query", "schema": {"type": "string", "enum": ["a"], "nullable": True}},
        ]}}},
    }
    props = openapi_plugin(spec, name="t").tool("x").parameters["properties"]
    assert props["n"] == {"type": ["integer", "null"], "exclusiveMinimum": 0, "examples": [3]}
    assert props["e"] == {"type": ["string", "null"], "enum": ["a", None]}


# ---- pinning --------------------------------------------------------------------------------------------


def test_the_spec_is_pinned_at_add_time(tmp_path):
    source = tmp_path / "svc.json"
    doc = {"openapi": "3.0.3", "info": {"title": "svc", "version": "1"}, "servers": [{"url": BASE}],
           "paths": {"/a": {"get": {"operationId": "a"}}}}
    source.write_text(json.dumps(doc))
    spec, _ = load_source(str(source), guard_for({}))
    options = {"spec": str(source), **snapshot_spec("svc", spec, tmp_path)}
    assert (tmp_path / options["snapshot"]).is_file() and len(options["sha256"]) == 64
    doc["paths"]["/b"] = {"delete": {"operationId": "b"}}  # the file changes after it was added
    source.write_text(json.dumps(doc))
    assert [t.name for t in build_plugin("svc", options, tmp_path).tools] == ["a"]
    pinned = tmp_path / options["snapshot"]
    pinned.write_text(pinned.read_text().replace('"a"', '"evil"'))
    with pytest.raises(SpecError, match="changed since it was added"):
        build_plugin("svc", options, tmp_path)


def test_operations_allowlist():
    spec = OPENAPI / "swagger-petstore3/openapi.yaml"
    plugin = openapi_plugin(str(spec), name="pets", base_url=BASE, operations=["getPetById", "findPetsByStatus"])
    assert sorted(t.name for t in plugin.tools) == ["findPetsByStatus", "getPetById"]
    with pytest.raises(SpecError, match="no operation named nope"):
        openapi_plugin(str(spec), name="pets", base_url=BASE, operations=["nope"])


def test_a_relative_or_missing_server_needs_a_base_url():
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": "/api/v3"}], "paths": {}}
    with pytest.raises(SpecError, match="'/api/v3' is not absolute; give the full base URL with --base-url"):
        openapi_plugin(spec, name="t")
    with pytest.raises(SpecError, match="names no server URL; give the API's base URL with --base-url"):
        openapi_plugin({**spec, "servers": []}, name="t")
    with pytest.raises(SpecError, match="has no operations, so it would make a plugin without tools"):
        openapi_plugin(spec, name="t", base_url=BASE)
    assert len(openapi_plugin({**spec, "paths": {"/a": {"get": {}}}}, name="t", base_url=BASE).tools) == 1


def test_a_private_base_url_is_refused_at_import():
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "servers": [{"url": "http://169.254.169.254/latest"}], "paths": {"/a": {"get": {}}}}
    with pytest.raises(SpecError, match="cloud metadata"):
        openapi_plugin(spec, name="t")
    with pytest.raises(SpecError, match="--allow-private"):
        openapi_plugin(spec, name="t", base_url="http://127.0.0.1:8100")
    assert len(openapi_plugin(spec, name="t", base_url="http://127.0.0.1:8100", allow_private=True).tools) == 1


def test_keywords_that_break_json_schema_are_dropped_not_the_tool():
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": BASE}],
        "paths": {"/x": {"get": {"operationId": "x", "parameters": [
            {"name": "a", "in": "query", "schema": {"type": "integer", "minimum": "5", "examples": "one"}},
            {"name": "b", "in": "query", "schema": {"type": "string", "maxLength": -1, "pattern": "(unclosed"}},
        ]}}},
    }
    tool = openapi_plugin(spec, name="t").tool("x")
    assert tool.parameters["properties"] == {"a": {"type": "integer"}, "b": {"type": "string"}}
    Draft202012Validator.check_schema(tool.parameters)
