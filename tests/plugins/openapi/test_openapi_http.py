"""Requests are built exactly (method, path, query, headers, cookies, body), credentials land where
each security scheme says and nowhere else, and answers are cut to a budget with a note. All against
a real HTTP server on loopback that records what it received."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qsl

import pytest
from shared_fixtures import FIXTURES

from plugdeck.plugins.openapi import guard_for, load_source, openapi_plugin, prepare
from plugdeck.plugins.openapi.spec import from_document
from plugdeck.tools import ToolError

STYLES = FIXTURES / "openapi/readme-oas-examples/3.0/parameters-style.json"
SECURITY = FIXTURES / "openapi/readme-oas-examples/3.0/security.json"
PRIMITIVE, ARRAY, OBJECT = "5", ["3", "4", "5"], {"role": "admin", "firstName": "Alex"}


def styles_plugin(server):
    return openapi_plugin(str(STYLES), name="styles", base_url=server.url, allow_private=["127.0.0.1"])


# ---- parameter styles, checked against the OpenAPI specification's style table --------------------------


@pytest.mark.parametrize("tool, target", [
    ("paths_standard", "/anything/path/5/3,4,5/role,admin,firstName,Alex"),
    ("paths_simple_exploded", "/anything/path/simple/5/3,4,5/role=admin,firstName=Alex"),
    ("paths_label_nonExploded", "/anything/path/label/.5/.3,4,5/.role,admin,firstName,Alex"),
    ("paths_label_exploded", "/anything/path/label/.5/.3.4.5/.role=admin.firstName=Alex"),
    ("paths_matrix_nonExploded", "/anything/path/matrix/;primitive=5/;array=3,4,5/;object=role,admin,firstName,Alex"),
    ("paths_matrix_exploded", "/anything/path/matrix/;primitive=5/;array=3;array=4;array=5/;role=admin;firstName=Alex"),
    ("query_standard", "/anything/query?primitive=5&array=3&array=4&array=5&role=admin&firstName=Alex"),
    ("query_form_nonExploded", "/anything/query/form?primitive=5&array=3,4,5&object=role,admin,firstName,Alex"),
    ("query_spaceDelimited_nonExploded", "/anything/query/spaceDelimited?array=3%204%205&object=role%20admin%20firstName%20Alex"),
    ("query_pipeDelimited_nonExploded", "/anything/query/pipeDelimited?array=3|4|5&object=role|admin|firstName|Alex"),
    ("query_deepObject_nonExploded", "/anything/query/deepObject?object[role]=admin&object[firstName]=Alex"),
])
async def test_path_and_query_styles_are_exact(server, tool, target):
    plugin = styles_plugin(server)
    t = plugin.tool(tool)
    arguments = {k: v for k, v in {"primitive": PRIMITIVE, "array": ARRAY, "object": OBJECT}.items()
                 if k in t.parameters["properties"]}
    await t.call(arguments)
    assert server.requests[-1].target == target


async def test_header_styles(server):
    plugin = styles_plugin(server)
    await plugin.tool("headers_simple_nonExploded").call({"primitive": "5", "array": ARRAY, "object": OBJECT})
    seen = server.requests[-1].headers
    assert (seen["primitive"], seen["array"], seen["object"]) == ("5", "3,4,5", "role,admin,firstName,Alex")
    await plugin.tool("headers_simple_exploded").call({"object": OBJECT})
    assert server.requests[-1].headers["object"] == "role=admin,firstName=Alex"
    with pytest.raises(ToolError, match="line breaks"):
        await plugin.tool("headers_standard").call({"primitive": "1\r\nX-Injected: yes"})


async def test_cookies_and_the_fragment_in_a_path(server):
    plugin = styles_plugin(server)
    await plugin.tool("cookies_form_exploded").call({"primitive": "a b", "array": ["1", "2"]})
    seen = server.requests[-1]
    assert seen.target == "/cookies"  # "/cookies#formExploded" names the operation; the fragment is not sent
    assert seen.headers["cookie"] == "primitive=a%20b; array=1,2"


async def test_path_values_cannot_climb_out_of_their_segment(server):
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url + "/api"}],
            "paths": {"/files/{name}": {"get": {"operationId": "get_file", "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "q", "in": "query", "schema": {"type": "string"}}]}}}}
    plugin = openapi_plugin(spec, name="t", allow_private=["127.0.0.1"])
    await plugin.tool("get_file").call({"name": "../../admin?x=1#y", "q": "a&b=c d/é"})
    assert server.requests[-1].target == "/api/files/..%2F..%2Fadmin%3Fx%3D1%23y?q=a%26b%3Dc%20d%2F%C3%A9"
    await plugin.tool("get_file").call({"name": ".."})
    assert server.requests[-1].target == "/api/files/%2E%2E"


async def test_json_body_flattened_and_nested(server):
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
        "paths": {
            "/orders/{shop}": {"post": {
                "operationId": "order",
                "parameters": [{"name": "shop", "in": "path", "required": True, "schema": {"type": "string"}},
                               {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"type": "string"}}, "note": {"type": "string"}}}}}},
            }},
            "/tags": {"put": {"operationId": "set_tags", "requestBody": {"content": {"application/json": {
                "schema": {"type": "array", "items": {"type": "string"}}}}}}},
        },
    }
    plugin = openapi_plugin(spec, name="t", allow_private=["127.0.0.1"])
    result = await plugin.tool("order").call({"shop": "main st", "dry_run": False, "items": ["a", "b"]})
    seen = server.requests[-1]
    assert (seen.method, seen.target) == ("POST", "/orders/main%20st?dry_run=false")
    assert json.loads(seen.body) == {"items": ["a", "b"]}
    assert seen.headers["content-type"] == "application/json"
    assert result["status"] == 200 and result["body"]["method"] == "POST"
    await plugin.tool("set_tags").call({"body": ["x", "y"]})
    assert (server.requests[-1].method, json.loads(server.requests[-1].body)) == ("PUT", ["x", "y"])
    await plugin.tool("set_tags").call({})  # optional body left out: none sent
    assert server.requests[-1].body == b"" and "content-type" not in server.requests[-1].headers
    with pytest.raises(ToolError, match="invalid arguments"):
        await plugin.tool("order").call({"shop": "x", "items": ["a"], "unexpected": 1})


async def test_form_and_multipart_bodies(server):
    spec, _ = load_source(str(FIXTURES / "openapi/readme-oas-examples/3.0/file-uploads.json"), guard_for({}))
    plugin = openapi_plugin(spec.document, name="up", base_url=server.url, allow_private=["127.0.0.1"])
    await plugin.tool("post_anything_multipart_formdata").call(
        {"body": {"orderId": 7, "userId": 9, "documentFile": "hello"}})
    seen = server.requests[-1]
    boundary = re.search(r"boundary=(\w+)", seen.headers["content-type"]).group(1)
    parts = seen.body.decode().split(f"--{boundary}")
    assert 'name="orderId"' in parts[1] and parts[1].rstrip().endswith("7")
    assert 'name="documentFile"; filename="documentFile"' in parts[3] and "hello" in parts[3]
    assert parts[-1].strip() == "--"
    form_spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
                 "paths": {"/login": {"post": {"operationId": "login", "requestBody": {"required": True, "content": {
                     "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                         "user": {"type": "string"}, "scope": {"type": "array", "items": {"type": "string"}}}}}}}}}}}
    form = openapi_plugin(form_spec, name="f", allow_private=["127.0.0.1"])
    await form.tool("login").call({"user": "ada lovelace", "scope": ["a", "b"]})
    seen = server.requests[-1]
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(seen.body.decode()) == [("user", "ada lovelace"), ("scope", "a"), ("scope", "b")]


# ---- answers ------------------------------------------------------------------------------------------


def _tiny(server, **options):
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
            "paths": {"/big": {"get": {"operationId": "big"}, "head": {"operationId": "peek"}},
                      "/text": {"get": {"operationId": "text"}}}}
    return openapi_plugin(spec, name="t", allow_private=["127.0.0.1"], **options)


async def test_long_answers_are_truncated_with_a_note(server):
    server.route("GET", "/big", {"rows": [{"n": i, "text": "x" * 50} for i in range(2000)]})
    result = await _tiny(server, response_budget=1000).tool("big").call({})
    assert isinstance(result["body"], str) and len(result["body"]) == 1000
    assert re.search(r"response truncated: showing the first 1000 of \d+ characters", result["note"])
    full = await _tiny(server, response_budget=10_000_000).tool("big").call({})
    assert len(full["body"]["rows"]) == 2000 and "note" not in full


async def test_the_byte_cap_stops_reading(server):
    server.route("GET", "/text", (200, {"Content-Type": "text/plain"}, b"y" * 300_000))
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
           "paths": {"/text": {"get": {"operationId": "text"}}}}
    result = await openapi_plugin(doc, name="t", allow_private=["127.0.0.1"]).tool("text").call({})
    assert len(result["body"]) == 12_000 and "truncated" in result["note"]  # the default budget
    capped = prepare("t", {"allow_private": ["127.0.0.1"], "max_response_bytes": 1000},
                     spec=from_document(doc, "inline")).plugin()
    result = await capped.tool("text").call({})
    assert result["body"] == "y" * 1000 and "larger than 1000 bytes" in result["note"]


async def test_head_and_errors(server):
    server.route("HEAD", "/big", (200, {"Content-Type": "application/json", "ETag": '"v1"'}, b""))
    result = await _tiny(server).tool("peek").call({})
    assert result == {"status": 200, "headers": {"content-type": "application/json", "etag": '"v1"', "content-length": "0"}}
    server.route("GET", "/big", (404, {"Content-Type": "application/json"}, b'{"error": "gone"}'))
    with pytest.raises(ToolError) as caught:
        await _tiny(server).tool("big").call({})
    assert caught.value.kind == "http_error" and "HTTP 404" in caught.value.message and "gone" in caught.value.message


async def test_an_unreachable_service_is_a_clear_error(canary):
    port = canary.port
    canary.close()  # nothing listens there now
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": f"http://127.0.0.1:{port}"}],
            "paths": {"/a": {"get": {"operationId": "a"}}}}
    with pytest.raises(ToolError) as caught:
        await openapi_plugin(spec, name="t", allow_private=["127.0.0.1"]).tool("a").call({})
    assert caught.value.kind == "network" and f"127.0.0.1:{port}" in caught.value.message


# ---- auth placement (the readme security fixture, every scheme) --------------------------------------


SECRETS = {"KEY_Q": "query-key-123", "KEY_C": "cookie-key-456", "KEY_H": "header-key-789", "TOKEN": "bearer-tok-abc",
           "USER": "ada", "PASSWORD": "pa:ss word", "CLIENT_ID": "client-1", "CLIENT_SECRET": "client-secret-xyz"}


@pytest.fixture
def secrets_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def security_plugin(server, **auth):
    spec, _ = load_source(str(SECURITY), guard_for({}))
    document = json.loads(json.dumps(spec.document))
    flows = document["components"]["securitySchemes"]["oauth2_clientCredentials"]["flows"]
    flows["clientCredentials"]["tokenUrl"] = "/oauth/token"  # the token endpoint on the same local server
    return openapi_plugin(document, name="sec", base_url=server.url, allow_private=["127.0.0.1"], auth=auth)


ALL_AUTH = {
    "apiKey_query": {"env": "KEY_Q"}, "apiKey_cookie": {"env": "KEY_C"}, "apiKey_header": {"env": "KEY_H"},
    "bearer": {"env": "TOKEN"}, "bearer_jwt": {"env": "TOKEN"},
    "basic": {"username_env": "USER", "password_env": "PASSWORD"},
    "oauth2_clientCredentials": {"client_id_env": "CLIENT_ID", "client_secret_env": "CLIENT_SECRET"},
}


async def test_api_keys_land_in_query_cookie_and_header(server, secrets_env):
    plugin = security_plugin(server, **ALL_AUTH)
    await plugin.tool("get_anything_apiKey").call({})
    assert server.requests[-1].query == [("apiKey", "query-key-123")]
    assert "cookie" not in server.requests[-1].headers and "x-api-key" not in server.requests[-1].headers
    await plugin.tool("post_anything_apiKey").call({})
    assert server.requests[-1].headers["cookie"] == "api_key=cookie-key-456" and server.requests[-1].query == []
    await plugin.tool("put_anything_apiKey").call({})
    assert server.requests[-1].headers["x-api-key"] == "header-key-789"


async def test_bearer_and_basic(server, secrets_env):
    plugin = security_plugin(server, **ALL_AUTH)
    await plugin.tool("post_anything_bearer").call({})
    assert server.requests[-1].headers["authorization"] == "Bearer bearer-tok-abc"
    await plugin.tool("post_anything_basic").call({})
    encoded = server.requests[-1].headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == "ada:pa:ss word"
    await plugin.tool("post_anything_no_auth").call({})
    assert "authorization" not in server.requests[-1].headers


async def test_oauth2_client_credentials_token_is_fetched_once_and_used(server, secrets_env):
    server.route("POST", "/oauth/token", lambda seen: (200, {"Content-Type": "application/json"}, json.dumps(
        {"access_token": "issued-token-1", "token_type": "Bearer", "expires_in": 3600}).encode()))
    plugin = security_plugin(server, **ALL_AUTH)
    await plugin.tool("put_anything_oauth2").call({})
    await plugin.tool("put_anything_oauth2").call({})
    token_requests = [r for r in server.requests if r.path == "/oauth/token"]
    assert len(token_requests) == 1
    token_request = token_requests[0]
    assert parse_qsl(token_request.body.decode()) == [("grant_type", "client_credentials"), ("scope", "write:things")]
    client = base64.b64decode(token_request.headers["authorization"].removeprefix("Basic ")).decode()
    assert client == "client-1:client-secret-xyz"
    api_calls = [r for r in server.requests if r.path == "/anything/oauth2"]
    assert [r.headers["authorization"] for r in api_calls] == ["Bearer issued-token-1"] * 2


async def test_a_failing_token_endpoint_is_reported_without_secrets(server, secrets_env):
    server.route("POST", "/oauth/token", (401, {"Content-Type": "application/json"},
                                          b'{"error": "invalid_client", "echo": "client-secret-xyz"}'))
    with pytest.raises(ToolError) as caught:
        await security_plugin(server, **ALL_AUTH).tool("put_anything_oauth2").call({})
    assert caught.value.kind == "auth" and "HTTP 401" in caught.value.message and "invalid_client" in caught.value.message
    assert "client-secret-xyz" not in caught.value.message


async def test_optional_auth_and_missing_configuration(server, secrets_env):
    anonymous = security_plugin(server)
    await anonymous.tool("get_anything_optional_auth").call({})
    assert server.requests[-1].query == []
    keyed = security_plugin(server, apiKey_query={"env": "KEY_Q"})
    await keyed.tool("get_anything_optional_auth").call({})
    assert server.requests[-1].query == [("apiKey", "query-key-123")]
    server.route("POST", "/status/401", (401, {"Content-Type": "application/json"}, b"{}"))
    with pytest.raises(ToolError, match="apiKey_header.*--auth SCHEME=ENVVAR"):
        await anonymous.tool("post_status_401").call({})


async def test_an_unset_variable_is_named_not_guessed(server, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    plugin = security_plugin(server, bearer={"env": "NOT_SET_ANYWHERE"})
    with pytest.raises(ToolError, match="environment variable NOT_SET_ANYWHERE") as caught:
        await plugin.tool("post_anything_bearer").call({})
    assert caught.value.kind == "auth" and server.requests == []


async def test_secrets_never_reach_schemas_results_or_errors(server, secrets_env):
    plugin = security_plugin(server, **ALL_AUTH)
    schemas = json.dumps([t.parameters for t in plugin.tools]) + json.dumps(plugin.manifest())
    results = []
    for name in ("get_anything_apiKey", "post_anything_apiKey", "put_anything_apiKey", "post_anything_bearer",
                 "post_anything_basic"):
        results.append(json.dumps(await plugin.tool(name).call({})))  # the server echoes what it received
    server.route("POST", "/status/401", lambda seen: (401, {"Content-Type": "application/json"},
                                                      json.dumps(seen.to_json()).encode()))
    with pytest.raises(ToolError) as caught:
        await plugin.tool("post_status_401").call({})
    seen_everything = schemas + "".join(results) + caught.value.message
    assert "[redacted]" in "".join(results) and "[redacted]" in caught.value.message
    encoded_basic = base64.b64encode(b"ada:pa:ss word").decode()
    for secret in [*SECRETS.values(), encoded_basic, "pa%3Ass%20word"]:
        if secret not in ("ada",):  # a user name is not a secret
            assert secret not in seen_everything, secret
    assert plugin.needs["secrets"] == sorted({"KEY_Q", "KEY_C", "KEY_H", "TOKEN", "USER", "PASSWORD",
                                              "CLIENT_ID", "CLIENT_SECRET"})


async def test_credentials_stay_on_the_pinned_origin_across_redirects(server, secrets_env):
    """127.0.0.1 and localhost are different origins (same server here): the redirect hop gets no key."""
    other = f"http://localhost:{server.port}/elsewhere"
    server.route("PUT", "/anything/apiKey", (307, {"Location": other}, b""))
    spec, _ = load_source(str(SECURITY), guard_for({}))
    plugin = openapi_plugin(spec.document, name="sec", base_url=server.url, allow_private=["127.0.0.1", f"localhost:{server.port}"],
                            auth={"apiKey_header": {"env": "KEY_H"}, "apiKey_query": {"env": "KEY_Q"}})
    result = await plugin.tool("put_anything_apiKey").call({})
    first, second = server.requests[-2:]
    assert first.headers["x-api-key"] == "header-key-789"
    assert second.target == "/elsewhere" and second.method == "PUT"
    assert second.headers["host"] == f"localhost:{server.port}" and "x-api-key" not in second.headers
    assert result["body"]["target"] == "/elsewhere"
    server.route("GET", "/anything/apiKey", (302, {"Location": "/anything/final"}, b""))
    await plugin.tool("get_anything_apiKey").call({})
    assert server.requests[-1].target == "/anything/final?apiKey=query-key-123"  # same origin: key kept
