"""The mock server and the agent workers as child processes, pinned apart on a multi-core machine.

The workers (the clients being measured) share CPU 0; the server and the harness use CPU 1, so the
server's work never counts as an agent's CPU time nor competes with it for a core.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLIENT_CPUS, SERVER_CPUS = {0}, {1}
REPLY_TIMEOUT = 1800.0


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2


def _spawn(module: str, arguments: list[str], cpus: set[int], pin: bool) -> tuple[subprocess.Popen, Any]:
    log = tempfile.TemporaryFile(mode="w+")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("LANGSMITH_TRACING", None)
    env.pop("LANGCHAIN_TRACING_V2", None)
    process = subprocess.Popen([sys.executable, "-m", module, *arguments], cwd=REPO, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    if pin:
        os.sched_setaffinity(process.pid, cpus)
    return process, log


def _read_line(process: subprocess.Popen, log, what: str, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        log.seek(0)
        tail = log.read()[-3000:]
        state = "timed out" if not ready else f"exited with code {process.poll()}"
        raise RuntimeError(f"{what} {state} without answering. Its stderr ends with:\n{tail}")
    return json.loads(line)


class MockServerProcess:
    def __init__(self, profile: str, pin: bool, tool_call_tokens: str = "envelope"):
        self.process, self.log = _spawn("bench.agentbench.server",
                                        ["--profile", profile, "--tool-call-tokens", tool_call_tokens], SERVER_CPUS, pin)
        self.port = _read_line(self.process, self.log, "the mock server", timeout=60)["port"]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _call(self, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def take(self, tags: list[str]) -> dict[str, Any]:
        return self._call("/agentbench/take", {"tags": tags})

    def set_profile(self, name: str) -> None:
        self._call("/agentbench/profile", {"name": name})

    def set_tool_call_tokens(self, style: str) -> None:
        self._call("/agentbench/tool-call-tokens", {"style": style})

    def status(self) -> dict[str, Any]:
        return self._call("/agentbench/status")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


class WorkerProcess:
    def __init__(self, agent: str, base_url: str, pin: bool):
        self.agent = agent
        self.process, self.log = _spawn("bench.agentbench.worker", ["--agent", agent, "--base-url", base_url],
                                        CLIENT_CPUS, pin)
        self.ready = _read_line(self.process, self.log, f"worker {agent}", timeout=300)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return _read_line(self.process, self.log, f"worker {self.agent}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.ask({"cmd": "quit"})
            except (RuntimeError, BrokenPipeError):
                self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()
