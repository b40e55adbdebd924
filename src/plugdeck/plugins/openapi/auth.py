"""Credentials for OpenAPI operations, placed where each security scheme says.

The plugin's options name environment variables, never values:

    {"auth": {"api_key": {"env": "PIZZA_KEY"},                       # apiKey (header/query/cookie), bearer
              "basic": {"username_env": "U", "password_env": "P"},    # or {"env": "USER_COLON_PASSWORD"}
              "oauth2": {"client_id_env": "ID", "client_secret_env": "SECRET", "scopes": ["read"]},
              "oidc": {"token_env": "TOKEN"}}}                        # any oauth2/openIdConnect: a ready token

Values are read when a request is made. They go only to the plugin's pinned origin (and, for the
OAuth2 client secret, to the token URL the spec names); they never appear in tool schemas,
results or error messages: each value is registered with plugdeck.redaction as it is read, which
scrubs every message and response of it in any encoding or piece.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urljoin

from ...errors import UserError
from ...redaction import register_secret
from ...tools import ToolError

PostForm = Callable[[str, dict[str, str], dict[str, str]], Awaitable[tuple[int, Any]]]
TOKEN_EARLY_REFRESH = 30.0  # seconds before expiry that a cached token is renewed


class AuthError(UserError, ValueError):
    """Auth options that do not fit the spec; raised when the plugin is added or built."""


@dataclass
class Credentials:
    headers: dict[str, str] = field(default_factory=dict)
    query: list[tuple[str, str]] = field(default_factory=list)
    cookies: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # schemes the operation accepts but nobody configured


def scheme_kind(scheme: dict[str, Any]) -> str:
    kind = scheme.get("type")
    if kind == "http":
        return f"http {str(scheme.get('scheme', '')).lower()}"
    return str(kind)


class Authenticator:
    def __init__(self, schemes: dict[str, Any], options: dict[str, Any], base_url: str, source: str):
        self.schemes = {name: s for name, s in (schemes or {}).items() if isinstance(s, dict)}
        self.options = dict(options or {})
        self.base_url = base_url
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        for name, option in self.options.items():
            if name not in self.schemes:
                known = ", ".join(self.schemes) or "none"
                raise AuthError(f"{source}: no security scheme named {name!r} (the spec defines: {known})")
            if not isinstance(option, dict):
                raise AuthError(f"auth for {name!r} must be a mapping such as {{\"env\": \"VARIABLE\"}}")
            self._check_option(name, self.schemes[name], option)

    def _check_option(self, name: str, scheme: dict[str, Any], option: dict[str, Any]) -> None:
        kind = scheme_kind(scheme)
        if kind in ("apiKey", "http bearer"):
            needed = [("env",), ("token_env",)]
        elif kind == "http basic":
            needed = [("env",), ("username_env", "password_env")]
        elif kind in ("oauth2", "openIdConnect"):
            needed = [("token_env",), ("env",)]
            if kind == "oauth2" and "clientCredentials" in (scheme.get("flows") or {}):
                needed.insert(0, ("client_id_env", "client_secret_env"))
        else:
            raise AuthError(f"security scheme {name!r} is {kind}, which plugdeck cannot supply (supported: apiKey, "
                            "http bearer, http basic, oauth2 client credentials or a ready token)")
        if not any(all(option.get(k) for k in keys) for keys in needed):
            shapes = " or ".join("{" + ", ".join(f'"{k}": "VARIABLE"' for k in keys) + "}" for keys in needed)
            raise AuthError(f"auth for {name!r} ({kind}) needs {shapes}")
        if kind == "apiKey" and scheme.get("in") not in ("header", "query", "cookie"):
            raise AuthError(f"security scheme {name!r} puts its key in {scheme.get('in')!r}; "
                            "plugdeck supports header, query and cookie")

    @property
    def env_names(self) -> list[str]:
        return sorted({v for option in self.options.values() for k, v in option.items() if k.endswith("env")})

    def token_urls(self) -> list[str]:
        urls = []
        for name, option in self.options.items():
            flow = (self.schemes[name].get("flows") or {}).get("clientCredentials")
            if flow and option.get("client_id_env") and flow.get("tokenUrl"):
                urls.append(urljoin(self.base_url, str(flow["tokenUrl"])))
        return urls

    def choose(self, requirements: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The first alternative whose schemes are all configured; {} when anonymous is allowed."""
        for alternative in requirements or [{}]:
            if isinstance(alternative, dict) and all(name in self.options for name in alternative):
                return alternative
        return None

    async def credentials(self, requirements: list[dict[str, Any]], post_form: PostForm) -> Credentials:
        creds = Credentials()
        chosen = self.choose(requirements)
        if chosen is None:
            creds.missing = sorted({n for alt in requirements if isinstance(alt, dict) for n in alt})
            return creds
        for name, scopes in chosen.items():
            await self._apply(name, scopes or [], creds, post_form)
        return creds

    async def _apply(self, name: str, scopes: list[str], creds: Credentials, post_form: PostForm) -> None:
        scheme, option = self.schemes[name], self.options[name]
        kind = scheme_kind(scheme)
        if kind == "apiKey":
            value = _secret(name, option.get("env") or option.get("token_env"))
            where, key = scheme.get("in"), str(scheme.get("name"))
            if where == "header":
                creds.headers[key] = value
            elif where == "query":
                creds.query.append((key, value))
            else:
                creds.cookies[key] = value
        elif kind == "http basic":
            if option.get("username_env"):
                user, password = _secret(name, option["username_env"], secret=False), _secret(name, option["password_env"])
                pair = f"{user}:{password}"
            else:
                pair = _secret(name, option["env"], secret=False)  # the user name in it is no secret
                register_secret(pair.partition(":")[2], f"OpenAPI security scheme {name} (${option['env']})")
            encoded = base64.b64encode(pair.encode()).decode()
            creds.headers["Authorization"] = f"Basic {encoded}"
        else:  # bearer, oauth2, openIdConnect
            if option.get("client_id_env"):
                token = await self._client_credentials_token(name, scopes, option, post_form, creds)
            else:
                token = _secret(name, option.get("token_env") or option.get("env"))
            creds.headers["Authorization"] = f"Bearer {token}"

    async def _client_credentials_token(self, name: str, scopes: list[str], option: dict[str, Any],
                                        post_form: PostForm, creds: Credentials) -> str:
        flow = self.schemes[name]["flows"]["clientCredentials"]
        token_url = urljoin(self.base_url, str(flow.get("tokenUrl") or ""))
        client_id = _secret(name, option["client_id_env"], secret=False)
        client_secret = _secret(name, option["client_secret_env"])
        wanted = sorted(set(option.get("scopes") or scopes))
        key = (token_url, client_id, " ".join(wanted))
        cached = self._tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        form = {"grant_type": "client_credentials"}
        if wanted:
            form["scope"] = " ".join(wanted)
        # RFC 6749 2.3.1: client id and secret form-encoded, then sent with HTTP Basic.
        basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()).decode()
        status, data = await post_form(token_url, form, {"Authorization": f"Basic {basic}"})
        token = data.get("access_token") if isinstance(data, dict) else None
        if status >= 400 or not isinstance(token, str) or not token:
            problem = f"HTTP {status}" if status >= 400 else "the answer had no access_token"
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                problem += f" ({data['error'][:100]})"
            raise ToolError(f"could not get an OAuth2 token for {name!r} from {token_url}: {problem}", "auth")
        register_secret(token, f"OpenAPI {name} OAuth2 token")
        lifetime = data.get("expires_in")
        lifetime = float(lifetime) if isinstance(lifetime, (int, float)) and lifetime > 0 else 3600.0
        self._tokens[key] = (token, time.monotonic() + max(lifetime - TOKEN_EARLY_REFRESH, 1.0))
        return token

    def hint(self, missing: list[str]) -> str:
        if not missing:
            return ""
        return (f" This operation accepts the security scheme(s) {', '.join(missing)}, and none is configured: "
                "add the plugin again with --auth SCHEME=ENVVAR.")


def _secret(scheme: str, env: str | None, *, secret: bool = True) -> str:
    """The value of `env`; a secret (all but user names and client ids) is registered for redaction."""
    value = os.environ.get(env or "")
    if not value:
        raise ToolError(f"the credential for security scheme {scheme!r} is not set: put it in the "
                        f"environment variable {env}", "auth")
    if secret:
        register_secret(value, f"OpenAPI security scheme {scheme} (${env})")
    return value

