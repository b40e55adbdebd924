"""Access: API keys (made by the real `plugdeck serve keys` command), the plugins and rate each key may use,
the page's session, and the checks on Host, Origin, body size and response headers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import page_session, plugdeck, start_server

CALC = {"tool_calls": [{"name": "calculate", "arguments": {"expression": "6*7"}}]}
ASK = {"model": "plugdeck", "messages": [{"role": "user", "content": "What is 6*7?"}]}


def create_key(env, *args) -> str:
    made = plugdeck(env, "serve", "keys", "create", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_are_shown_once_and_stored_only_as_salted_hashes(env):
    key = create_key(env, "--plugins", "calculator", "--rate", "60/min", "--name", "ci")
    assert key.startswith("pdk_") and len(key) > 50
    stored = Path(env["PLUGDECK_HOME"]) / "keys.json"
    text = stored.read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    listed = json.loads(plugdeck(env, "serve", "keys", "list", "--json").stdout)
    assert [(k["name"], k["plugins"], k["rate"], k["status"]) for k in listed] == [("ci", ["calculator"], "60/min", "active")]
    assert "digest" not in listed[0] and "salt" not in listed[0]
    assert key not in plugdeck(env, "serve", "keys", "list").stdout
    unknown = plugdeck(env, "serve", "keys", "create", "--plugins", "calculator,nope")
    assert unknown.returncode == 1 and "no plugin or knowledge base named nope" in unknown.stderr
    bad_rate = plugdeck(env, "serve", "keys", "create", "--plugins", "calculator", "--rate", "lots")
    assert bad_rate.returncode == 1 and "60/min" in bad_rate.stderr
    revoked = plugdeck(env, "serve", "keys", "revoke", "ci")
    assert revoked.returncode == 0 and json.loads(plugdeck(env, "serve", "keys", "list", "--json").stdout) == []
    assert plugdeck(env, "serve", "keys", "revoke", "ci").returncode == 1


def test_once_a_key_exists_every_request_needs_one(env, client):
    key = create_key(env, "--plugins", "calculator")
    with MockOpenAI([CALC, "42", CALC, "42"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url)) as server:
        url = f"{server.url}/v1/chat/completions"
        missing = client.post(url, json=ASK)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
        wrong = client.post(url, json=ASK, headers=bearer("pdk_0123456789_wrongwrongwrongwrongwrong"))
        assert wrong.status_code == 401 and "wrongwrong" not in wrong.text  # never echoed
        assert client.post(url, json=ASK, headers=bearer(key)).json()["choices"][0]["message"]["content"] == "42"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-not-ours", max_retries=0).models.list()
        answer = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0).chat.completions.create(**ASK)
        assert answer.choices[0].message.content == "42"
        assert plugdeck(env, "serve", "keys", "revoke", json.loads(plugdeck(env, "serve", "keys", "list", "--json").stdout)[0]["id"]
                        ).returncode == 0
        assert client.get(f"{server.url}/v1/models", headers=bearer(key)).status_code == 401


def test_a_key_gives_the_agent_only_its_plugins(env, client, pizzeria):
    key = create_key(env, "--plugins", "calculator")
    with MockOpenAI([CALC, "42"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator", "pizzeria"])) as server:
        agents = client.get(f"{server.url}/api/agents", headers=bearer(key)).json()
        assert agents[0]["tools"] == ["calculator.calculate"]
        assert [p["name"] for p in client.get(f"{server.url}/api/plugins", headers=bearer(key)).json()] == ["calculator"]
        client.post(f"{server.url}/v1/chat/completions", json=ASK, headers=bearer(key))
        offered = [t["function"]["name"] for t in mock.requests[0]["tools"]]
        assert offered == ["calculate"]  # the model never saw the pizzeria's tools
        full = client.get(f"{server.url}/api/agents", headers=bearer(create_key(env, "--plugins", "*"))).json()
        assert len(full[0]["tools"]) == 4


def test_a_key_sees_and_decides_only_its_own_runs(env, client):
    mine, theirs = create_key(env, "--plugins", "calculator"), create_key(env, "--plugins", "calculator")
    with MockOpenAI([CALC, "42"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["calculator"])) as server:
        run = client.post(f"{server.url}/api/runs", json={"message": "6*7?"}, headers=bearer(mine)).json()
        assert client.get(f"{server.url}/api/runs/{run['id']}", headers=bearer(mine)).status_code == 200
        assert client.get(f"{server.url}/api/runs/{run['id']}", headers=bearer(theirs)).status_code == 404
        assert client.get(f"{server.url}/api/runs", headers=bearer(theirs)).json() == []
        assert [r["id"] for r in client.get(f"{server.url}/api/runs", headers=bearer(mine)).json()] == [run["id"]]
        decided = client.post(f"{server.url}/api/runs/{run['id']}/actions/act_x", json={"approve": True},
                              headers=bearer(theirs))
        assert decided.status_code == 404


def test_rate_limit_answers_429_with_retry_after(env, client):
    key = create_key(env, "--plugins", "calculator", "--rate", "3/min")
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        codes = [client.get(f"{server.url}/v1/models", headers=bearer(key)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get(f"{server.url}/v1/models", headers=bearer(key))
        assert limited.json()["error"]["type"] == "rate_limit_error" and 1 <= int(limited.headers["retry-after"]) <= 20
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0).models.list()


def test_browser_requests_from_other_origins_and_rebound_hosts_are_refused(env, client):
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        url = f"{server.url}/api/runs"
        body = {"message": "1+1"}
        evil = client.post(url, json=body, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["code"] == "forbidden_origin"
        assert client.post(url, json=body, headers={"Origin": "null"}).status_code == 403
        other_port = client.post(url, json=body, headers={"Origin": "http://127.0.0.1:1"})
        assert other_port.status_code == 403
        assert client.get(f"{server.url}/api/runs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        rebound = client.get(f"{server.url}/v1/models", headers={"Host": f"evil.example:{server.port}"})
        assert rebound.status_code == 403
        same = client.post(url, json=body, headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200 and same.json()["answer"] == "2"


def test_the_page_signs_in_with_the_printed_link_and_needs_the_csrf_header(env):
    create_key(env, "--plugins", "calculator")
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        token = server.state.auth.session_token
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            assert browser.get("/api/session").status_code == 401
            wrong = browser.get("/?token=wrong")
            assert wrong.status_code == 303 and wrong.headers["location"] == "/"
            signed = browser.get(f"/?token={token}")
            assert signed.status_code == 303 and signed.headers["location"] == f"/#session={token}"
            assert "set-cookie" not in signed.headers and not browser.cookies  # never a cookie
            session = page_session(signed)
            assert browser.get("/api/session", headers=session).json()["principal"] == "person (page)"
            no_header = browser.post("/api/runs", json={"message": "1+1"}, headers=session)
            assert no_header.status_code == 403 and no_header.json()["error"]["code"] == "csrf"
            ok = browser.post("/api/runs", json={"message": "1+1"}, headers={**session, "X-Requested-With": "plugdeck"})
            assert ok.json()["answer"] == "2"


def test_security_headers_and_body_limits(env, client):
    with start_server(AgentSetup(plugins=["calculator"])) as server:
        for path in ("/", "/runs/abc", "/static/app.js", "/v1/models", "/docs", "/api/nothing"):
            response = client.get(f"{server.url}{path}")
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "img-src 'self' data:" in csp and "'unsafe-inline'" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        huge = client.post(f"{server.url}/v1/chat/completions", content=b"x" * (2 << 20),
                           headers={"content-type": "application/json"})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"

        def chunks():
            for _ in range(40):
                yield b"y" * 65536
        streamed = client.post(f"{server.url}/api/runs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def test_serve_refuses_other_addresses_without_keys(env):
    refused = plugdeck(env, "serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 1 and "create an API key first" in refused.stderr
