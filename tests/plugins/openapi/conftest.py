"""Real HTTP on loopback for the OpenAPI tests: a server that records every request it gets (and
answers with an echo of it, or with a canned answer per route), and a canary listener that only
counts connections, for proving that the SSRF guard let nothing through."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import pytest
from canary import Canary


@dataclass
class Seen:
    method: str
    target: str  # the request target exactly as sent: path and query
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "target": self.target, "headers": self.headers,
                "body": self.body.decode("utf-8", "replace")}


Answer = Callable[[Seen], tuple[int, dict[str, str], bytes]]


@dataclass
class RecordingServer:
    url: str
    port: int
    requests: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], Answer] = field(default_factory=dict)

    def route(self, method: str, path: str, answer: Answer | tuple[int, dict[str, str], bytes] | Any) -> None:
        if callable(answer):
            self.routes[(method, path)] = answer
        elif isinstance(answer, tuple):
            self.routes[(method, path)] = lambda seen: answer
        else:
            body = json.dumps(answer).encode()
            self.routes[(method, path)] = lambda seen: (200, {"Content-Type": "application/json"}, body)


def _handler(server: RecordingServer):
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            server.requests.append(seen)
            answer = server.routes.get((self.command, seen.path))
            if answer:
                status, headers, body = answer(seen)
            else:
                status, headers, body = 200, {"Content-Type": "application/json"}, json.dumps(seen.to_json()).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = httpd.server_address[1]
    recording = RecordingServer(f"http://127.0.0.1:{port}", port)
    httpd.RequestHandlerClass = _handler(recording)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recording
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def canary():
    listener = Canary()
    yield listener
    listener.close()
