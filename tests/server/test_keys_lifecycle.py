"""One truth about keys (issue 11, item 16): what `plugdeck serve keys` says about the server is what a real
`plugdeck serve` does, from no key, through creating and revoking the last key, and back to local mode.

The rule (server/auth.py): until a key is made, this machine needs none; once one was made, every API
request needs an active key, even after the last is revoked (revoking must never open the server);
removing PLUGDECK_HOME/keys.json, as `keys list` says, is the way back to local mode."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from serverkit import page_session, plugdeck, wait_for


def test_what_keys_list_says_is_what_serve_does(env, serve):
    fresh = plugdeck(env, "serve", "keys", "list")
    assert fresh.returncode == 0 and "this machine only, without a key" in fresh.stderr, fresh.stderr
    server = serve("--plugin", "calculator")
    assert httpx.get(f"{server.url}/v1/models").status_code == 200
    assert "no API keys yet" in "".join(server.lines)
    server.stop()

    key = plugdeck(env, "serve", "keys", "create", "--plugins", "calculator", "--name", "ci").stdout.strip()
    revoked = plugdeck(env, "serve", "keys", "revoke", "ci")
    assert revoked.returncode == 0 and "no active key: plugdeck serve refuses" in revoked.stderr, revoked.stderr
    listed = plugdeck(env, "serve", "keys", "list")
    keys_file = Path(env["PLUGDECK_HOME"]) / "keys.json"
    said = listed.stderr.replace(str(keys_file), "KEYS_FILE")  # the path may hold "open" (xdist's popen-gw1)
    assert not re.search(r"\bopen\b", said) and "refuses every API request" in said, listed.stderr
    assert str(keys_file) in listed.stderr  # how to go back to local mode

    server = serve("--plugin", "calculator")
    printed = "".join(server.lines)
    assert "no API keys yet" not in printed and "every API key is revoked" in printed, printed
    for headers in ({}, {"Authorization": f"Bearer {key}"}):
        refused = httpx.get(f"{server.url}/v1/models", headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert httpx.post(f"{server.url}/api/runs", json={"message": "1+1"}, headers=headers).status_code == 401
    with httpx.Client(base_url=server.url) as page:  # the page still signs in with the printed link
        signed = page.get(server.page.removeprefix(server.url))
        assert page.get("/api/session", headers=page_session(signed)).json()["principal"] == "person (page)"

    # What `keys list` said: without keys.json, this machine needs no key again (the running server too).
    keys_file.unlink()
    assert "this machine only, without a key" in plugdeck(env, "serve", "keys", "list").stderr
    assert wait_for(lambda: httpx.get(f"{server.url}/v1/models").status_code == 200)
    assert re.search(r"no API keys yet", "".join(serve("--plugin", "calculator").lines))
