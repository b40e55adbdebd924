"""Legacy ChatGPT plugin manifests (ai-plugin.json) import: their OpenAPI spec becomes tools and
their auth description becomes a security scheme that plugdeck's auth options fill."""

from __future__ import annotations

import pytest
from shared_fixtures import FIXTURES

from plugdeck.plugins.openapi import SpecError, guard_for, load_source, openapi_plugin, prepare
from plugdeck.plugins.openapi.operations import count_operations

PLUGINS = FIXTURES / "chatgpt-plugins"
WITH_SPEC = ["plugins-quickstart", "retrieval-plugin/local_server", "retrieval-plugin/memory",
             "retrieval-plugin/well-known"]
WITHOUT_SPEC = ["retrieval-plugin/auth-no-auth", "retrieval-plugin/auth-oauth", "retrieval-plugin/auth-service-http",
                "retrieval-plugin/auth-user-http"]
RETRIEVAL_SPEC = PLUGINS / "retrieval-plugin/well-known/openapi.yaml"


def test_every_manifest_is_covered():
    found = sorted(str(p.parent.relative_to(PLUGINS)) for p in PLUGINS.rglob("ai-plugin.json"))
    assert found == sorted(WITH_SPEC + WITHOUT_SPEC)


@pytest.mark.parametrize("folder", WITH_SPEC)
def test_manifests_with_their_spec_beside_them_import(folder):
    guard = guard_for({"allow_private": True})
    spec, manifest = load_source(str(PLUGINS / folder / "ai-plugin.json"), guard)
    prepared = prepare(manifest.name, {"allow_private": True}, spec=spec, guard=guard)
    plugin = prepared.plugin()
    assert len(plugin.tools) == count_operations(spec) > 0 and prepared.skipped == []
    assert plugin.name == manifest.name and manifest.description in plugin.description


def test_the_quickstart_todo_plugin():
    plugin = openapi_plugin(str(PLUGINS / "plugins-quickstart/ai-plugin.json"), allow_private=True)
    assert plugin.name == "todo"
    assert {t.name: t.effect for t in plugin.tools} == {"getTodos": "read", "addTodo": "write", "deleteTodo": "write"}


@pytest.mark.parametrize("folder", WITHOUT_SPEC)
def test_a_manifest_whose_spec_cannot_be_read_says_what_to_do(folder):
    with pytest.raises(SpecError) as caught:
        load_source(str(PLUGINS / folder / "ai-plugin.json"), guard_for({}))
    message = str(caught.value)
    assert "https://your-app-url.com/.well-known/openapi.yaml" in message and "--openapi FILE" in message


@pytest.mark.parametrize("folder, scheme, expected", [
    ("auth-no-auth", None, None),
    ("auth-service-http", "service_http", {"type": "http", "scheme": "bearer"}),
    ("auth-user-http", "user_http", {"type": "http", "scheme": "bearer"}),
    ("auth-oauth", "oauth", {"type": "oauth2"}),
])
def test_manifest_auth_becomes_a_security_scheme(folder, scheme, expected):
    spec, _ = load_source(str(PLUGINS / "retrieval-plugin" / folder / "ai-plugin.json"), guard_for({}),
                          openapi=str(RETRIEVAL_SPEC))
    schemes = (spec.document.get("components") or {}).get("securitySchemes") or {}
    if scheme is None:
        assert "security" not in spec.document or spec.document["security"] == []
        return
    assert expected.items() <= schemes[scheme].items()
    assert spec.document["security"] == [{scheme: []}]
    if scheme == "oauth":
        flow = schemes["oauth"]["flows"]["authorizationCode"]
        assert flow["scopes"] == {"search:read": ""} and "oauth.v2.access" in flow["tokenUrl"]


async def test_manifest_auth_is_sent_to_the_service(server, monkeypatch):
    monkeypatch.setenv("RETRIEVAL_TOKEN", "tok-from-env-123")
    spec, _ = load_source(str(PLUGINS / "retrieval-plugin/auth-user-http/ai-plugin.json"), guard_for({}),
                          openapi=str(RETRIEVAL_SPEC))
    plugin = openapi_plugin(spec.document, name="retrieval", base_url=server.url, allow_private=["127.0.0.1"],
                            auth={"user_http": {"env": "RETRIEVAL_TOKEN"}})
    tool = plugin.tools[0]
    await tool.call({"queries": [{"query": "what did I write about pizza?"}]})
    seen = server.requests[-1]
    assert seen.method == "POST" and seen.path == "/query"
    assert seen.headers["authorization"] == "Bearer tok-from-env-123"


def test_an_oauth_manifest_takes_a_ready_token_not_a_client_secret():
    spec, _ = load_source(str(PLUGINS / "retrieval-plugin/auth-oauth/ai-plugin.json"), guard_for({}),
                          openapi=str(RETRIEVAL_SPEC))
    from plugdeck.plugins.openapi import AuthError

    with pytest.raises(AuthError, match="token_env"):
        openapi_plugin(spec.document, name="r", base_url="https://api.example.com",
                       auth={"oauth": {"client_id_env": "A", "client_secret_env": "B"}})
    plugin = openapi_plugin(spec.document, name="r", base_url="https://api.example.com",
                            auth={"oauth": {"token_env": "OAUTH_TOKEN"}})
    assert plugin.needs["secrets"] == ["OAUTH_TOKEN"]
