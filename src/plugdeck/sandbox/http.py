"""Inside the sandbox: HTTP through the platform's egress proxy, the only way out.

    from plugdeck.sandbox import http
    with http.client() as web:
        web.get("https://api.example.com/v1/forecast", params={"city": "Oslo"})

Each request goes over the Unix socket bound at /run/plugdeck/egress.sock; the URL travels in the
X-Plugdeck-URL header and the platform makes the request itself (TLS included) if the plugin's
manifest declared the host and the SSRF guard passes it. A refusal is an HTTP 403 whose body says why.
Redirects are followed by this client, each hop back through the proxy and its checks.
"""

from __future__ import annotations

from typing import Any

import httpx

SOCKET: str | None = None  # set by the runner when the plugin declared network hosts
URL_HEADER = "x-plugdeck-url"
CALL_HEADER = "x-plugdeck-call"  # which call made the request (the platform files the request under it)
PROXY_URL = "http://egress.plugdeck.invalid/"


def _socket() -> str:
    if SOCKET is None:
        raise RuntimeError("this plugin declared no network hosts (needs['network']), so it has no way out")
    return SOCKET


def _via_proxy(request: httpx.Request) -> httpx.Request:
    from . import _call

    ours = (b"host", URL_HEADER.encode(), CALL_HEADER.encode())
    headers = [(k, v) for k, v in request.headers.raw if k.lower() not in ours]
    headers += [(b"host", b"egress.plugdeck.invalid"), (URL_HEADER.encode(), str(request.url).encode()),
                (CALL_HEADER.encode(), _call.get().encode())]
    return httpx.Request(request.method, PROXY_URL, headers=headers, stream=request.stream,
                         extensions=request.extensions)


class ProxyTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(uds=_socket())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(_via_proxy(request))

    def close(self) -> None:
        self._inner.close()


class AsyncProxyTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport(uds=_socket())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(_via_proxy(request))

    async def aclose(self) -> None:
        await self._inner.aclose()


def client(**options: Any) -> httpx.Client:
    return httpx.Client(transport=ProxyTransport(), follow_redirects=True, **options)


def async_client(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncProxyTransport(), follow_redirects=True, **options)
