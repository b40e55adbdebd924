"""Calling an operation: build the exact request, send it through the SSRF guard, shape the answer.

Requests go only to the plugin's pinned base URL. Each hop (the first request and every redirect)
is checked by the guard and connected to the address the guard checked, with the real host name
in the Host header and TLS SNI. Credentials ride only on hops to the pinned origin. Responses are
read up to a byte cap, scrubbed of secrets, and cut to a character budget with a note saying so.

A request whose connection fails is sent once more only when that cannot act twice: nothing was
sent yet, or it is a read, or it carries an Idempotency-Key (the approved action's id, the same on
every attempt). A write without a key whose connection dropped is reported, never repeated (R07).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from secrets import token_hex
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode, urljoin, urlsplit

from ...redaction import redact
from ...tools import ToolError, idempotency_key
from .auth import Authenticator, Credentials
from .operations import Operation, Param, is_form_media, is_json_media
from .ssrf import BlockedURL, Guard, Target, origin_of, safe_url, split_url

MAX_REDIRECTS = 5
ATTEMPTS = 2  # a request whose connection failed is sent once more, when sending it again is safe
RETRY_DELAY = 0.2  # seconds before that second attempt
REPEATABLE_METHODS = {"GET", "HEAD", "OPTIONS"}
REDIRECT_CODES = {301, 302, 303, 307, 308}
RESERVED = ":/?#[]@!$&'()*+,;="
USER_AGENT = "plugdeck-openapi"
ERROR_EXCERPT = 1000  # characters of an error response shown to the model


class NetworkFailure(ToolError):
    """The exchange failed on the network. `sent`: the request may have reached the service (the
    connection dropped after it went out), so sending it again could do it twice."""

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message, "network")
        self.sent = sent


@dataclass
class PreparedRequest:
    method: str
    url: str  # absolute and fully encoded, without credentials
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    content: bytes
    cut: bool  # stopped reading at the byte cap
    url: str


# ---- building requests ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _enc(value: Any, reserved: bool = False) -> str:
    text = quote(_text(value), safe=RESERVED if reserved else "")
    return text.replace(".", "%2E") if text in (".", "..") else text  # never a dot segment


def serialize_path(param: Param, value: Any) -> str:
    """simple / label / matrix, exploded or not (the style table of the OpenAPI specification)."""
    if param.as_json:
        value = _text(value)
    if param.style == "matrix":
        name = quote(param.name, safe="")
        if isinstance(value, list):
            if param.explode:
                return "".join(f";{name}={_enc(v)}" for v in value) or f";{name}"
            return f";{name}=" + ",".join(_enc(v) for v in value)
        if isinstance(value, dict):
            if param.explode:
                return "".join(f";{_enc(k)}={_enc(v)}" for k, v in value.items())
            return f";{name}=" + ",".join(f"{_enc(k)},{_enc(v)}" for k, v in value.items())
        return f";{name}" + (f"={_enc(value)}" if value not in ("", None) else "")
    prefix = "." if param.style == "label" else ""
    sep = "." if param.style == "label" and param.explode else ","
    if isinstance(value, list):
        return prefix + sep.join(_enc(v) for v in value)
    if isinstance(value, dict):
        if param.explode:
            return prefix + sep.join(f"{_enc(k)}={_enc(v)}" for k, v in value.items())
        return prefix + ",".join(f"{_enc(k)},{_enc(v)}" for k, v in value.items())
    return prefix + _enc(value)


def serialize_query(param: Param, value: Any) -> list[str]:
    """form / spaceDelimited / pipeDelimited / deepObject, as encoded `name=value` strings."""
    name = quote(param.name, safe="[]")
    enc = lambda v: _enc(v, param.allow_reserved)  # noqa: E731
    if param.as_json:
        return [f"{name}={enc(_text(value))}"]
    if isinstance(value, list):
        if param.style == "form" and param.explode:
            return [f"{name}={enc(v)}" for v in value]
        sep = {"spaceDelimited": "%20", "pipeDelimited": "|"}.get(param.style, ",")
        return [f"{name}=" + sep.join(enc(v) for v in value)]
    if isinstance(value, dict):
        if param.style == "deepObject":
            return [f"{name}[{quote(str(k), safe='')}]={enc(v)}" for k, v in value.items()]
        if param.explode and param.style == "form":
            return [f"{quote(str(k), safe='')}={enc(v)}" for k, v in value.items()]
        sep = {"spaceDelimited": "%20", "pipeDelimited": "|"}.get(param.style, ",")
        return [f"{name}=" + sep.join(f"{enc(k)}{sep}{enc(v)}" for k, v in value.items())]
    return [f"{name}={enc(value)}"]


def serialize_header(param: Param, value: Any) -> str:
    if param.as_json:
        text = _text(value)
    elif isinstance(value, list):
        text = ",".join(_text(v) for v in value)
    elif isinstance(value, dict):
        text = ",".join(f"{k}={_text(v)}" if param.explode else f"{k},{_text(v)}" for k, v in value.items())
    else:
        text = _text(value)
    if any(c in text for c in "\r\n\0"):
        raise ToolError(f"argument {param.arg!r} goes into a header and must not contain line breaks", "invalid_arguments")
    return text


def serialize_cookie(param: Param, value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_enc(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{_enc(k)},{_enc(v)}" for k, v in value.items())
    return _enc(value)


def build_request(op: Operation, arguments: dict[str, Any], base_url: str) -> PreparedRequest:
    path = op.path.split("#", 1)[0]  # some specs tell operations apart with a fragment: "/cookies#form"
    query: list[str] = []
    request = PreparedRequest(op.method.upper(), "")
    for param in op.params:
        if param.arg not in arguments:
            continue
        value = arguments[param.arg]
        if param.location == "path":
            path = path.replace("{" + param.name + "}", serialize_path(param, value))
        elif param.location == "query":
            query.extend(serialize_query(param, value))
        elif param.location == "header":
            request.headers[param.name] = serialize_header(param, value)
        else:
            request.cookies[param.name] = serialize_cookie(param, value)
    request.url = base_url.rstrip("/") + "/" + path.lstrip("/") + ("?" + "&".join(query) if query else "")
    if op.body is not None:
        _add_body(request, op, arguments)
    return request


def receipt(op: Operation, arguments: dict[str, Any], base_url: str) -> str:
    """What will be sent, for the person who confirms it (credentials are added later, never shown)."""
    request = build_request(op, arguments, base_url)
    lines = [f"{op.name}: {request.method} {request.url}"]
    lines += [f"  header {name}: {value}" for name, value in request.headers.items()]
    lines += [f"  cookie {name}: {value}" for name, value in request.cookies.items()]
    if request.content is not None:
        try:
            shown = json.dumps(json.loads(request.content), ensure_ascii=False, indent=2)
        except ValueError:
            shown = request.content.decode("utf-8", "replace")
        lines.append("  body: " + shown.replace("\n", "\n  "))
    return "\n".join(lines)


def _add_body(request: PreparedRequest, op: Operation, arguments: dict[str, Any]) -> None:
    body = op.body
    if body.arg is not None:
        if body.arg not in arguments:
            return
        value = arguments[body.arg]
    else:
        value = {name: arguments[name] for name in body.fields if name in arguments}
    media = body.media_type.split(";")[0].strip()
    if is_json_media(media):
        content_type = "application/json" if media in ("*/*", "application/*") else body.media_type
        request.content = json.dumps(value, ensure_ascii=False).encode()
    elif media == "application/x-www-form-urlencoded":
        content_type = media
        items = value.items() if isinstance(value, dict) else []
        pairs = [(k, _text(v)) for k, vs in items for v in (vs if isinstance(vs, list) else [vs])]
        request.content = urlencode(pairs).encode()
    elif is_form_media(media):
        request.content, content_type = _multipart(value if isinstance(value, dict) else {}, body.binary_fields)
    else:
        content_type = body.media_type if "*" not in media else "text/plain"
        request.content = _text(value).encode()
    request.headers["Content-Type"] = content_type


def _multipart(value: dict[str, Any], binary: tuple[str, ...]) -> tuple[bytes, str]:
    """multipart/form-data: a part per value (a list gives several); binary fields as file parts."""
    boundary = token_hex(16)
    out = bytearray()
    for name, items in value.items():
        quoted = str(name).replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        is_file = name in binary
        disposition = f'form-data; name="{quoted}"' + (f'; filename="{quoted}"' if is_file else "")
        kind = "application/octet-stream" if is_file else "text/plain; charset=utf-8"
        for item in items if isinstance(items, list) and is_file else [items]:
            out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n".encode()
            out += _text(item).encode() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


# ---- sending ----------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """The system's usual trust store, or a CA bundle the plugin names (a company CA, a test CA)."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    import httpx

    return httpx.create_ssl_context()


class GuardedHTTP:
    """Sends requests to a pinned origin through the guard, following redirects hop by hop."""

    def __init__(self, base_url: str, guard: Guard, *, timeout: float = 30.0, max_bytes: int = 1_000_000,
                 ca_bundle: str | None = None):
        scheme, host, port = split_url(base_url)
        self.base_url = base_url
        self.origin = origin_of(scheme, host, port)
        self.guard = guard
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.ca_bundle = ca_bundle

    async def send(self, request: PreparedRequest, creds: Credentials | None = None) -> Response:
        creds = creds or Credentials()
        method, url, content = request.method, request.url, request.content
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        for hop in range(MAX_REDIRECTS + 1):
            target = await self.guard.check(url)  # every hop: a redirect may point anywhere
            own = target.origin == self.origin  # credentials go to the pinned origin only
            hop_headers = {**headers, **(creds.headers if own else {})}
            cookies = {**request.cookies, **creds.cookies} if own else {}
            if cookies:
                hop_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            hop_url = _with_query(url, creds.query) if own else url
            response = await self._exchange(target, method, hop_url, hop_headers, content)
            location = response.headers.get("location")
            if response.status not in REDIRECT_CODES or not location:
                return response
            url = urljoin(url, location)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                content = None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        raise ToolError(f"{self.origin} redirected more than {MAX_REDIRECTS} times", "http_error")

    async def _exchange(self, target: Target, method: str, url: str, headers: dict[str, str],
                        content: bytes | None) -> Response:
        import httpx

        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = origin_of(target.scheme, target.host, target.port).split("://", 1)[1]
        extensions: dict[str, Any] = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), self.timeout)}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host  # the certificate is checked against the real name
        failure: Exception | None = None
        for address in target.addresses:  # only addresses the guard checked; never a second lookup
            shown = f"[{address}]" if address.version == 6 else str(address)
            pinned = f"{target.scheme}://{shown}:{target.port}{path}"
            try:
                # The transport alone: no client-side redirects, cookie jar or proxy settings in the way.
                async with httpx.AsyncHTTPTransport(verify=_ssl_context(self.ca_bundle), trust_env=False) as transport:
                    built = httpx.Request(method, pinned, content=content, extensions=extensions,
                                          headers={"User-Agent": USER_AGENT, **headers, "Host": host_header})
                    answer = await transport.handle_async_request(built)
                    try:
                        body, cut = await self._read(answer)
                    finally:
                        await answer.aclose()
                return Response(answer.status_code, answer.reason_phrase, dict(answer.headers), body, cut, url)
            except httpx.ConnectError as exc:
                failure = exc
            except httpx.TimeoutException:
                raise ToolError(f"{target.origin} did not answer within {self.timeout:g} s", "timeout") from None
            except httpx.HTTPError as exc:
                raise NetworkFailure(redact(f"request to {target.origin} failed: {type(exc).__name__}: {exc}"),
                                     sent=True) from None
        detail = redact(str(failure)) if failure else "no address"
        raise NetworkFailure(f"could not connect to {target.origin}: {detail}", sent=False)

    async def _read(self, answer) -> tuple[bytes, bool]:
        chunks, size = [], 0
        async for chunk in answer.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_bytes:
                return b"".join(chunks)[: self.max_bytes], True
        return b"".join(chunks), False

    async def post_form(self, url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        """For OAuth2 token requests: a form POST through the same guard; JSON answer parsed."""
        request = PreparedRequest("POST", url, {**headers, "Content-Type": "application/x-www-form-urlencoded",
                                                "Accept": "application/json"}, content=urlencode(form).encode())
        try:
            response = await self.send(request)
        except BlockedURL as exc:
            raise ToolError(f"OAuth2 token URL refused: {exc}", "blocked") from None
        try:
            return response.status, json.loads(response.content.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            return response.status, None


def _with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return url
    extra = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return url + ("&" if "?" in url else "?") + extra


# ---- answers ----------------------------------------------------------------------------------------


def _decode(response: Response) -> str:
    charset = "utf-8"
    content_type = response.headers.get("content-type", "")
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return response.content.decode(charset, "replace")
    except LookupError:
        return response.content.decode("utf-8", "replace")


def shape_result(response: Response, method: str, budget: int, hint: str = "") -> dict[str, Any]:
    """The tool result: status and body (JSON parsed when it is JSON), cut to `budget` characters."""
    text = redact(_decode(response))
    if response.status >= 400:
        excerpt = text if len(text) <= ERROR_EXCERPT else text[:ERROR_EXCERPT] + "…"
        raise ToolError(f"HTTP {response.status} {response.reason} from {method} {safe_url(response.url)}"
                        + (f": {excerpt}" if excerpt.strip() else "") + hint, "http_error")
    result: dict[str, Any] = {"status": response.status}
    if method == "HEAD":
        keep = ("content-type", "content-length", "last-modified", "etag", "location")
        result["headers"] = {k: v for k, v in response.headers.items() if k.lower() in keep}
        return result
    body: Any = text
    if text.strip() and not response.cut and "json" in response.headers.get("content-type", "json"):
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = text
    shown = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    notes = []
    if response.cut:
        notes.append(f"the response was larger than {len(response.content)} bytes; only that much was read")
    if len(shown) > budget:
        notes.append(f"response truncated: showing the first {budget} of {len(shown)} characters")
        body = shown[:budget]
    result["body"] = body
    if notes:
        result["note"] = "; ".join(notes)
    return result


# ---- the tool function ------------------------------------------------------------------------------


class OperationCaller:
    """Turns a validated tool call into one HTTP exchange and its shaped result."""

    def __init__(self, http: GuardedHTTP, auth: Authenticator, *, budget: int = 12_000):
        self.http = http
        self.auth = auth
        self.budget = budget

    def bind(self, op: Operation) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def call(**arguments: Any) -> dict[str, Any]:
            return await self.call(op, arguments)

        call.__name__ = op.name
        return call

    async def call(self, op: Operation, arguments: dict[str, Any]) -> dict[str, Any]:
        request = build_request(op, arguments, self.http.base_url)
        _add_idempotency_key(op, request)
        creds = await self.auth.credentials(op.security, self.http.post_form)
        attempt = 1
        while True:
            try:
                response = await self.http.send(request, creds)
                break
            except BlockedURL as exc:
                raise ToolError(redact(str(exc)), "blocked") from None
            except NetworkFailure as exc:
                repeatable = request.method in REPEATABLE_METHODS or _has_idempotency_key(request)
                if exc.sent and not repeatable:
                    raise ToolError(exc.message + ". The request may have reached the service; plugdeck does not "
                                    "send a write again without an Idempotency-Key, so check with the service "
                                    "before trying again.", "network") from None
                if attempt >= ATTEMPTS:
                    raise
            attempt += 1
            await asyncio.sleep(RETRY_DELAY)
        hint = self.auth.hint(creds.missing) if response.status in (401, 403) else ""
        result = shape_result(response, request.method, self.budget, hint)
        if attempt > 1:  # one action, sent more than once: the trace says so
            result["attempts"] = attempt
        return result


def _has_idempotency_key(request: PreparedRequest) -> bool:
    return any(name.lower() == "idempotency-key" and value for name, value in request.headers.items())


def _add_idempotency_key(op: Operation, request: PreparedRequest) -> None:
    """An operation that declares an Idempotency-Key header gets the approved action's id when the
    model gave none, so a retried approval cannot place a second order."""
    declared = next((p.name for p in op.params if p.location == "header" and p.name.lower() == "idempotency-key"), None)
    if declared and op.effect == "write" and declared not in request.headers:
        key = idempotency_key()
        if key:
            request.headers[declared] = key


# ---- fetching a spec --------------------------------------------------------------------------------


def fetch_text(url: str, guard: Guard, *, max_bytes: int = 20_000_000, timeout: float = 30.0) -> str:
    """GET a document (a spec, a plugin manifest) through the guard, from sync code."""

    async def fetch() -> str:
        http = GuardedHTTP(url, guard, timeout=timeout, max_bytes=max_bytes)
        response = await http.send(PreparedRequest("GET", url, {"Accept": "application/json, application/yaml, */*"}))
        if response.status >= 400:
            raise ToolError(f"HTTP {response.status} {response.reason}", "http_error")
        if response.cut:
            raise ToolError(f"the document is larger than {max_bytes} bytes", "http_error")
        return _decode(response)

    return run_sync(fetch)


def run_sync(factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine from sync code, also when an event loop is already running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
