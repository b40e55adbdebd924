"""R18, "plugdeck keeps serving": a sandboxed plugin that forks up to its process limit, or takes all the
memory its limit allows, and holds it, does not stop the server answering. `plugdeck serve` checks the
sandbox at start, says which plugins run in it and starts their sandboxes; `plugins list` shows them."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from cli_env import cli_environment
from fake_dist import install_fake_distribution

from plugdeck.plugins.sandbox.launch import Launch
from plugdeck.plugins.sandbox.plugin import sandboxed_plugin
from plugdeck.plugins.sandbox.settings import SandboxSettings

PROCESSES, MEMORY_MB = 24, 512
BOMB = f'''
import asyncio
import errno
import os
import time

from plugdeck import Plugin, tool

release = asyncio.Event()
state = {{"forked": 0, "error": None, "bombing": False, "held_mb": 0, "hogging": False}}
held = []


@tool
async def bomb() -> dict:
    """Fork sleeping children until the process limit refuses one, then hold them all until released."""
    while True:
        try:
            pid = os.fork()
        except OSError as exc:
            state["error"] = errno.errorcode.get(exc.errno, str(exc))
            break
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        state["forked"] += 1
    state["bombing"] = True
    await release.wait()
    return dict(state)


@tool
async def hog() -> dict:
    """Take memory 16 MB at a time until the limit refuses, then hold it (less a little) until released."""
    try:
        while True:
            held.append(bytearray(16 * 1024 * 1024))
    except MemoryError:
        del held[-4:]  # room to go on answering
    state["held_mb"] = 16 * len(held)
    state["hogging"] = True
    await release.wait()
    return dict(state)


@tool
async def status() -> dict:
    """What bomb and hog have done so far."""
    return dict(state)


@tool
async def let_go() -> str:
    """Release bomb and hog."""
    release.set()
    return "released"


plugin = Plugin(name="bomb", version="1.0.0", tools=[bomb, hog, status, let_go],
                needs={{"limits": {{"processes": {PROCESSES}, "memory_mb": {MEMORY_MB}}}}})
'''


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    folder.chmod(0o755)  # the plugin runs under its own UID
    install_fake_distribution(folder, "plugdeck_bomb", {"bomb": "plugdeck_bomb:plugin"}, {"plugdeck_bomb": BOMB})
    return folder


class Server:
    """plugdeck's app under uvicorn on a free loopback port, in a thread of this process: the process
    whose child the sandbox is."""

    def __init__(self, home: Path):
        import uvicorn

        from plugdeck.assemble import AgentSetup
        from plugdeck.config import load_config
        from plugdeck.server.app import build_state, create_app

        state = build_state(load_config(), AgentSetup(plugins=["calculator"]), host="127.0.0.1", record=False)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(state), log_level="warning", access_log=False,
                                                    lifespan="on", ws="none", timeout_graceful_shutdown=3))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    async def __aenter__(self):
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc):
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 15)
        self.sock.close()

    async def healthy(self, times: int = 20) -> list[int]:
        def get() -> int:
            return httpx.get(f"{self.url}/healthz", timeout=30).status_code

        return [await asyncio.to_thread(get) for _ in range(times)]


async def _until(plugin, key: str) -> dict:
    """Ask the plugin's status until `key` is true (the bomb or hog holds what it took)."""
    while True:
        seen = await plugin.tool("status").call({})
        if seen[key]:
            return seen
        await asyncio.sleep(0.05)


async def test_plugdeck_keeps_serving_while_a_plugin_holds_all_its_processes_and_memory(site, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLUGDECK_HOME", str(tmp_path / "data"))
    plugin = sandboxed_plugin("plugdeck_bomb:plugin", "bomb", settings=SandboxSettings(concurrency=8),
                              paths=[str(site)])
    try:
        async with Server(tmp_path) as server:
            bombing = asyncio.create_task(plugin.tool("bomb").call({}))
            seen = await _until(plugin, "bombing")
            assert seen["error"] == "EAGAIN" and 0 < seen["forked"] < PROCESSES
            assert await server.healthy() == [200] * 20
            hogging = asyncio.create_task(plugin.tool("hog").call({}))
            seen = await _until(plugin, "hogging")
            assert 0 < seen["held_mb"] < MEMORY_MB
            assert await server.healthy() == [200] * 20
            assert not bombing.done() and not hogging.done()  # both still hold what they took
            assert await plugin.tool("let_go").call({}) == "released"
            bombed, hogged = await bombing, await hogging
            assert bombed["forked"] == seen["forked"] and hogged["held_mb"] == seen["held_mb"]
            assert await server.healthy(3) == [200] * 3
        killed = [e for e in plugin.runtime.events if e["kind"] == "killed_leftovers"]
        assert [e["processes"] for e in killed] == [seen["forked"]]  # the children died with the call
    finally:
        await plugin.close()


def _plugin_processes(name: str) -> list[int]:
    uid = Launch(name=name, entry_point="", limits=None).uid
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if any(line.split()[1:2] == [str(uid)] for line in status.splitlines() if line.startswith("Uid:")):
            found.append(int(pid))
    return found


def test_serve_checks_the_sandbox_says_what_runs_in_it_and_starts_it_warm(site, tmp_path):
    env = cli_environment(tmp_path, PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    sandboxed = {p["name"]: p["sandboxed"] for p in json.loads(listed.stdout)}
    assert sandboxed["bomb"] is True and sandboxed["calculator"] is False
    shown = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert any(line.startswith("bomb 1.0.0 sandboxed") for line in shown.stdout.splitlines()), shown.stdout

    serving = subprocess.Popen([sys.executable, "-m", "plugdeck.cli.main", "serve", "--port", "0", "--plugin", "bomb",
                                "--plugin", "calculator", "--no-store"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in serving.stdout:
            lines.append(line)
            if line.strip().startswith("REST:"):
                break
        threading.Thread(target=serving.stdout.read, daemon=True).start()
        said = next((line for line in serving.stderr if line.startswith("sandbox:")), "")
        assert said == "sandbox: checked, it holds here; sandboxed: bomb\n", "".join(lines)
        threading.Thread(target=serving.stderr.read, daemon=True).start()
        assert _plugin_processes("bomb"), "the plugin's sandbox was not started with the server"
        url = next(line.split()[-1] for line in lines if "serving" in line)
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    finally:
        serving.terminate()
        serving.wait(30)
