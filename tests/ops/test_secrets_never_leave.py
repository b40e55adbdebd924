"""R10: secrets never reach the model, traces or the run store, however a service echoes them.

Canary secrets are seeded into every place the platform holds one: the model's API key, an OpenAPI
plugin's bearer token and query key, an MCP server's environment. A real HTTP service on loopback
(imported as an OpenAPI plugin) and a real MCP stdio server echo what they were given, encoded every
way a service might (base64 standard and URL-safe, inside a longer base64 blob, hex in both cases,
percent and form encoding, JSON, reversed, in halves, in part), in answers, error bodies and error
output; the model server echoes its key in an error. Then everything that left or was kept is
searched: the requests the model server received, the SQLite and PostgreSQL run stores, the
OpenTelemetry spans and the errors shown. Not one piece of any secret may be found.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from mock_openai import MockOpenAI

from plugdeck import Agent, RunStore
from plugdeck.models.openai import OpenAIModel
from plugdeck.ops.otel import TraceSink
from plugdeck.plugins.mcp import mcp_plugin
from plugdeck.plugins.openapi import openapi_plugin
from plugdeck.redaction import FRAGMENT, SECRETS

# Each has a digit, a capital and a symbol in every 8-character run, as random keys have.
MODEL_KEY = "sk-Mdl7Qx/Lp+K3zR9vT=2wYb8Nf4Hc"
BEARER = "tok_Br9X/aP+4qL7=mZ2kV8sW3nJ6dE"
QUERY_KEY = "qk-5Gh/T8r+Yw2=Nc7Lz4Pv9Xs3Km"
MCP_TOKEN = "mcp.Ev3J/9pQ+Wz6=Lr8Tk2Yn5Hs4C"
CANARIES = [MODEL_KEY, BEARER, QUERY_KEY, MCP_TOKEN]


# Shared, as source, with the MCP server below, which runs it on the token in its own environment.
ECHOES = """
def echoes(secret):
    \"\"\"The secret as a careless service might send it back.\"\"\"
    import base64, json
    from urllib.parse import quote, quote_plus
    raw = secret.encode()
    half = len(secret) // 2
    return {
        "plain": secret, "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "blob": base64.b64encode(b'{"authorization": "Bearer ' + raw + b'", "scope": "all"}').decode(),
        "hex": raw.hex(), "HEX": raw.hex().upper(), "url": quote(secret, safe=""), "form": quote_plus(secret),
        "json": json.dumps({"key": secret}), "reversed": secret[::-1], "first_half": secret[:half],
        "second_half": secret[half:], "partial": secret[5:16],
    }
"""
_shared: dict = {}
exec(ECHOES, _shared)
echoes = _shared["echoes"]


def leaks(secret: str) -> set[str]:
    """What must never be found: each echoed form, and every run of FRAGMENT characters of the secret
    (twice that in hex, 4/3 in base64), whatever surrounds it."""
    raw = secret.encode()
    found = {v for k, v in echoes(secret).items() if k not in ("blob", "json")}
    windows = [(secret, FRAGMENT), (raw.hex(), 2 * FRAGMENT), (raw.hex().upper(), 2 * FRAGMENT),
               (base64.b64encode(raw).decode(), -(-4 * FRAGMENT // 3))]
    for text, size in windows:
        found.update(text[i:i + size] for i in range(len(text) - size + 1))
    return found


def echo_spec(url: str) -> dict:
    answer = {"200": {"description": "ok"}}
    return {
        "openapi": "3.0.3", "info": {"title": "echo", "version": "1"}, "servers": [{"url": url}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "key": {"type": "apiKey", "in": "query", "name": "key"}}},
        "paths": {
            "/whoami": {"get": {"operationId": "whoami", "security": [{"bearer": []}], "responses": answer}},
            "/broken": {"get": {"operationId": "broken", "security": [{"key": []}], "responses": answer}},
        },
    }


class EchoService:
    """Answers /whoami with every echo of the bearer token it got; /broken fails with echoes of its query key."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path == "/whoami":
                    token = self.headers.get("Authorization", "").partition(" ")[2]
                    status, body = 200, {"you_are": "ada", "echo": echoes(token),
                                         "headers": dict(self.headers.items())}
                else:
                    key = dict(parse_qsl(parts.query)).get("key", "")
                    status, body = 500, {"error": f"key {key} is broken", "echo": echoes(key), "path": self.path}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# An MCP server that answers with its token in every form, and one tool that dies saying it on stderr.
ECHO_MCP_SERVER = """
    import base64, json, os, sys
    from urllib.parse import quote
    from mcp.server.mcpserver import MCPServer

    {echoes}

    server = MCPServer("echoing")

    @server.tool()
    def whoami_mcp() -> str:
        \"\"\"Who the server thinks it is.\"\"\"
        return json.dumps(echoes(os.environ["API_TOKEN"]))

    @server.tool()
    def explode() -> str:
        \"\"\"Crash, printing the token.\"\"\"
        token = os.environ["API_TOKEN"]
        print("fatal: bad token " + base64.b64encode(token.encode()).decode(), file=sys.stderr, flush=True)
        print("hex " + token.encode().hex() + " url " + quote(token, safe=""), file=sys.stderr, flush=True)
        os._exit(3)

    server.run()
"""


@pytest.fixture
def canaries(monkeypatch):
    monkeypatch.setenv("ECHO_BEARER", BEARER)
    monkeypatch.setenv("ECHO_QUERY_KEY", QUERY_KEY)
    monkeypatch.setenv("ECHO_MCP_TOKEN", MCP_TOKEN)
    yield
    for secret in CANARIES:  # the registry is process-wide: leave it as it was
        SECRETS.forget(secret)


def test_the_canaries_are_shaped_like_real_keys():
    for secret in CANARIES:
        for i in range(len(secret) - FRAGMENT + 1):
            window = secret[i:i + FRAGMENT]
            assert any(c.isdigit() for c in window) and any(c.isalpha() for c in window), window


async def test_echoed_secrets_reach_no_prompt_store_trace_or_error(tmp_path, pg_url, canaries):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    service = EchoService()
    script = tmp_path / "echo_mcp.py"
    script.write_text(textwrap.dedent(ECHO_MCP_SERVER).replace("{echoes}", ECHOES))
    api = openapi_plugin(echo_spec(service.url), name="echo", allow_private=["127.0.0.1"],
                         auth={"bearer": {"env": "ECHO_BEARER"}, "key": {"env": "ECHO_QUERY_KEY"}})
    mcp = await mcp_plugin("echoing", command=[sys.executable, str(script)], env={"API_TOKEN": "ECHO_MCP_TOKEN"},
                           timeout=30)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces = TraceSink(provider, capture_content=True)
    sqlite_store, pg_store = RunStore(tmp_path / "runs.db"), RunStore(pg_url)
    key_echo = " ".join(echoes(MODEL_KEY).values())
    turns = [
        {"tool_calls": [{"name": "whoami", "arguments": {}}, {"name": "broken", "arguments": {}},
                        {"name": "whoami_mcp", "arguments": {}}]},
        {"tool_calls": [{"name": "explode", "arguments": {}}]},
        "All done.",
        {"fault": "401", "message": f"invalid API key {key_echo}"},
    ]
    try:
        with MockOpenAI(turns) as server:
            model = OpenAIModel("mock-model", server.base_url, api_key=MODEL_KEY, max_retries=0)
            agent = Agent(model, [api, mcp], sinks=[sqlite_store.record, pg_store.record, traces],
                          confirm=lambda action: True)  # the person says yes to the MCP tools
            first = await agent.run("Who am I to each service?")
            second = await agent.run("And now?")
            requests = json.dumps(server.requests, ensure_ascii=False)
            await model.aclose()
    finally:
        await mcp.close()
        service.close()
        sqlite_store.close()
        pg_store.close()
    # The attack happened: each service really echoed, and the run went through every path.
    results = {e.tool: e for e in first.tool_results}
    assert results["echo.whoami"].result["status"] == 200 and results["echo.broken"].error["kind"] == "http_error"
    assert results["echoing.whoami_mcp"].result and results["echoing.explode"].error["kind"] == "mcp_crashed"
    assert "[redacted]" in json.dumps(results["echo.whoami"].result)
    assert "fatal: bad token" in results["echoing.explode"].error["message"]
    assert first.status == "ok" and second.status == "error" and "invalid API key" in second.error

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*")).decode("utf-8", "replace")
    spans = "\n".join(span.to_json() for span in exporter.get_finished_spans())
    assert "whoami" in spans and "invalid API key" in stored
    errors = "\n".join([second.error or ""] + [json.dumps(e.error) for e in first.tool_results if e.error])
    found = {
        "model requests": requests,
        "SQLite run store": stored,
        "PostgreSQL run store": _pg_dump(pg_url),
        "OpenTelemetry spans": spans,
        "errors": errors,
        "run events": json.dumps([e.to_dict() for run in (first, second) for e in run.events], default=str),
    }
    for where, text in found.items():
        for secret in CANARIES:
            hits = sorted(leak for leak in leaks(secret) if leak in text)
            assert not hits, f"{where} holds {len(hits)} piece(s) of a secret, e.g. {hits[:3]}"


def _pg_dump(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(str(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"'))
