"""OAuth 2.1 for remote MCP servers, done by the MCP SDK's client (`mcp.client.auth`).

The SDK runs the flow the MCP authorization spec asks for: protected resource metadata found from
the server's 401, authorization server metadata, dynamic client registration, S256 PKCE, the
`state` check, the RFC 8707 resource indicator, and refreshing expired tokens. plugdeck adds what
is its own to decide:

- where tokens live: the system keyring (`keyring`), one entry per server name and URL, never a
  file under PLUGDECK_HOME; every token read or written is registered with the redactor, so no
  trace, run record or error message can carry one;
- the browser step: `login` opens the authorization URL (or prints it) and waits for the code on a
  loopback redirect (127.0.0.1, a random port) that refuses a response whose `state` is not the
  one just sent;
- where the flow may go (R15): every request it makes goes to the MCP server's own origin, or over
  https to a public address; a server cannot point the discovery at a private address or the
  cloud metadata endpoint;
- when: a tool call never opens a browser. Without a usable token it fails with the command to
  run (`plugdeck mcp login NAME`).
"""

from __future__ import annotations

import asyncio
import html
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, AsyncGenerator, Awaitable, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from ... import secret_store
from ...errors import UserError
from ...redaction import register_secret

SERVICE = "plugdeck-oauth"  # the keyring service (as secret_store.py names it); the account is "NAME URL"
LOGIN_TIMEOUT = 300.0  # seconds a person has to finish logging in


class OAuthLoginNeeded(UserError):
    """The server wants a login and this is no moment to ask for one (a tool call, a script)."""


class OAuthLoginFailed(UserError):
    """The login did not finish: refused, abandoned, a wrong state, no keyring to keep the tokens."""


# ---- the tokens, in the keyring ---------------------------------------------------------------------


class KeyringTokenStorage:
    """The SDK's `TokenStorage` over the system keyring: tokens, the registered client, and when the
    access token expires (the SDK's `expires_in` means nothing once the process that got it is gone).

    `staged` keeps writes in memory until `save()`, so that a login that fails leaves the tokens
    that worked before it in place.
    """

    def __init__(self, name: str, url: str, *, staged: bool = False):
        self.account = f"{name} {url}"
        self.staged = staged
        self._data: dict[str, Any] = {} if staged else self._read()
        self._note_secrets()

    # The SDK's TokenStorage protocol.
    async def get_tokens(self) -> Any:
        from mcp.shared.auth import OAuthToken

        tokens = self._data.get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: Any) -> None:
        self._data["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        self._data["expires_at"] = time.time() + int(tokens.expires_in) if tokens.expires_in is not None else None
        self._changed()

    async def get_client_info(self) -> Any:
        from mcp.shared.auth import OAuthClientInformationFull

        client = self._data.get("client")
        return OAuthClientInformationFull.model_validate(client) if client else None

    async def set_client_info(self, client_info: Any) -> None:
        self._data["client"] = client_info.model_dump(mode="json", exclude_none=True)
        self._changed()

    # plugdeck's own.
    @property
    def expires_at(self) -> float | None:
        return self._data.get("expires_at")

    def has_tokens(self) -> bool:
        return bool(self._data.get("tokens"))

    def save(self) -> None:
        self.staged = False
        self._write()

    def forget(self) -> bool:
        """Delete this server's entry; whether there was one."""
        self._data = {}
        with _keyring_errors():
            return secret_store.delete_secret(self.account, service=SERVICE)

    def _changed(self) -> None:
        self._note_secrets()
        if not self.staged:
            self._write()

    def _note_secrets(self) -> None:
        tokens = self._data.get("tokens") or {}
        for key in ("access_token", "refresh_token"):
            if tokens.get(key):
                register_secret(tokens[key], f"OAuth {key.replace('_', ' ')} of MCP server {self.account}")
        secret = (self._data.get("client") or {}).get("client_secret")
        if secret:
            register_secret(secret, f"OAuth client secret for MCP server {self.account}")

    def _read(self) -> dict[str, Any]:
        with _keyring_errors():
            stored = secret_store.get_secret(self.account, service=SERVICE, redact=False)
        try:
            return json.loads(stored) if stored else {}
        except ValueError:
            return {}  # an entry that is not ours to read: treated as no login

    def _write(self) -> None:
        with _keyring_errors():
            secret_store.set_secret(self.account, json.dumps(self._data), service=SERVICE, redact=False)


@contextmanager
def _keyring_errors() -> Iterator[None]:
    """A keyring that cannot be used ends the login with one message (tokens are kept nowhere else)."""
    try:
        yield
    except secret_store.SecretStoreError as exc:
        raise OAuthLoginFailed(
            f"{exc}. plugdeck keeps OAuth tokens only in the system keyring, never in a file: unlock or install "
            "one (e.g. GNOME Keyring, KWallet, macOS Keychain), or choose one with PYTHON_KEYRING_BACKEND.") from None


def forget(name: str, url: str) -> bool:
    """Forget the login to one server (tokens and registered client); whether there was one."""
    return KeyringTokenStorage(name, url, staged=True).forget()


def logged_in(name: str, url: str) -> bool:
    return KeyringTokenStorage(name, url).has_tokens()


# ---- where the flow may go (R15) ----------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class GuardedAuth:
    """An httpx Auth around the SDK's provider that checks each request of the OAuth flow before it
    is sent: the MCP server's own origin, or https to an address the SSRF guard finds public."""

    requires_request_body = False
    requires_response_body = True

    def __init__(self, inner: Any, server_url: str):
        from ..openapi.ssrf import Guard

        self.inner, self.server_url = inner, server_url
        self.guard = Guard()
        self.login_first: str | None = None  # set when there is nothing to present: fail before any request

    def sync_auth_flow(self, request: Any) -> Any:
        raise OAuthLoginFailed("plugdeck's MCP OAuth runs only in an async client")

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        if self.login_first:
            raise OAuthLoginNeeded(self.login_first)
        flow = self.inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                await self._check(str(outgoing.url))
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()

    async def _check(self, url: str) -> None:
        from ..openapi.ssrf import BlockedURL, safe_url

        if _origin(url) == _origin(self.server_url):
            return
        if urlsplit(url).scheme.lower() != "https":
            raise OAuthLoginFailed(f"refused to follow its OAuth discovery to {safe_url(url)}: away from the "
                                   "server's own origin, only https is allowed")
        try:
            await self.guard.check(url)
        except BlockedURL as exc:
            why = str(exc).split(". ", 1)[0]  # the guard's hint after the reason is about OpenAPI plugins
            raise OAuthLoginFailed(f"refused to follow its OAuth discovery: {why}") from None


def _http_auth_class() -> type:
    """GuardedAuth as a real `httpx2.Auth` subclass (httpx checks the type); built lazily, since
    importing httpx2 belongs to the MCP extra, not to every start of plugdeck."""
    import httpx2

    global _HTTPX_GUARDED
    if _HTTPX_GUARDED is None:
        _HTTPX_GUARDED = type("GuardedOAuth", (GuardedAuth, httpx2.Auth), {})
    return _HTTPX_GUARDED


_HTTPX_GUARDED: type | None = None


# ---- the provider ---------------------------------------------------------------------------------------


def _provider(name: str, url: str, storage: KeyringTokenStorage, redirect_uri: str,
              redirect_handler: Callable[[str], Awaitable[None]],
              callback_handler: Callable[[], Awaitable[Any]]) -> Any:
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata

    from ... import __version__

    metadata = OAuthClientMetadata(
        client_name=f"plugdeck {__version__}", redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"], response_types=["code"],
        token_endpoint_auth_method="none")  # a public client: nothing secret lives in plugdeck

    async def pkce_first(authorization_url: str) -> None:
        # The MCP spec: no login with an authorization server that does not state S256 PKCE support.
        server = provider.context.oauth_metadata
        if server is None or "S256" not in (server.code_challenge_methods_supported or []):
            raise OAuthLoginFailed("its authorization server does not state that it supports PKCE with S256 "
                                   "(code_challenge_methods_supported), which the MCP authorization spec requires; "
                                   "plugdeck does not log in there")
        await redirect_handler(authorization_url)

    provider = OAuthClientProvider(url, metadata, storage, redirect_handler=pkce_first,
                                   callback_handler=callback_handler)
    # The SDK knows an expiry only from a token it got in this process; a stored one's comes from
    # the keyring, so that an expired token is refreshed before it is sent, not after a 401.
    provider.context.token_expiry_time = storage.expires_at
    return _http_auth_class()(provider, url)


def connection_auth(name: str, url: str) -> Any:
    """The httpx Auth for a tool-calling connection: stored tokens, refreshed when expired, and never
    a browser; a server that wants a new login gets the person told how to give it."""

    async def no_browser(authorization_url: str) -> None:
        raise OAuthLoginNeeded(f"it needs a login (none is stored, or the stored one is no longer accepted): "
                               f"run  plugdeck mcp login {name}")

    async def no_callback() -> Any:
        raise OAuthLoginNeeded(f"it needs a login: run  plugdeck mcp login {name}")  # never reached: no_browser

    storage = KeyringTokenStorage(name, url)
    auth = _provider(name, url, storage, "http://127.0.0.1/callback", no_browser, no_callback)
    if not storage.has_tokens():  # logged out, or never in: no discovery, no registration, just say so
        auth.login_first = f"it needs a login: run  plugdeck mcp login {name}"
    return auth


# ---- the browser step ---------------------------------------------------------------------------------


class LoopbackRedirect:
    """The redirect URI: a one-shot HTTP listener on 127.0.0.1 at a random port.

    It answers GET /callback once: with the code when `state` is the one expected, else it refuses
    (the login fails; a page that forges a redirect can end a login, never complete one).
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.result: asyncio.Future = self.loop.create_future()
        self.expected_state: str | None = None
        self.server = HTTPServer(("127.0.0.1", 0), self._handler())
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, name="oauth redirect", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _deliver(self, outcome: Any) -> None:
        def settle() -> None:
            if self.result.done():
                return
            if isinstance(outcome, BaseException):
                self.result.set_exception(outcome)
            else:
                self.result.set_result(outcome)

        self.loop.call_soon_threadsafe(settle)

    def _answer(self, query: dict[str, list[str]]) -> tuple[int, str]:
        from mcp.shared.auth import AuthorizationCodeResult

        def one(key: str) -> str | None:
            values = query.get(key)
            return values[0] if values else None

        state, code = one("state"), one("code")
        if self.result.done():
            return 409, "This login is already finished. You can close this window."
        if state is None or self.expected_state is None or state != self.expected_state:
            self._deliver(OAuthLoginFailed("the authorization response carried a state that is not the one plugdeck "
                                           "sent; it was refused and nothing was stored. Try the login again."))
            return 400, "Refused: this response does not belong to the login plugdeck started."
        if one("error"):
            reason = one("error_description") or one("error")
            self._deliver(OAuthLoginFailed(f"the authorization server refused the login: {reason}"))
            return 200, f"The login was refused ({reason}). You can close this window."
        if not code:
            self._deliver(OAuthLoginFailed("the authorization response carried no code"))
            return 400, "No authorization code came back."
        self._deliver(AuthorizationCodeResult(code=code, state=state, iss=one("iss")))
        return 200, "plugdeck is logged in. You can close this window."

    def _handler(self) -> type:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                status, text = (owner._answer(parse_qs(parts.query)) if parts.path == "/callback"
                                else (404, "Not found."))
                body = f"<!doctype html><title>plugdeck</title><p>{html.escape(text)}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # a request line carries the code: not for stderr
                pass

        return Handler


def _open_browser(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url)  # argv, never a shell; the URL was checked to be http(s)
    except webbrowser.Error:
        return False


async def login(name: str, url: str, *, show: Callable[[str], None] = print,
                open_url: Callable[[str], bool] | None = None,
                timeout: float = LOGIN_TIMEOUT) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Log in to a remote MCP server and keep the tokens; return its tools and who it says it is.

    The person logs in on the page `open_url` opens (its address is shown too, for when no browser
    opens); the code comes back to the loopback redirect. Tokens reach the keyring only once the
    server has accepted them and listed its tools.
    """
    from ...tools import ToolError
    from .client import MCPConnection, ServerSpec

    from ...loopback import is_loopback_host

    parts = urlsplit(url)
    if parts.scheme.lower() != "https" and not is_loopback_host(parts.hostname):
        raise OAuthLoginFailed(f"MCP server {name!r} is reached over plain http ({url}): OAuth tokens travel only "
                               "over https, or to this machine (loopback)")
    KeyringTokenStorage(name, url)  # reads the keyring: one that cannot keep the tokens fails before the browser
    redirect = LoopbackRedirect()
    storage = KeyringTokenStorage(name, url, staged=True)

    async def to_browser(authorization_url: str) -> None:
        parts = urlsplit(authorization_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise OAuthLoginFailed(f"MCP server {name!r} gave an authorization address that is not an http(s) "
                                   "URL; it was not opened")
        redirect.expected_state = (parse_qs(parts.query).get("state") or [None])[0]
        show(f"Log in to MCP server {name!r} in your browser. If no browser opens, open this address:\n"
             f"  {authorization_url}")
        (open_url or _open_browser)(authorization_url)

    async def from_browser() -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(redirect.result), timeout)
        except TimeoutError:
            raise OAuthLoginFailed(f"no login came back within {timeout:g} s; run the login again") from None

    connection = MCPConnection(ServerSpec(name=name, url=url), connect_timeout=timeout + 30)
    connection.http_auth = _provider(name, url, storage, redirect.uri, to_browser, from_browser)
    try:
        tools = await connection.list_tools()
        info = dict(connection.server_info)
    except ToolError:
        if redirect.result.done() and redirect.result.exception() is not None:
            raise redirect.result.exception() from None  # the person's side of it says it best
        raise
    finally:
        await connection.close()
        redirect.close()
    if not storage.has_tokens():
        raise OAuthLoginFailed(f"MCP server {name!r} did not ask for a login (it answers without one)")
    storage.save()
    return tools, info


async def needs_oauth(url: str, timeout: float = 10.0) -> bool:
    """Whether a Streamable HTTP server asks for OAuth: an anonymous MCP request gets 401 with a Bearer
    challenge, and the server publishes protected resource metadata (named in the challenge, or at
    its well-known address). A bare 401 (a server that wants a key of its own) is no OAuth."""
    import httpx2

    body = {"jsonrpc": "2.0", "id": 0, "method": "ping"}  # not initialize: an open server starts no session
    async with httpx2.AsyncClient(timeout=timeout) as client:
        response = await client.post(url, json=body, headers={"Accept": "application/json, text/event-stream"})
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer"):
            return False
        if "resource_metadata=" in challenge:
            return True
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        for where in {f"/.well-known/oauth-protected-resource{path}", "/.well-known/oauth-protected-resource"}:
            found = await client.get(f"{parts.scheme}://{parts.netloc}{where}")
            if found.status_code == 200 and "authorization_servers" in found.text:
                return True
    return False
