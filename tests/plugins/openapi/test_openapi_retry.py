"""R07, idempotent side effects: an order service that commits an order and then drops the
connection before answering. plugdeck sends the same request again only when that cannot do it
twice (a read, or a write that carries the approved action's Idempotency-Key): exactly one order
exists, and the run's trace shows one action that took two attempts. A write without a key is
never sent twice; the person is told it may have gone through."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plugdeck.agent.agent import Agent
from plugdeck.events import ConfirmationRequested, ToolFinished
from plugdeck.models.scripted import ScriptedModel
from plugdeck.plugins.openapi import openapi_plugin
from plugdeck.tools import ToolError


class OrderService:
    """Commits every new order, then hangs up on the first request for it (the answer is lost)."""

    def __init__(self):
        self.orders: dict[str, dict] = {}  # by Idempotency-Key (or a serial number without one)
        self.requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                service.requests += 1
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                key = self.headers.get("Idempotency-Key") or f"serial-{len(service.orders) + 1}"
                if key not in service.orders:
                    service.orders[key] = {"id": len(service.orders) + 1001, **body}
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # committed, then the connection drops
                    return
                answer = json.dumps(service.orders[key]).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def service():
    running = OrderService()
    yield running
    running.close()


def spec(with_key: bool) -> dict:
    headers = [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}] if with_key else []
    return {
        "openapi": "3.0.3", "info": {"title": "orders", "version": "1"},
        "paths": {"/orders": {"post": {
            "operationId": "place_order", "parameters": headers,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"pizza": {"type": "string"}}, "required": ["pizza"]}}}},
        }}},
    }


async def test_a_dropped_connection_is_retried_with_the_key_and_orders_once(service):
    plugin = openapi_plugin(spec(with_key=True), name="orders", base_url=service.url, allow_private=[service.url])
    model = ScriptedModel([{"tool_calls": [{"name": "place_order", "arguments": {"pizza": "margherita"}}]}, "Ordered."])
    agent = Agent(model, [plugin], confirm=lambda action: True)
    run = await agent.run("order a margherita")
    assert run.status == "ok", run.error
    assert len(service.orders) == 1 and service.requests == 2  # sent twice, committed once
    finished = [e for e in run.events if isinstance(e, ToolFinished)]
    asked = [e for e in run.events if isinstance(e, ConfirmationRequested)]
    assert len(finished) == 1 and len(asked) == 1  # one action, confirmed once ...
    assert finished[0].result["attempts"] == 2  # ... that took two attempts
    assert finished[0].result["body"]["id"] == 1001
    key = next(iter(service.orders))
    assert not key.startswith("serial-")  # the approved action's id travelled as the key


async def test_a_write_without_a_key_is_never_sent_twice(service):
    plugin = openapi_plugin(spec(with_key=False), name="orders", base_url=service.url, allow_private=[service.url])
    with pytest.raises(ToolError) as failed:
        await plugin.tool("place_order").call({"pizza": "margherita"})
    assert service.requests == 1 and len(service.orders) == 1
    assert failed.value.kind == "network" and "may have reached" in failed.value.message
