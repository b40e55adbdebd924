"""A client that goes away mid-stream cancels its run: the tool that was running is cancelled, the
model's connection is closed, and the run is stored as cancelled. The slow tool is a real
third-party plugin, found through its entry point like any installed package."""

from __future__ import annotations

import importlib
import socket
import sys
import threading
import time

import httpx
import pytest

from fake_dist import install_fake_distribution
from mock_openai import MockOpenAI
from plugdeck.assemble import AgentSetup
from serverkit import sse_events, start_server, stored_run

SLOW_TOOLS = '''
import asyncio
import threading

from plugdeck import Plugin, tool

STARTED, CANCELLED, FINISHED = threading.Event(), threading.Event(), threading.Event()


@tool(timeout=120)
async def wait(seconds: float) -> str:
    """Wait a while, noting whether it was cancelled."""
    STARTED.set()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise
    FINISHED.set()
    return "waited"


plugin = Plugin(name="slow", tools=[wait])
'''
WAIT = {"tool_calls": [{"name": "wait", "arguments": {"seconds": 60}}]}
ASK = {"model": "plugdeck", "stream": True, "messages": [{"role": "user", "content": "wait a minute"}]}


@pytest.fixture
def slow(env, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "plugdeck-slow", {"slow": "slowtools:plugin"}, {"slowtools": SLOW_TOOLS})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PLUGDECK_UNSANDBOXED_PLUGINS", "1")  # in process: the test watches the tool's own events
    (tmp_path / "plugdeck.toml").write_text('[policy]\nallow = ["slow.*"]\n')  # third-party: allowed by name
    sys.modules.pop("slowtools", None)
    yield importlib.import_module("slowtools")
    sys.modules.pop("slowtools", None)


def test_leaving_mid_tool_cancels_the_tool_and_the_run(env, slow):
    with MockOpenAI([WAIT, "never reached"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["slow"])) as server:
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", f"{server.url}/v1/chat/completions", json=ASK) as response:
                run_id = response.headers["x-plugdeck-run-id"]
                for line in response.iter_lines():
                    if '"tool_started"' in line:
                        break
                assert slow.STARTED.wait(10)
        left = time.monotonic()  # the connection is closed here
        assert slow.CANCELLED.wait(1.0), "the tool was not cancelled within 1 s of the client leaving"
        print(f"tool cancelled {1000 * (time.monotonic() - left):.1f} ms after the client left")
        run = stored_run(env, run_id, "cancelled")
        assert run and run["error"] == "the run was cancelled"
        assert not slow.FINISHED.is_set() and len(mock.requests) == 1
        assert server.state.live.get(run_id).status == "cancelled"


class HangingModel:
    """Accepts a chat request and never answers; notes when the client hangs up."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.asked, self.hung_up = threading.Event(), threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        connection, _ = self.sock.accept()
        connection.recv(65536)
        self.asked.set()
        while connection.recv(65536):
            pass
        self.hung_up.set()
        connection.close()


def test_leaving_mid_model_call_closes_the_models_connection(env):
    model = HangingModel()
    with start_server(AgentSetup(model="stuck", base_url=model.base_url, plugins=["calculator"])) as server:
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", f"{server.url}/v1/chat/completions", json=ASK) as response:
                run_id = response.headers["x-plugdeck-run-id"]
                assert model.asked.wait(10)
        left = time.monotonic()
        assert model.hung_up.wait(1.0), "the model's connection stayed open after the client left"
        print(f"model connection closed {1000 * (time.monotonic() - left):.1f} ms after the client left")
        assert stored_run(env, run_id, "cancelled")


def test_cancel_a_running_run_from_another_client(env, slow):
    with MockOpenAI([WAIT, "never reached"]) as mock, start_server(
            AgentSetup(model="mock-model", base_url=mock.base_url, plugins=["slow"])) as server:
        events = []

        def follow():
            with httpx.Client(timeout=30) as client:
                events.extend(sse_events(client.post(f"{server.url}/api/runs?stream=true",
                                                     json={"message": "wait a minute"}).text))

        follower = threading.Thread(target=follow)
        follower.start()
        assert slow.STARTED.wait(10)
        run_id = server.state.live.live()[0].id
        cancelled = httpx.post(f"{server.url}/api/runs/{run_id}/cancel", timeout=30).json()
        assert cancelled["status"] == "cancelled" and slow.CANCELLED.is_set()
        follower.join(10)
        assert events[-1] == ("settled", events[-1][1]) and events[-1][1]["status"] == "cancelled"
        assert [k for k, _ in events][-2] == "run_finished"
        assert stored_run(env, run_id, "cancelled")
        again = httpx.post(f"{server.url}/api/runs/{run_id}/cancel", timeout=30)
        assert again.status_code == 409
