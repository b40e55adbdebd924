"""R17 for `plugdeck mcp serve --http`: once a plugdeck key exists every request needs one (as with
`plugdeck serve`), a key must allow every plugin the server exposes, and an address that is not
loopback needs a key before the server starts."""

import httpx
from conftest import plugdeck, serve_http

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def key(env, plugins):
    made = plugdeck(env, "keys", "create", "--plugins", plugins)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_once_a_key_exists_every_request_needs_one_that_allows_the_exposed_plugins(cli_env):
    added = plugdeck(cli_env, "plugins", "add", "mcp", "--name", "time", "--yes", "--", "mcp-server-time")
    assert added.returncode == 0, added.stderr
    good, narrow = key(cli_env, "calculator,time"), key(cli_env, "calculator")
    process, url = serve_http(cli_env, "--plugin", "calculator", "--plugin", "time")
    try:
        missing = httpx.post(url, json=INITIALIZE, headers=HEADERS)
        assert missing.status_code == 401 and "plugdeck keys create" in missing.json()["error"]
        forged = httpx.post(url, json=INITIALIZE, headers={**HEADERS, "Authorization": "Bearer pdk_x_not-a-key"})
        assert forged.status_code == 401
        barred = httpx.post(url, json=INITIALIZE, headers={**HEADERS, "Authorization": f"Bearer {narrow}"})
        assert barred.status_code == 403 and "may not use time" in barred.json()["error"]
        allowed = httpx.post(url, json=INITIALIZE, headers={**HEADERS, "Authorization": f"Bearer {good}"})
        assert allowed.status_code == 200 and "protocolVersion" in allowed.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_address_that_is_not_loopback_needs_a_key_first(cli_env):
    refused = plugdeck(cli_env, "mcp", "serve", "--http", "0", "--host", "127.0.0.1.attacker.example")
    assert refused.returncode != 0 and "create a key first" in refused.stderr
