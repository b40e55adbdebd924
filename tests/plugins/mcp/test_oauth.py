"""OAuth 2.1 for remote MCP servers, end to end on loopback with real parts: an MCP server whose
authorization and resource server are the MCP SDK's own (tests/plugins/mcp/oauth_server.py), plugdeck's
login through a "browser" that follows the authorization address with httpx, tokens in an in-memory
keyring. Checked: the flow is the spec's (PKCE S256, resource indicator, dynamic registration), a tool
call works after the login, tokens are found in no file and no run record, an expired token is
refreshed, a forged `state` is refused, logout forgets, and a tool call never opens a browser."""

from __future__ import annotations

import json
from typing import Any

import keyring
import pytest
from typer.testing import CliRunner
from mock_openai import MockOpenAI
from oauth_agent import Browser, MemoryKeyring
from oauth_server import OAuthMCPServer, ScriptedServer

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


def kept(ring):
    """What the keyring holds besides secret_store's own list of names."""
    return {key: value for key, value in ring.entries.items() if not key[1].startswith("\x00")}


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

    result = await call_whoami(server.url)
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
    assert kept(memory_keyring) == {}
    assert server.provider.access == {}  # the code was never exchanged


async def call_whoami(url: str) -> Any:
    connection = MCPConnection(ServerSpec(name="guarded", url=url, oauth=True), connect_timeout=20)
    try:
        return await connection.call("whoami", {}, timeout=20)
    finally:
        await connection.close()


async def test_logout_forgets_and_a_tool_call_then_asks_for_a_login_without_a_browser(server, memory_keyring):
    await login("guarded", server.url, show=lambda text: None, open_url=Browser())
    assert forget("guarded", server.url) is True
    assert kept(memory_keyring) == {}
    assert not logged_in("guarded", server.url)
    assert forget("guarded", server.url) is False

    clients = len(server.provider.clients)
    with pytest.raises(ToolError, match="plugdeck mcp login guarded"):
        await call_whoami(server.url)
    assert len(server.provider.clients) == clients and kept(memory_keyring) == {}  # not even a registration


async def test_tokens_the_server_no_longer_accepts_ask_for_a_login_without_a_browser(server, memory_keyring):
    await login("guarded", server.url, show=lambda text: None, open_url=Browser())
    server.provider.access.clear()  # revoked at the server, refresh tokens too
    server.provider.refresh.clear()
    first = stored(memory_keyring, server.url)
    memory_keyring.entries[(SERVICE, f"guarded {server.url}")] = json.dumps(first | {"expires_at": 0})
    with pytest.raises(ToolError, match="plugdeck mcp login guarded"):
        await call_whoami(server.url)
    assert len(server.provider.authorize_requests) == 1  # the login's own; the tool call opened nothing


# ---- the commands a person runs ---------------------------------------------------------------------


def cli(*args):
    import typer
    from typer.testing import CliRunner

    from plugdeck.cli.mcp import add
    from plugdeck.cli.mcp_oauth import login_command, logout_command

    app = typer.Typer()
    app.command("add")(add)
    app.command("login")(login_command)
    app.command("logout")(logout_command)
    return CliRunner().invoke(app, list(args))


def test_the_commands_add_log_in_call_log_out(server, memory_keyring, monkeypatch, tmp_path):
    import asyncio

    from plugdeck.plugins import registry

    home = tmp_path / "data"
    monkeypatch.setenv("PLUGDECK_HOME", str(home))
    browser = Browser()
    monkeypatch.setattr("plugdeck.plugins.mcp.oauth._open_browser", browser)

    added = cli("add", "--name", "guarded", "--url", server.url, "--yes")
    assert added.exit_code == 0, added.output
    assert "asks you to log in (OAuth)" in added.output and browser.opened[0] in added.output
    assert "logged in to 'guarded'" in added.output and "approved 1 tool(s)" in added.output
    entry = registry.configured(home)["guarded"]
    assert entry["options"]["oauth"] is True

    async def call():
        plugin = registry.build("guarded", registry.configured(home)["guarded"], home)
        try:
            return await plugin.tool("whoami").call({})
        finally:
            await plugin.close()

    assert "with token" in str(asyncio.run(call()))
    tokens = stored(memory_keyring, server.url)["tokens"]
    for path in [p for p in home.rglob("*") if p.is_file()]:  # the registry, the config: no token
        assert tokens["access_token"].encode() not in path.read_bytes(), path

    logged_out = cli("logout", "guarded")
    assert logged_out.exit_code == 0 and "forgot the login" in logged_out.output
    assert kept(memory_keyring) == {}
    with pytest.raises(ToolError, match="plugdeck mcp login guarded"):
        asyncio.run(call())

    again = cli("login", "guarded")
    assert again.exit_code == 0, again.output
    assert len(browser.opened) == 2
    assert "with token" in str(asyncio.run(call()))

    from plugdeck.cli.main import app

    removed = CliRunner().invoke(app, ["plugins", "remove", "guarded"])
    assert removed.exit_code == 0, removed.output
    assert kept(memory_keyring) == {}  # the login went with the plugin


# ---- where the flow may go (R15) -----------------------------------------------------------------


def challenge(resource_metadata: str):
    """An MCP endpoint that answers everything with 401, naming its OAuth metadata at `resource_metadata`."""
    header = {"WWW-Authenticate": f'Bearer resource_metadata="{resource_metadata}"'}
    return lambda method, path, base, body: (401, {}, header)


@pytest.mark.parametrize("where", ["http://127.0.0.1:{port}/meta", "https://127.0.0.1:{port}/meta",
                                   "https://0x7f.1:{port}/meta", "https://169.254.169.254/latest/meta-data/"])
async def test_the_oauth_discovery_cannot_be_sent_elsewhere(where, memory_keyring):
    from canary import Canary

    with Canary() as canary:
        browser = Browser()
        with ScriptedServer(challenge(where.format(port=canary.port))) as server:
            with pytest.raises((OAuthLoginFailed, ToolError)) as caught:
                await login("evil", server.url, show=lambda text: None, open_url=browser, timeout=10)
        assert "refused to follow its OAuth discovery" in str(caught.value)
        assert canary.connections == 0 and browser.opened == [] and kept(memory_keyring) == {}


def without_pkce(method, path, base, body):
    """Same-origin discovery that works in every other way, but the metadata names no PKCE method."""
    if path == "/.well-known/oauth-protected-resource/mcp":
        return 200, {"resource": f"{base}/mcp", "authorization_servers": [base]}, {}
    if path == "/.well-known/oauth-authorization-server":
        return 200, {"issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
                     "registration_endpoint": f"{base}/register", "response_types_supported": ["code"]}, {}
    if path == "/register":
        return 201, {**body, "client_id": "c1"}, {}
    if method == "GET":
        return 404, {}, {}
    return challenge(f"{base}/.well-known/oauth-protected-resource/mcp")(method, path, base, body)


async def test_an_authorization_server_without_s256_pkce_is_not_logged_in_to(memory_keyring):
    browser = Browser()
    with ScriptedServer(without_pkce) as server:
        with pytest.raises((OAuthLoginFailed, ToolError), match="PKCE"):
            await login("nopkce", server.url, show=lambda text: None, open_url=browser, timeout=10)
    assert browser.opened == [] and kept(memory_keyring) == {}


async def test_without_a_usable_keyring_the_login_stops_before_the_browser(server):
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    browser = Browser()
    try:
        with pytest.raises(OAuthLoginFailed, match="PYTHON_KEYRING_BACKEND"):
            await login("guarded", server.url, show=lambda text: None, open_url=browser)
    finally:
        keyring.set_keyring(before)
    assert browser.opened == [] and server.provider.clients == {}


async def test_no_login_over_plain_http_to_another_machine(memory_keyring):
    browser = Browser()
    with pytest.raises(OAuthLoginFailed, match="only over https"):
        await login("far", "http://mcp.example.com/mcp", show=lambda text: None, open_url=browser)
    assert browser.opened == [] and kept(memory_keyring) == {}


def bearer_only(publishes_metadata: bool):
    """401 `Bearer` without naming any metadata; the well-known metadata there or not."""
    def route(method, path, base, body):
        if method == "POST":
            return 401, {}, {"WWW-Authenticate": "Bearer"}
        if publishes_metadata and path == "/.well-known/oauth-protected-resource/mcp":
            return 200, {"resource": f"{base}/mcp", "authorization_servers": [base]}, {}
        return 404, {}, {}

    return route


async def test_a_bare_401_is_no_oauth_unless_the_server_publishes_its_metadata(server):
    """A server that wants a key of its own (plugdeck's own `mcp serve` with keys) says `Bearer` and
    publishes no OAuth metadata: `plugins add` must not start a login for it."""
    with ScriptedServer(bearer_only(False)) as keyed:
        assert await needs_oauth(keyed.url) is False
    with ScriptedServer(bearer_only(True)) as oauth:
        assert await needs_oauth(oauth.url) is True
    assert await needs_oauth(server.url) is True  # names its metadata in the challenge
