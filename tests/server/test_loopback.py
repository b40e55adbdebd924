"""What counts as "this machine": the one helper (plugdeck.loopback) against a table of hostile Host
values, and the servers that rely on it: `plugdeck serve` (403), `plugdeck mcp serve --http` (421),
and which addresses `plugdeck serve --host` accepts without a key."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from plugdeck.assemble import AgentSetup
from plugdeck.loopback import host_of, is_loopback_host, is_loopback_host_header
from serverkit import PLUGDECK, plugdeck, start_server

# Host headers a web page can make a browser send to a loopback server: names that resolve here after a
# DNS rebinding, look-alikes of loopback names and addresses, and headers that do not parse.
HOSTILE_HOSTS = [
    "127.0.0.1.rebind.attacker.example", "127.0.0.1.rebind.attacker.example:{port}", "127.attacker.example",
    "127.0.0.1.nip.io:{port}", "127-0-0-1.nip.io", "localhost.attacker.example", "attacker.localhost.example",
    "localhost.", "127.0.0.1.", "rebind.attacker.example:{port}", "evil.example", "0.0.0.0:{port}", "[::]:{port}",
    "[::ffff:10.0.0.1]", "10.0.0.1", "192.168.1.1:{port}", "127.0.0.1:{port}.attacker.example",
    "127.0.0.1:abc", "127.0.0.1:", "[::1]x", "[::1", "::1", "127.0.0.1@attacker.example", "attacker.example#127.0.0.1",
    "localhost:{port}:{port}", "",
]
LOOPBACK_HOSTS = ["localhost", "LocalHost:{port}", "127.0.0.1", "127.0.0.1:{port}", "127.1.2.3:{port}", "[::1]",
                  "[::1]:{port}", "[::ffff:127.0.0.1]:{port}"]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_hostile_host_headers_are_not_loopback(host):
    assert not is_loopback_host_header(host.format(port=8080))


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_host_headers(host):
    assert is_loopback_host_header(host.format(port=8080))


def test_bare_names_and_addresses():
    assert [is_loopback_host(h) for h in ("localhost", "127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.1")] == [True] * 5
    assert not any(is_loopback_host(h) for h in ("127.0.0.1.evil.example", "127.evil", "0.0.0.0", "::", "", None,
                                                   "localhost.evil.example", "::ffff:10.0.0.1", "2130706433"))
    assert host_of("[::1]:8080") == "::1" and host_of("example.com:80") == "example.com" and host_of("a:b:c") is None


def test_the_server_refuses_every_hostile_host(env, client):
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        for host in HOSTILE_HOSTS:
            if not host:
                continue  # httpx always sends one; an empty Host is covered by the table above
            header = host.format(port=server.port)
            for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/v1/models"),
                                 ("POST", "/v1/chat/completions"), ("GET", "/")):
                response = client.request(method, f"{server.url}{path}", headers={"Host": header},
                                          json={"message": "1+1"} if method == "POST" else None)
                assert response.status_code == 403, (header, path, response.status_code, response.text)
                assert response.json()["error"]["code"] == "forbidden_host", header
        for host in LOOPBACK_HOSTS:
            header = host.format(port=server.port)
            assert client.get(f"{server.url}/api/runs", headers={"Host": header}).status_code == 200, header


def test_the_mcp_http_server_refuses_every_hostile_host(env):
    process = subprocess.Popen([*PLUGDECK, "mcp", "serve", "--http", "0", "--plugin", "calculator"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stderr:
            found = re.search(r"on (http://127\.0\.0\.1:(\d+)/mcp)", line)
            if found:
                url, port = found.group(1), found.group(2)
                break
        assert url, "plugdeck mcp serve --http did not say where it listens"
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        for host in HOSTILE_HOSTS:
            if host:
                refused = httpx.post(url, json=ping, headers={**headers, "Host": host.format(port=port)})
                assert refused.status_code == 421, host
        for origin in ("http://127.0.0.1.rebind.attacker.example:{port}", "http://localhost.attacker.example",
                       "http://evil.example", "null"):
            refused = httpx.post(url, json=ping, headers={**headers, "Origin": origin.format(port=port)})
            assert refused.status_code == 403, origin
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.parametrize("host", ["127.0.0.1.rebind.attacker.example", "127.attacker.example", "0.0.0.0"])
def test_serve_needs_a_key_for_any_address_that_is_not_loopback(env, host):
    refused = plugdeck(env, "serve", "--host", host, "--port", "0")
    assert refused.returncode == 1 and "create an API key first" in refused.stderr, refused.stderr
