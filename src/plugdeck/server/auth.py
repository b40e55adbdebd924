"""Who may call the server, and from where.

Three checks, in this order:

1. `Guard` (ASGI middleware, every request, the page included): the Host header must name this
   machine when the server is bound to loopback (DNS rebinding), a browser request must come from the
   server's own origin (`Origin`, `Sec-Fetch-Site`), bodies are capped (413), and every response carries
   a strict Content-Security-Policy and friends.
2. `authenticate` (API routes): `Authorization: Bearer KEY` with a key from `plugdeck keys create`, or
   the page's session token (from the link `plugdeck serve` prints) in the `X-Plugdeck-Session`
   header, with `X-Requested-With: plugdeck` on anything that changes state. Not a cookie: a browser
   sends a host's cookies to every port of it, so another web server on 127.0.0.1 would receive it;
   the page keeps the token in its own origin's storage. Until a key is made, requests
   from loopback need neither: that is the out-of-the-box local mode. Revoking every key does not
   bring it back (API requests then answer 401 until a key is made; the page's link still signs in);
   removing PLUGDECK_HOME/keys.json does. `plugdeck keys` and `plugdeck serve` say the same
   (KeyStore.required is the rule).
3. Per-key token buckets (429 with Retry-After).
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..loopback import is_loopback_host, is_loopback_host_header
from .errors import ApiError, error_body
from .keys import ApiKey, KeyStore, parse_rate

SESSION_HEADER = "x-plugdeck-session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "plugdeck"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


@dataclass(frozen=True)
class Principal:
    """Who is asking: the operator (the page's session, or loopback while no key exists) or a key."""

    id: str  # "operator", or the key's id (runs record it as their api_key_id)
    label: str  # who approved an action, as the run records it
    key: ApiKey | None = None

    @property
    def operator(self) -> bool:
        return self.key is None

    @property
    def api_key_id(self) -> str | None:
        return self.key.id if self.key else None

    def may_see(self, api_key_id: str | None) -> bool:
        """The operator sees every run; a key, the runs it started."""
        return self.operator or api_key_id == self.key.id


OPERATOR_PAGE = Principal("operator", "person (page)")
OPERATOR_LOCAL = Principal("operator", "person (local)")


# ---- 1. the guard around every request ------------------------------------------------------------


class Guard:
    """ASGI middleware: Host and Origin checks, body size caps, security headers."""

    def __init__(self, app: Any, *, loopback: bool, max_body: int, max_upload: int, upload_prefix: str = "/api/kb/"):
        self.app = app
        self.loopback = loopback  # bound to loopback: the Host header must name this machine
        self.max_body, self.max_upload, self.upload_prefix = max_body, max_upload, upload_prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refused(headers)
        if refused:
            return await _send_error(send, 403, *refused)
        limit = self.max_upload if scope["path"].startswith(self.upload_prefix) else self.max_body
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            return await _send_error(send, 400, "the Content-Length header is not a number", "bad_request")
        if declared > limit:
            return await _send_error(send, 413, _too_large(limit), "body_too_large")
        if "content-length" not in headers and scope["method"] not in SAFE_METHODS:
            # A body of unknown length: read it (up to the cap) before anything parses it.
            receive = await _buffered(receive, limit)
            if receive is None:
                return await _send_error(send, 413, _too_large(limit), "body_too_large")

        async def secured_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured_send)

    def _refused(self, headers: dict[str, str]) -> tuple[str, str] | None:
        """(why, code) when the request must not reach the app."""
        host = headers.get("host", "")
        if self.loopback and not is_loopback_host_header(host):
            # DNS rebinding: a page of another site, under a name that now resolves here. Only a loopback
            # name or address (exactly) is this machine; no name that merely starts like one.
            return (f"this server only answers to its loopback address, not Host {host!r}; "
                    "open it at http://127.0.0.1:PORT", "forbidden_host")
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.netloc.lower() != host.lower() or parts.scheme not in ("http", "https"):
                return (f"requests from the web page at {origin!r} are not allowed; only this server's own page "
                        "may call it", "forbidden_origin")
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return ("requests from other web sites are not allowed; only this server's own page may call it",
                    "forbidden_origin")
        return None


async def _buffered(receive: Any, limit: int):
    """The whole body read ahead, replayed as one message; None if it is larger than `limit`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            break
    replayed = False

    async def replay() -> dict:
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: a disconnect, when it comes
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    return replay


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit // 1024} KiB; send less (documents: at most {limit >> 20} MiB)"


async def _send_error(send: Any, status: int, message: str, code: str) -> None:
    import json

    body = json.dumps(error_body(status, message, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


# ---- 2. credentials --------------------------------------------------------------------------------


class Authenticator:
    def __init__(self, keys: KeyStore, session_token: str, *, loopback: bool):
        self.keys = keys
        self.session_token = session_token
        self.loopback = loopback
        self.limiter = RateLimiter()

    @property
    def keyed(self) -> bool:
        return self.keys.required()

    def principal(self, method: str, headers: Any, client_host: str | None) -> Principal:
        keyed = self.keyed
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = self.keys.verify(token.strip())
            if key is not None:
                self._limit(key)
                return Principal(key.id, f"key {key.name}", key)
            if keyed:
                raise ApiError(401, "the API key is not valid (mistyped, or revoked); create one with: "
                                    "plugdeck keys create --plugins NAMES", code="invalid_api_key")
        session = headers.get(SESSION_HEADER)
        if session and hmac.compare_digest(session.encode(), self.session_token.encode()):
            if method not in SAFE_METHODS and headers.get(CSRF_HEADER) != CSRF_VALUE:
                raise ApiError(403, f"page requests that change something need the header "
                                    f"X-Requested-With: {CSRF_VALUE}", code="csrf")
            return OPERATOR_PAGE
        if not keyed and self.loopback and is_loopback_host(client_host):
            return OPERATOR_LOCAL
        raise ApiError(401, "this server needs an API key: send Authorization: Bearer KEY (create one with: "
                            "plugdeck keys create --plugins NAMES), or open the page link that plugdeck serve printed",
                       code="missing_api_key")

    def _limit(self, key: ApiKey) -> None:
        if not key.rate:
            return
        wait = self.limiter.take(key.id, *parse_rate(key.rate))
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"rate limit {key.rate} of key {key.name!r} reached; try again in {seconds} s",
                           code="rate_limit_exceeded", headers={"Retry-After": str(seconds)})


# ---- 3. rate limits ----------------------------------------------------------------------------------


class RateLimiter:
    """One token bucket per key: `count` requests per `period`, refilled smoothly, bursts up to `count`."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)

    def take(self, key_id: str, count: int, period: float) -> float | None:
        """Take one token; None if there was one, else the seconds until there will be."""
        now = time.monotonic()
        rate = count / period
        tokens, when = self._buckets.get(key_id, (float(count), now))
        tokens = min(float(count), tokens + (now - when) * rate)
        if tokens >= 1:
            self._buckets[key_id] = (tokens - 1, now)
            return None
        self._buckets[key_id] = (tokens, now)
        return (1 - tokens) / rate
