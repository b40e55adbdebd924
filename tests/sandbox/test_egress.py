"""R19: the egress proxy on its own (no sandbox): what it lets through, what it refuses and records."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from canary import Canary

from plugdeck.plugins.sandbox.egress import EgressProxy


class Service(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://api.example.com/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 5000 if self.path == "/big" else b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        size = int(self.headers.get("Content-Length", 0))
        self.rfile.read(size)
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


async def send(proxy, method, url, content=None, headers=None):
    """A request as the sandbox's client sends it: to the socket, the real URL in a header."""
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=proxy.path)) as client:
        extra = {"X-Plugdeck-URL": url} if url is not None else {}
        return await client.request(method, "http://egress.plugdeck.invalid/", content=content,
                                    headers={**extra, **(headers or {})})


async def test_declared_origin_passes_and_everything_is_recorded(service):
    proxy = EgressProxy("p", [f"http://127.0.0.1:{service}"], allow_private=True, max_response=1000)
    await proxy.start()
    try:
        ok = await send(proxy, "GET", f"http://127.0.0.1:{service}/hi?key=secret")
        posted = await send(proxy, "POST", f"http://127.0.0.1:{service}/notes", content=b"a" * 300)
        big = await send(proxy, "GET", f"http://127.0.0.1:{service}/big")
        moved = await send(proxy, "GET", f"http://127.0.0.1:{service}/moved")
    finally:
        await proxy.close()
    assert (ok.status_code, ok.text) == (200, "hello")
    assert posted.status_code == 201
    assert len(big.content) == 1000 and big.headers["x-plugdeck-truncated"] == "1000"
    # A redirect goes back to the plugin; its next request would be checked like any other.
    assert moved.status_code == 302 and moved.headers["location"] == "http://api.example.com/elsewhere"
    first, second = proxy.records[:2]
    assert first.url == f"http://127.0.0.1:{service}/hi" and "secret" not in first.url  # no query kept
    assert (second.method, second.sent, second.received, second.status) == ("POST", 300, 2, 201)


async def test_private_origins_need_the_operators_grant_even_when_declared(service):
    proxy = EgressProxy("p", [f"http://127.0.0.1:{service}"])  # declared, not granted
    await proxy.start()
    try:
        refused = await send(proxy, "GET", f"http://127.0.0.1:{service}/")
    finally:
        await proxy.close()
    assert refused.status_code == 403 and "private" in refused.text.lower()
    assert proxy.records[0].allowed is False


@pytest.mark.parametrize("url, why", [
    ("file:///etc/passwd", "only http and https"),
    ("http://2130706433:{port}/", "not among the hosts"),
    ("http://[::ffff:127.0.0.1]:{port}/", "not among the hosts"),
    ("http://169.254.169.254/latest/meta-data/", "not among the hosts"),
    ("http://example.com@127.0.0.1:{port}/", "not among the hosts"),
    (None, "no x-plugdeck-url header"),
])
async def test_refusals_say_why_and_reach_nothing(url, why):
    with Canary() as canary:
        proxy = EgressProxy("p", ["api.example.com"], allow_private=True)
        await proxy.start()
        try:
            answer = await send(proxy, "GET", url.format(port=canary.port) if url else None)
        finally:
            await proxy.close()
        assert answer.status_code in (400, 403) and why in answer.text, answer.text
        assert canary.connections == 0
    assert proxy.records[0].allowed is False


async def test_an_oversized_request_body_is_refused(service):
    proxy = EgressProxy("p", [f"http://127.0.0.1:{service}"], allow_private=True, max_request=100)
    await proxy.start()
    try:
        answer = await send(proxy, "POST", f"http://127.0.0.1:{service}/notes", content=b"a" * 1000)
    finally:
        await proxy.close()
    assert answer.status_code == 413


def test_a_declared_entry_that_is_no_host_is_refused():
    with pytest.raises(ValueError, match="declares a network host that is not one"):
        EgressProxy("p", ["http://"])
