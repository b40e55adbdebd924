"""R14, the platform's side: no token passes through plugdeck, either way.

- Out: a plugin's service (or the model's endpoint) never receives the platform's own credentials. A
  loopback OpenAPI service (a spy) logs every request it gets during runs started with an API key, from
  the page's session and through the OpenAI API: it sees its own credential where its spec asks for
  one, nothing where it does not, and never the API key, any part of it, or the page's session token.
- In: a token minted for another service (that plugin's credential, another platform's key, a JWT for
  another audience, a random bearer) is refused by the platform's endpoints (401) once keys exist, and a
  request that carries a key acts as that key, whatever page session comes with it.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import plugdeck, start_server

SPY_CREDENTIAL = "spy-service-credential-7f3a9c21d4e8b6f0"
OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Spy weather", "version": "1.0"},
    "servers": [{"url": "http://127.0.0.1:1"}],
    "components": {"securitySchemes": {"spyBearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/weather": {"get": {
            "operationId": "get_weather", "summary": "The weather in a city", "security": [{"spyBearer": []}],
            "parameters": [{"name": "city", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": OK}},
        "/time": {"get": {
            "operationId": "get_time", "summary": "The time of day", "security": [],
            "responses": OK}},
    },
}
WEATHER = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
TIME = {"tool_calls": [{"name": "get_time", "arguments": {}}]}


class Spy:
    """The plugin's service on loopback: answers every GET, and keeps each request's path and headers."""

    def __init__(self):
        seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append({"path": self.path, "headers": dict(self.headers.items())})
                body = json.dumps({"ok": True, "temperature": 3} if self.path.startswith("/weather")
                                  else {"time": "12:00"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def spy(env, tmp_path, monkeypatch):
    """The spy service, added as the OpenAPI plugin `spy` with its own bearer credential (from SPY_TOKEN).
    The tool loop plans nothing ahead: each mock turn is one model call."""
    service = Spy()
    monkeypatch.setenv("SPY_TOKEN", SPY_CREDENTIAL)
    monkeypatch.setenv("PLUGDECK_PLANNER", "loop")
    spec = tmp_path / "spy.json"
    spec.write_text(json.dumps(SPEC))
    added = plugdeck({**env, "SPY_TOKEN": SPY_CREDENTIAL}, "plugins", "add", "openapi", str(spec), "--name", "spy",
                     "--base-url", service.url, "--allow-private", "--auth", "spyBearer=SPY_TOKEN")
    assert added.returncode == 0, added.stderr
    yield service
    service.close()


def _pieces(secret: str) -> list[str]:
    """The secret and the parts of it that would give it away."""
    parts = [secret, *secret.split("_")[1:], base64.b64encode(secret.encode()).decode()]
    return [p for p in parts if len(p) >= 8]


def test_plugins_never_receive_the_platforms_credentials(env, spy):
    made = plugdeck(env, "keys", "create", "--plugins", "spy", "--name", "weather")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    turns = [WEATHER, TIME, "3 degrees at noon."] * 3
    with MockOpenAI(turns) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["spy"])) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        session = server.state.auth.session_token
        by_key = client.post("/api/runs", json={"message": "weather and time"},
                             headers={"Authorization": f"Bearer {key}"})
        assert by_key.json()["status"] == "ok", by_key.text
        with httpx.Client(base_url=server.url, timeout=30, headers={"X-Plugdeck-Session": session}) as page:
            by_page = page.post("/api/runs", json={"message": "weather and time"},
                                headers={"X-Requested-With": "plugdeck"})
        assert by_page.json()["status"] == "ok", by_page.text
        by_openai = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                json={"model": "plugdeck", "messages": [{"role": "user", "content": "weather?"}]})
        assert by_openai.status_code == 200, by_openai.text
        upstream = json.dumps([mock.headers, mock.requests])  # the model's endpoint gets none of them either
        for secret in (key, session):
            assert not any(piece in upstream for piece in _pieces(secret))

    weather = [r for r in spy.requests if r["path"].startswith("/weather")]
    clock = [r for r in spy.requests if r["path"].startswith("/time")]
    assert len(weather) == len(clock) == 3, spy.requests
    for request in weather:
        assert request["headers"].get("Authorization") == f"Bearer {SPY_CREDENTIAL}"  # its own credential
    for request in clock:
        assert "Authorization" not in request["headers"]  # none where its spec asks for none
    for request in spy.requests:
        assert "Cookie" not in request["headers"], request
        seen = json.dumps(request)
        for secret in (key, session):
            for piece in _pieces(secret):
                assert piece not in seen, (piece, request)


def test_tokens_for_other_services_are_refused(env, spy, client):
    made = plugdeck(env, "keys", "create", "--plugins", "spy", "--name", "mine")
    key = made.stdout.strip()
    other = plugdeck(env, "keys", "create", "--plugins", "*", "--name", "other")
    assert made.returncode == other.returncode == 0
    other_key = other.stdout.strip()
    jwt = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=") for part in
                   ({"alg": "HS256", "typ": "JWT"}, {"aud": "https://api.spotify.example", "sub": "ada"})) + ".c2ln"
    foreign = [SPY_CREDENTIAL, "sk-proj-0123456789abcdefghijklmnop", jwt, "pdk_0123456789_" + "x" * 43,
               key[:-1] + ("A" if key[-1] != "A" else "B"), key.replace("pdk_", "PDK_")]
    with MockOpenAI([], default="ok") as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["spy"])) as server:
        plugdeck(env, "keys", "revoke", "other")  # a revoked key of this very platform is another's token too
        for token in [*foreign, other_key]:
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/api/runs"),
                                 ("POST", "/api/runs"), ("GET", "/api/session")):
                body = {"model": "plugdeck", "messages": [{"role": "user", "content": "hi"}], "message": "hi"}
                refused = client.request(method, f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"},
                                         json=body if method == "POST" else None)
                assert refused.status_code == 401, (token, path, refused.text)
                assert refused.json()["error"]["code"] == "invalid_api_key"
                assert token not in refused.text
        assert mock.requests == []  # nothing reached a model

        # A key with the page's session beside it is that key, not the operator; a key that is not
        # valid never falls back to the session beside it.
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"X-Plugdeck-Session": server.state.auth.session_token}) as page:
            operator_run = page.post("/api/runs", json={"message": "hi"},
                                     headers={"X-Requested-With": "plugdeck"}).json()
            both = {"Authorization": f"Bearer {key}"}
            session = page.get("/api/session", headers=both).json()
            assert session["principal"] == "key mine" and session["operator"] is False
            assert page.get(f"/api/runs/{operator_run['id']}", headers=both).status_code == 404
            assert page.get("/api/session", headers={"Authorization": f"Bearer {foreign[0]}"}).status_code == 401
