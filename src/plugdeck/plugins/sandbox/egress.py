"""The egress proxy: a sandboxed plugin's only way to the network (R19).

One proxy per plugin listens on a Unix socket in a private folder; bwrap binds that socket into the
sandbox, which has no network of its own. A request (see plugdeck.sandbox.http) names its real URL in
X-Plugdeck-URL. The proxy lets it through only if

1. the URL's host and port are among the hosts the plugin declared (`needs["network"]`, the same
   entry syntax as an OpenAPI plugin's allow_private: `api.example.com`, `host:port`, `http://host:port`),
2. the SSRF guard of OpenAPI plugins (plugins/openapi/ssrf.py) passes every address the name resolves
   to: private, loopback, link-local and metadata addresses are refused, in any spelling, unless the
   operator lets this plugin reach a private origin it declared,

then makes the request itself, to the checked address only (no second DNS lookup), one hop: a
redirect goes back to the plugin, whose next request is checked again. Every request, let through
or refused, becomes an EgressRecord (method, URL without its query, status, bytes each way, why).
Refusals answer 403 with the reason as text.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ...errors import PlugdeckError
from ..openapi.ssrf import Allowance, BlockedURL, Guard, parse_allowance, parse_ip, safe_url, split_url

URL_HEADER = "x-plugdeck-url"
CALL_HEADER = "x-plugdeck-call"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length", URL_HEADER, CALL_HEADER}
# httpx hands the body decoded, so the encoding header would lie
DROPPED_FROM_ANSWER = HOP_BY_HOP | {"content-encoding"}


@dataclass
class EgressRecord:
    plugin: str
    method: str
    url: str  # without query or user info
    allowed: bool
    status: int | None = None
    reason: str = ""
    sent: int = 0  # request body bytes
    received: int = 0  # response body bytes
    at: float = 0.0
    call: str = ""  # the id of the call that made it, as the plugin's runner stated it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Refused(PlugdeckError):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class EgressProxy:
    def __init__(self, plugin: str, declared: list[str], *, allow_private: bool = False,
                 resolver: Any = None, max_request: int = 5_000_000, max_response: int = 10_000_000,
                 timeout: float = 30.0, on_record: Callable[[EgressRecord], None] | None = None):
        self.plugin = plugin
        try:
            self.allowances: list[Allowance] = [parse_allowance(entry) for entry in declared]
        except (ValueError, BlockedURL) as exc:
            raise ValueError(f"plugin {plugin!r} declares a network host that is not one: {exc}") from None
        # A private origin is reachable only if declared *and* the operator allows it for this plugin.
        self.guard = Guard(list(declared) if allow_private else False, resolver=resolver)
        self.max_request, self.max_response, self.timeout = max_request, max_response, timeout
        self.on_record = on_record
        self.records: list[EgressRecord] = []
        self._dir = tempfile.mkdtemp(prefix="plugdeck-egress-")  # 0700: only the platform reaches it here
        self.path = os.path.join(self._dir, "egress.sock")
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, 0o666)  # the sandbox's own UID must connect; the folder keeps others out

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for leftover in (self.path, self._dir):
            try:
                os.rmdir(leftover) if leftover == self._dir else os.unlink(leftover)
            except OSError:
                pass

    @property
    def running_on(self) -> asyncio.AbstractEventLoop | None:
        return self._server.get_loop() if self._server is not None else None

    # ---- one connection: one request ------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        conn = h11.Connection(h11.SERVER)
        try:
            request, body = await self._read(conn, reader)
            status, headers, content = await self._answer(request, body)
        except Refused as exc:
            status, headers, content = exc.status, [("content-type", "text/plain; charset=utf-8")], exc.reason.encode()
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        try:
            headers = [*headers, ("content-length", str(len(content))), ("connection", "close")]
            writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
            writer.write(conn.send(h11.Data(data=content)) or b"")
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
        except (ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()

    async def _read(self, conn: Any, reader: asyncio.StreamReader) -> tuple[Any, bytes]:
        import h11

        request, chunks, size = None, [], 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_request:
                    raise Refused(413, f"request body over {self.max_request} bytes")
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return request, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before the request ended")

    async def _answer(self, request: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        from ..openapi.http import GuardedHTTP, NetworkFailure
        from ...tools import ToolError

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        method = request.method.decode("ascii", "replace")
        url = headers.get(URL_HEADER, "")
        record = EgressRecord(self.plugin, method, safe_url(url) if url else "(none)", False, sent=len(body),
                              at=time.time(), call=headers.get(CALL_HEADER, "")[:64])
        try:
            if not url:
                raise Refused(400, f"no {URL_HEADER} header: send requests with plugdeck.sandbox.http")
            target = await self._check(url)
            http = GuardedHTTP(url, self.guard, timeout=self.timeout, max_bytes=self.max_response)
            forwarded = {k: v for k, v in headers.items() if k not in HOP_BY_HOP and not k.startswith("proxy-")}
            # One hop only (GuardedHTTP.send would follow redirects past the allowlist).
            response = await http._exchange(target, method, url, forwarded, body or None)
        except Refused as exc:
            record.status, record.reason = exc.status, exc.reason
            self._note(record)
            raise
        except (ToolError, NetworkFailure) as exc:
            record.status, record.reason = 502, exc.message
            self._note(record)
            raise Refused(502, exc.message) from None
        record.allowed, record.status, record.received = True, response.status, len(response.content)
        self._note(record)
        answer = [(k, v) for k, v in response.headers.items() if k.lower() not in DROPPED_FROM_ANSWER]
        if response.cut:
            answer.append(("x-plugdeck-truncated", str(self.max_response)))
        return response.status, answer, response.content

    async def _check(self, url: str) -> Any:
        """The allowlist, then the SSRF guard; a Refused(403) says which refused and why."""
        try:
            scheme, host, port = split_url(url)
        except BlockedURL as exc:
            raise Refused(403, str(exc)) from None
        literal = parse_ip(host)
        declared = any(
            a.admits(scheme, port) and (a.host == host if a.host is not None else
                                        literal is not None and a.covers(host, literal))
            for a in self.allowances)
        if not declared:
            raise Refused(403, f"{safe_url(url)}: {host}:{port} is not among the hosts plugin {self.plugin!r} "
                               f"declared ({', '.join(self.declared_names) or 'none'})")
        try:
            return await self.guard.check(url)
        except BlockedURL as exc:
            raise Refused(403, str(exc)) from None

    @property
    def declared_names(self) -> list[str]:
        return [a.host if a.host is not None else str(a.network) for a in self.allowances]

    def _note(self, record: EgressRecord) -> None:
        self.records.append(record)
        del self.records[:-1000]
        if self.on_record is not None:
            self.on_record(record)
