"""OAuth 2.1 for remote MCP servers, end to end on loopback with real parts: an MCP server whose
authorization and resource server are the MCP SDK's own (tests/plugins/mcp/oauth_server.py), plugdeck's
login through a "browser" that follows the authorization address with httpx, tokens in an in-memory
keyring. Checked: the flow is the spec's (PKCE S256, resource indicator, dynamic registration), a tool
call works after the login, tokens are found in no file and no run record, an expired token is
refreshed, a forged `state` is refused, logout forgets, and a tool call never opens a browser."""

from __future__ import annotations

import json

import keyring
import pytest
from mock_openai import MockOpenAI
from oauth_agent import Browser, MemoryKeyring
from oauth_server import OAuthMCPServer

from plugdeck import Agent, RunStore
from plugdeck.models.openai import OpenAIModel
from plugdeck.plugins.mcp import build_plugin
from plugdeck.plugins.mcp.client import MCPConnection, ServerSpec
from plugdeck.plugins.mcp.oauth import SERVICE, OAuthLoginFailed, forget, logged_in, login, needs_oauth
from plugdeck.plugins.mcp.pinning import approve
from plugdeck.redaction import SECRETS
from plugdeck.tools import ToolError


@pytest.fixture
def memory_keyring():
    before = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(before)


@pytest.fixture
def server():
    with OAuthMCPServer() as running:
        yield running
    for token in [*running.provider.access, *running.provider.refresh]:
        SECRETS.forget(token)  # the redactor is process-wide: leave it as it was


def stored(ring: MemoryKeyring, url: str, name: str = "guarded") -> dict:
    return json.loads(ring.entries[(SERVICE, f"{name} {url}")])


async def test_login_follows_the_spec_and_keeps_the_tokens_in_the_keyring(server, memory_keyring):
    assert await needs_oauth(server.url)
    browser = Browser()
    shown: list[str] = []
    tools, info = await login("guarded", server.url, show=shown.append, open_url=browser)
    browser.join()
    assert set(tools) == {"whoami"} and info["name"] == "guarded"
    assert browser.pages[0].status_code == 200 and "logged in" in browser.pages[0].text
    assert browser.opened[0] in shown[0]  # the address is printed for when no browser opens

    (request,) = server.provider.authorize_requests
    assert request.resource == server.url  # RFC 8707: the token is for this server only
    assert len(request.code_challenge) == 43  # S256 of the verifier (the SDK's token handler checks it)
    (client,) = server.provider.clients.values()  # registered dynamically, as a public client
    assert client.token_endpoint_auth_method == "none"
    assert str(client.redirect_uris[0]).startswith("http://127.0.0.1:")

    entry = stored(memory_keyring, server.url)
    assert entry["tokens"]["access_token"] in server.provider.access
    assert entry["tokens"]["refresh_token"] in server.provider.refresh
    assert logged_in("guarded", server.url)


async def test_a_tool_call_after_login_works_and_no_token_is_kept_anywhere_else(server, memory_keyring, tmp_path):
    home = tmp_path / "data"
    home.mkdir()
    tools, info = await login("guarded", server.url, show=lambda text: None, open_url=Browser())
    plugin = build_plugin("guarded", approve({"url": server.url, "oauth": True, "server_info": info}, tools), home)
    store = RunStore(home / "runs.db")
    turns = [{"tool_calls": [{"name": "whoami", "arguments": {}}]}, "Done."]
    try:
        with MockOpenAI(turns) as model_server:
            model = OpenAIModel("mock-model", model_server.base_url, max_retries=0)
            agent = Agent(model, [plugin], sinks=[store.record], confirm=lambda action: True)
            result = await agent.run("Who am I?")
            requests = json.dumps(model_server.requests)
            await model.aclose()
    finally:
        await plugin.close()
        store.close()
    assert result.status == "ok", result.error
    assert "client " in requests and "with token" in requests  # the tool ran, on the server's side

    entry = stored(memory_keyring, server.url)
    tokens = [entry["tokens"]["access_token"], entry["tokens"]["refresh_token"]]
    assert entry["tokens"]["access_token"] in server.provider.seen_bearers  # it was the one sent
    files = [path for path in home.rglob("*") if path.is_file()]
    assert files, "the run store wrote nothing"
    for path in files:
        content = path.read_bytes()
        for token in tokens:
            assert token.encode() not in content, f"a token is in {path}"
    for token in tokens:
        assert token not in requests  # the server echoed it; the model never saw it


async def test_an_expired_token_is_refreshed_without_a_browser(server, memory_keyring):
    await login("guarded", server.url, show=lambda text: None, open_url=Browser())
    first = stored(memory_keyring, server.url)
    server.provider.expire_access_tokens()  # time passes, at the server ...
    entry = first | {"expires_at": first["expires_at"] - 7200}  # ... and in the keyring
    memory_keyring.entries[(SERVICE, f"guarded {server.url}")] = json.dumps(entry)

    connection = MCPConnection(ServerSpec(name="guarded", url=server.url, oauth=True))
    try:
        result = await connection.call("whoami", {}, timeout=20)
    finally:
        await connection.close()
    assert result.content[0].text.startswith("client ")
    assert server.provider.refreshes == 1
    second = stored(memory_keyring, server.url)
    assert second["tokens"]["access_token"] != first["tokens"]["access_token"]
    assert second["tokens"]["refresh_token"] != first["tokens"]["refresh_token"]  # rotated, and kept
    assert second["expires_at"] > first["expires_at"] - 7200


async def test_a_forged_state_is_refused_and_nothing_is_stored(server, memory_keyring):
    browser = Browser(tamper_state=True)
    with pytest.raises(OAuthLoginFailed, match="state"):
        await login("guarded", server.url, show=lambda text: None, open_url=browser)
    browser.join()
    assert browser.pages[0].status_code == 400
    assert memory_keyring.entries == {}
    assert server.provider.access == {}  # the code was never exchanged


async def test_logout_forgets_and_a_tool_call_then_asks_for_a_login_without_a_browser(server, memory_keyring):
    await login("guarded", server.url, show=lambda text: None, open_url=Browser())
    assert forget("guarded", server.url) is True
    assert memory_keyring.entries == {}
    assert not logged_in("guarded", server.url)
    assert forget("guarded", server.url) is False

    authorize_requests = len(server.provider.authorize_requests)
    connection = MCPConnection(ServerSpec(name="guarded", url=server.url, oauth=True), connect_timeout=20)
    try:
        with pytest.raises(ToolError) as caught:
            await connection.call("whoami", {}, timeout=20)
    finally:
        await connection.close()
    assert "plugdeck mcp login guarded" in caught.value.message
    assert len(server.provider.authorize_requests) == authorize_requests  # no browser, no authorization
