"""Helpers for the server tests: the real app under uvicorn on a free loopback port (in a thread),
`plugdeck serve` in a subprocess, SSE parsing, and reading runs back from the run store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from app_thread import AppThread

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]
ORDER = {"items": [{"pizza": "margherita", "quantity": 2}], "pickup_time": "19:00", "customer_name": "Ada"}


def plugdeck(env, *args, timeout=60):
    return subprocess.run([*PLUGDECK, *args], env=env, capture_output=True, text=True, timeout=timeout)


def order_turns(text_after: str = "Your order is placed."):
    """Mock model turns: order two margheritas, then answer."""
    return [{"tool_calls": [{"name": "place_order", "arguments": ORDER}]}, text_after]


class ServerThread(AppThread):
    """The real app under a real uvicorn, on a free port of 127.0.0.1, in a thread with its own loop."""

    def __init__(self, app, port: int = 0):
        super().__init__(app, port, lifespan="on", timeout_graceful_shutdown=3)
        self.state = app.state.plugdeck


def start_server(setup=None, port: int = 0, **state_options) -> ServerThread:
    """The app built from the current environment's configuration (see the `env` fixture), as
    `plugdeck serve` builds it, on `port` (0: a free one); use as a context manager."""
    from plugdeck.assemble import AgentSetup
    from plugdeck.config import load_config
    from plugdeck.server.app import build_state, create_app

    state = build_state(load_config(), setup or AgentSetup(), host="127.0.0.1", **state_options)
    return ServerThread(create_app(state), port)


class ServeProcess:
    """`plugdeck serve --port 0 ...` as a user runs it, and the URLs it prints."""

    def __init__(self, env, *args):
        self.process = subprocess.Popen([*PLUGDECK, "serve", "--port", "0", *args], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []
        for line in self.process.stdout:
            self.lines.append(line)
            if line.strip().startswith("REST:"):
                break
        else:
            raise AssertionError(f"plugdeck serve did not start: {''.join(self.lines)}{self.process.stderr.read()}")
        self.url = re.search(r"on (http://\S+)", self.lines[0]).group(1)
        self.page = re.search(r"(http://\S+\?token=[\w-]+)", "".join(self.lines)).group(1)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # a full pipe must never block it

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self.process.stderr.read()


def spawn_json(*command) -> tuple[subprocess.Popen, dict]:
    """Start a helper process that prints one JSON line when it is ready."""
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True)
    return process, json.loads(process.stdout.readline())


def sse_data(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def page_session(redirect) -> dict[str, str]:
    """The headers the page sends once the printed link has signed it in: the link redirects to
    `/#session=TOKEN`, and the page keeps that token in its own storage (never a cookie)."""
    token = redirect.headers["location"].partition("#session=")[2]
    assert token, f"the link did not sign in: {redirect.headers['location']!r}"
    return {"X-Plugdeck-Session": token}


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of an SSE body that names its events."""
    out = []
    for block in re.split(r"\r?\n\r?\n", text):
        kind = next((line[6:].strip() for line in block.splitlines() if line.startswith("event:")), None)
        data = [line[5:].strip() for line in block.splitlines() if line.startswith("data:")]
        if kind and data:
            out.append((kind, json.loads("\n".join(data))))
    return out


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Poll until predicate() is truthy (for things another thread or process writes); its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def stored_run(env, run_id, status=None, timeout=10.0):
    """The run as the run store has it, once its writer has got there (and it has this status)."""
    from plugdeck.ops.runstore import RunStore

    store = RunStore(Path(env["PLUGDECK_HOME"]) / "runs.db")
    try:
        def ready():
            try:
                run = store.get_run(run_id)
            except KeyError:
                return None
            return run if status is None or run["status"] == status else None
        return wait_for(ready, timeout)
    finally:
        store.close()
