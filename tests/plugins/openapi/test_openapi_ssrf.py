"""The SSRF guard: every spelling of a private address is refused, directly and behind a redirect,
and a loopback canary listener sees no connection at all; connections go to the checked address."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from plugdeck.plugins.openapi import openapi_plugin
from plugdeck.plugins.openapi.http import GuardedHTTP, PreparedRequest
from plugdeck.plugins.openapi.ssrf import BlockedURL, Guard, classify, parse_ip
from plugdeck.tools import ToolError

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize("spelling", [
    "127.0.0.1", "2130706433", "0x7f000001", "0X7F000001", "0177.0.0.1", "0x7f.1", "017700000001", "127.1",
    "127.0.1", "0x7f.0.0.1", "127.0.0.1.", "[::ffff:127.0.0.1]",
])
def test_every_spelling_of_loopback_is_parsed(spelling):
    address = parse_ip(spelling)
    assert address is not None and classify(address) == "a loopback address"


@pytest.mark.parametrize("host, expected", [
    ("0", "an unspecified address"), ("10.0.0.1", "a private address"), ("192.168.1.1", "a private address"),
    ("172.16.0.1", "a private address"), ("100.64.0.1", "a carrier-grade NAT address"),
    ("169.254.169.254", "a cloud metadata address"), ("169.254.1.1", "a link-local address"),
    ("224.0.0.1", "a multicast address"), ("::1", "a loopback address"), ("fe80::1", "a link-local address"),
    ("fc00::1", "a private address"), ("fd00:ec2::254", "a cloud metadata address"),
    ("::ffff:10.0.0.1", "a private address"), ("64:ff9b::7f00:1", "a loopback address"),  # NAT64
    ("2002:7f00:1::", "a loopback address"), ("::127.0.0.1", "a loopback address"),  # 6to4, IPv4-compatible
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address"),  # Teredo carrying 127.0.0.1
])
def test_non_public_ranges_are_classified(host, expected):
    assert classify(parse_ip(host)) == expected


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(host):
    assert classify(parse_ip(host)) is None


@pytest.mark.parametrize("name", ["example.com", "api.nytimes.com", "1.2.3.4.nip.io", "0x7g", "08.1.2.3", ""])
def test_names_are_not_mistaken_for_addresses(name):
    assert parse_ip(name) is None


BLOCKED = [
    "http://2130706433:{port}/", "http://0x7f000001:{port}/", "http://0177.0.0.1:{port}/", "http://127.1:{port}/",
    "http://0x7f.1:{port}/", "http://017700000001:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/", "http://127.0.0.1.:{port}/", "http://0:{port}/", "http://[::1]:{port}/",
    "http://localhost:{port}/", "http://LOCALHOST:{port}/", "http://shop.localhost:{port}/",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1:{port}/", "http://100.64.0.1:{port}/",
    "http://[fd00:ec2::254]/", "http://metadata.google.internal/computeMetadata/v1/",
    "http://user:pass@127.0.0.1:{port}/",
]


@pytest.mark.parametrize("template", BLOCKED)
async def test_blocked_urls_never_connect(template, canary):
    url = template.format(port=canary.port)
    http = GuardedHTTP(url, Guard())
    with pytest.raises(BlockedURL) as caught:
        await http.send(PreparedRequest("GET", url))
    assert "pass" not in str(caught.value)  # user info is not echoed
    assert canary.connections == 0


async def test_the_canary_does_count_a_connection_that_is_allowed(canary):
    url = f"http://127.0.0.1:{canary.port}/"
    with pytest.raises(ToolError):  # the canary hangs up without an answer
        await GuardedHTTP(url, Guard(allow_private=True)).send(PreparedRequest("GET", url))
    assert canary.connections == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:25/", "//example.com/x"])
async def test_only_http_and_https(url):
    with pytest.raises(BlockedURL, match="only http and https"):
        await Guard(allow_private=True).check(url)


async def test_metadata_needs_to_be_named_even_when_private_is_allowed():
    with pytest.raises(BlockedURL, match="cloud metadata"):
        await Guard(allow_private=True).check("http://169.254.169.254/latest/")
    with pytest.raises(BlockedURL, match="cloud metadata"):
        await Guard(allow_private=True).check("http://[::ffff:169.254.169.254]/")
    target = await Guard(allow_private=["169.254.169.254"]).check("http://169.254.169.254/latest/")
    assert target.addresses == (ipaddress.ip_address("169.254.169.254"),)


async def test_an_allowlist_allows_only_what_it_names():
    guard = Guard(allow_private=["http://127.0.0.1:8100", "10.1.0.0/16"])
    assert (await guard.check("http://127.0.0.1:8100/")).addresses == (LOOPBACK,)
    with pytest.raises(BlockedURL, match="not http://127.0.0.1:8101"):
        await guard.check("http://127.0.0.1:8101/")
    assert (await guard.check("http://10.1.2.3/")).host == "10.1.2.3"
    with pytest.raises(BlockedURL):
        await guard.check("http://10.2.0.1/")
    with pytest.raises(BlockedURL):
        await guard.check("http://192.168.0.1/")


async def test_ports_can_be_limited():
    guard = Guard(allow_private=True, ports=[443])
    await guard.check("https://127.0.0.1/")
    with pytest.raises(BlockedURL, match="port 8080"):
        await guard.check("https://127.0.0.1:8080/")


def resolver_from(table, calls=None):
    def resolve(host, port):
        if calls is not None:
            calls.append(host)
        if host in table:
            answer = table[host]
            return answer(len(calls or [])) if callable(answer) else answer
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]

    return resolve


async def test_every_resolved_address_is_checked(canary):
    guard = Guard(resolver=resolver_from({"rebind.test": ["93.184.216.34", "127.0.0.1"]}))
    url = f"http://rebind.test:{canary.port}/"
    with pytest.raises(BlockedURL, match=r"rebind.test \(127.0.0.1\) is a loopback address"):
        await GuardedHTTP(url, guard).send(PreparedRequest("GET", url))
    assert canary.connections == 0


async def test_the_connection_goes_to_the_checked_address_with_the_host_preserved(server):
    """DNS rebinding: a second lookup would give 127.0.0.2 (nothing listens there); there is none."""
    calls: list[str] = []
    answers = {"pinned.test": lambda n: ["127.0.0.1"] if n == 1 else ["127.0.0.2"]}
    guard = Guard(allow_private=[f"pinned.test:{server.port}"], resolver=resolver_from(answers, calls))
    url = f"http://pinned.test:{server.port}/hello?x=1"
    response = await GuardedHTTP(url, guard).send(PreparedRequest("GET", url))
    assert response.status == 200 and calls == ["pinned.test"]
    seen = server.requests[-1]
    assert seen.target == "/hello?x=1" and seen.headers["host"] == f"pinned.test:{server.port}"


@pytest.mark.parametrize("template", [t for t in BLOCKED if "{port}" in t])
async def test_redirects_are_checked_hop_by_hop(template, server, canary):
    """The API host is allowed by name; where it redirects to is checked again, and refused."""
    server.route("GET", "/go", (302, {"Location": template.format(port=canary.port)}, b""))
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "servers": [{"url": f"http://api.test:{server.port}"}], "paths": {"/go": {"get": {"operationId": "go"}}}}
    plugin = openapi_plugin(spec, name="t", allow_private=["api.test"],
                            resolver=resolver_from({"api.test": ["127.0.0.1"]}))
    with pytest.raises(ToolError) as caught:
        await plugin.tool("go").call({})
    assert caught.value.kind == "blocked" and "refused to connect" in caught.value.message
    assert [r.target for r in server.requests] == ["/go"]
    assert canary.connections == 0


async def test_a_redirect_to_an_allowed_host_is_followed(server):
    server.route("GET", "/go", (301, {"Location": f"http://api.test:{server.port}/there"}, b""))
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "servers": [{"url": f"http://api.test:{server.port}"}], "paths": {"/go": {"get": {"operationId": "go"}}}}
    plugin = openapi_plugin(spec, name="t", allow_private=["api.test"],
                            resolver=resolver_from({"api.test": ["127.0.0.1"]}))
    result = await plugin.tool("go").call({})
    assert result["body"]["target"] == "/there"


async def test_endless_redirects_stop(server):
    server.route("GET", "/loop", (302, {"Location": "/loop"}, b""))
    spec = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
            "paths": {"/loop": {"get": {"operationId": "loop"}}}}
    with pytest.raises(ToolError, match="redirected more than 5 times"):
        await openapi_plugin(spec, name="t", allow_private=["127.0.0.1"]).tool("loop").call({})
    assert len(server.requests) == 6


# ---- HTTPS: pinned to the checked address, yet the certificate is checked against the real name ----------


def _certificate(folder, name):
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture
def tls_server(tmp_path):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    key, cert = _certificate(tmp_path, "api.test")
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Host"]))
            body = b'{"secure": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.server_address[1], cert, seen
    httpd.shutdown()
    httpd.server_close()


def _secure_spec(port):
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "servers": [{"url": f"https://api.test:{port}"}], "paths": {"/ping": {"get": {"operationId": "ping"}}}}


async def test_https_is_pinned_with_sni_and_verified(tls_server):
    port, cert, seen = tls_server
    plugin = openapi_plugin(_secure_spec(port), name="t", allow_private=["api.test"], ca_bundle=str(cert),
                            resolver=resolver_from({"api.test": ["127.0.0.1"]}))
    assert await plugin.tool("ping").call({}) == {"status": 200, "body": {"secure": True}}
    assert seen == [("/ping", f"api.test:{port}")]


async def test_https_with_a_certificate_for_another_name_fails(tls_server, tmp_path):
    port, cert, seen = tls_server
    spec = _secure_spec(port)
    spec["servers"] = [{"url": f"https://other.test:{port}"}]
    plugin = openapi_plugin(spec, name="t", allow_private=["other.test"], ca_bundle=str(cert),
                            resolver=resolver_from({"other.test": ["127.0.0.1"]}))
    with pytest.raises(ToolError, match="certificate|hostname"):
        await plugin.tool("ping").call({})
    assert seen == []


# ---- item 8: the allowlist names origins (scheme, host, port), not addresses ---------------------------


def _redirecting_spec(server, canary):
    server.route("GET", "/go", (302, {"Location": f"http://127.0.0.1:{canary.port}/admin"}, b""))
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "servers": [{"url": server.url}],
            "paths": {"/go": {"get": {"operationId": "go"}}}}


@pytest.mark.parametrize("allowed", ["origin", "host"])
async def test_a_redirect_to_another_port_of_the_allowed_host_is_refused(allowed, server, canary):
    """The private API at 127.0.0.1:PORT is allowed; a redirect to 127.0.0.1:OTHER (a database, an
    admin port) is another origin and is refused before any connection. A bare host in the list (as
    older plugdeck versions stored it) allows the plugin's own pinned origin, not every port."""
    spec = _redirecting_spec(server, canary)
    plugin = openapi_plugin(spec, name="t", allow_private=[server.url if allowed == "origin" else "127.0.0.1"])
    with pytest.raises(ToolError) as caught:
        await plugin.tool("go").call({})
    assert caught.value.kind == "blocked" and f"127.0.0.1:{canary.port}" in caught.value.message
    assert [r.target for r in server.requests] == ["/go"]
    assert canary.connections == 0


def test_cli_allow_private_allows_the_base_url_origin_only(server, canary, tmp_path):
    import json
    import subprocess
    import sys

    from cli_env import cli_environment

    spec = tmp_path / "api.json"
    spec.write_text(json.dumps(_redirecting_spec(server, canary)))
    env = cli_environment(tmp_path)
    run = lambda *args: subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    added = run("plugins", "add", "openapi", str(spec), "--name", "api", "--allow-private")
    assert added.returncode == 0, added.stderr
    stored = json.loads((tmp_path / "data" / "plugins.json").read_text())["plugins"]["api"]["options"]
    assert stored["allow_private"] == [server.url]
    called = run("tools", "call", "api.go", "{}")
    assert called.returncode == 1 and "refused to connect" in called.stderr, called.stderr
    assert canary.connections == 0


@pytest.mark.parametrize("entry, url, allowed", [
    ("http://127.0.0.1:8100", "http://127.0.0.1:8100/x", True),
    ("http://127.0.0.1:8100", "https://127.0.0.1:8100/x", False),  # another scheme is another origin
    ("http://127.0.0.1:8100", "http://127.0.0.1:8101/x", False),
    ("127.0.0.1:8100", "https://127.0.0.1:8100/x", True),
    ("[::1]:8100", "http://[::1]:8100/", True),
    ("[::1]:8100", "http://[::1]:22/", False),
    ("10.1.0.0/16", "https://10.1.2.3/", True),  # no port named: the standard ports only
    ("10.1.0.0/16", "http://10.1.2.3:6379/", False),
    ("api.internal", "http://api.internal/", True),
    ("api.internal", "http://api.internal:8080/", False),
])
async def test_allowlist_entries_are_origins(entry, url, allowed):
    guard = Guard(allow_private=[entry], resolver=lambda host, port: ["10.9.9.9"])
    if allowed:
        await guard.check(url)
    else:
        with pytest.raises(BlockedURL, match="refused to connect"):
            await guard.check(url)
