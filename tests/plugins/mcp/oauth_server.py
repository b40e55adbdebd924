"""A remote MCP server that needs OAuth, built with the MCP SDK's own server auth: its authorization
server (metadata, dynamic client registration, authorize, token) and its resource server (401 with
WWW-Authenticate, protected resource metadata, bearer checks bound to the resource) in one app under
uvicorn on loopback. The provider below is the test's user database: it consents at once, keeps
every code and token in memory, and notes what clients sent so that tests can check it.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from app_thread import AppThread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

ACCESS_SECONDS = 3600


@dataclass
class MemoryAuthorizationServer:
    """OAuthAuthorizationServerProvider: every request is approved; everything is remembered."""

    clients: dict[str, OAuthClientInformationFull] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshToken] = field(default_factory=dict)
    authorize_requests: list[AuthorizationParams] = field(default_factory=list)
    refreshes: int = 0
    seen_bearers: list[str] = field(default_factory=list)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.clients[client_info.client_id or ""] = client_info

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        self.authorize_requests.append(params)
        code = AuthorizationCode(
            code=secrets.token_urlsafe(24), scopes=params.scopes or [], expires_at=time.time() + 300,
            client_id=client.client_id or "", code_challenge=params.code_challenge, redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly, resource=params.resource)
        self.codes[code.code] = code
        return construct_redirect_uri(str(params.redirect_uri), code=code.code, state=params.state)

    async def load_authorization_code(self, client: OAuthClientInformationFull, code: str) -> AuthorizationCode | None:
        return self.codes.get(code)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          code: AuthorizationCode) -> OAuthToken:
        del self.codes[code.code]  # a code is good once
        return self._issue(client.client_id or "", code.scopes, code.resource)

    async def load_refresh_token(self, client: OAuthClientInformationFull, token: str) -> RefreshToken | None:
        return self.refresh.get(token)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        if token.token not in self.refresh:
            raise TokenError("invalid_grant", "refresh token already used")
        del self.refresh[token.token]  # public clients' refresh tokens rotate
        self.refreshes += 1
        return self._issue(client.client_id or "", scopes or token.scopes, token.resource)

    async def load_access_token(self, token: str) -> AccessToken | None:
        self.seen_bearers.append(token)
        found = self.access.get(token)
        if found is None or (found.expires_at is not None and found.expires_at < time.time()):
            return None
        return found

    async def revoke_token(self, token: Any) -> None:
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)

    def expire_access_tokens(self) -> None:
        """Time passes: every access token issued so far is out of date (the refresh tokens are not)."""
        for token in self.access.values():
            token.expires_at = int(time.time()) - 1

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = f"at-{secrets.token_urlsafe(24)}", f"rt-{secrets.token_urlsafe(24)}"
        self.access[access] = AccessToken(token=access, client_id=client_id, scopes=scopes,
                                          expires_at=int(time.time()) + ACCESS_SECONDS, resource=resource)
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource)
        return OAuthToken(access_token=access, token_type="Bearer", expires_in=ACCESS_SECONDS, refresh_token=refresh,
                          scope=" ".join(scopes) or None)


class OAuthMCPServer:
    """`with OAuthMCPServer() as server:` a protected MCP server at `server.url` (…/mcp), one tool `whoami`."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # the address must be known before the app that names it is built
        base = f"http://127.0.0.1:{port}"
        self.url = f"{base}/mcp"
        self.provider = MemoryAuthorizationServer()
        mcp = MCPServer("guarded", auth_server_provider=self.provider, auth=AuthSettings(
            issuer_url=base, resource_server_url=self.url, validate_token_resource=True, required_scopes=["tools"],
            client_registration_options=ClientRegistrationOptions(enabled=True, valid_scopes=["tools"],
                                                                  default_scopes=["tools"])))

        @mcp.tool()
        def whoami() -> str:
            """Say who the caller is, echoing the token it came with (a careless server)."""
            token = get_access_token()
            return f"client {token.client_id if token else '?'} with token {token.token if token else '?'}"

        self.thread = AppThread(mcp.streamable_http_app(), port=port)

    def __enter__(self) -> OAuthMCPServer:
        self.thread.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.thread.__exit__(*exc)


class ScriptedServer:
    """A loopback HTTP server whose every answer comes from `route(method, path, base, body)` as
    (status, JSON body, headers): for servers that break the rules the SDK would not let one break."""

    def __init__(self, route) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                status, body, headers = route(self.command, self.path, base, json.loads(raw or b"{}"))
                payload = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = handle_one

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
