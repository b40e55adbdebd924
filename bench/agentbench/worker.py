"""One agent in its own process, driven by the harness over stdin/stdout (one JSON object per line).

    python -m bench.agentbench.worker --agent langgraph --base-url http://127.0.0.1:PORT/v1

Commands: {"cmd": "run", "tag", "question"} runs once and reports wall time, CPU time (this
process, all threads, minus what the tools computed), the answer and the tool calls made;
{"cmd": "batch", "items": [[tag, question], ...], "concurrency": N} runs them N at a time;
{"cmd": "scale", "value": x} scales tool latency; {"cmd": "memory"}; {"cmd": "quit"}.
Library output goes to stderr, so stdout carries only the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback
from typing import Any

from . import tools
from .runners import AGENTS


def memory_kb() -> dict[str, int]:
    """Resident set size now and at its peak (VmRSS, VmHWM), in KiB."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    return {"rss_kb": found.get("VmRSS", 0), "peak_rss_kb": found.get("VmHWM", 0)}


async def run_one(runner, tag: str, question: str, timed: bool = True) -> dict[str, Any]:
    calls: list = []
    token = tools.RECORDED.set(calls)
    tool_cpu, cpu, started = tools.tool_cpu(), time.process_time(), time.perf_counter()
    result: dict[str, Any] = {"tag": tag}
    try:
        outcome = await runner.run(f"[run {tag}] {question}")
        result.update(answer=outcome.answer, status=outcome.status, details=outcome.details)
    except Exception as exc:  # the run failed: report it, keep the worker alive for the next one
        result.update(answer="", status="exception", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=5))
    finally:
        tools.RECORDED.reset(token)
    result["wall"] = time.perf_counter() - started
    if timed:
        result["cpu"] = time.process_time() - cpu
        result["tool_cpu"] = tools.tool_cpu() - tool_cpu
    result["calls"] = calls
    return result


async def run_batch(runner, items: list[list[str]], concurrency: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(concurrency)

    async def gated(tag: str, question: str) -> dict[str, Any]:
        async with gate:
            return await run_one(runner, tag, question, timed=False)

    tool_cpu, cpu, started = tools.tool_cpu(), time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(asyncio.create_task(gated(tag, q)) for tag, q in items))
    return {"makespan": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "tool_cpu": tools.tool_cpu() - tool_cpu, "runs": results, **memory_kb()}


async def handle(runner, command: dict[str, Any]) -> dict[str, Any]:
    kind = command["cmd"]
    if kind == "run":
        return await run_one(runner, command["tag"], command["question"])
    if kind == "batch":
        return await run_batch(runner, command["items"], command["concurrency"])
    if kind == "scale":
        tools.set_latency_scale(command["value"])
        return {"scale": command["value"]}
    if kind in ("memory", "quit"):
        return memory_kb()
    return {"error": f"unknown command {kind!r}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", choices=sorted(AGENTS), required=True)
    parser.add_argument("--base-url", required=True)
    args = parser.parse_args()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    os.environ.pop("LANGSMITH_TRACING", None)  # no tracing, whatever the caller's environment says
    os.environ.pop("LANGCHAIN_TRACING_V2", None)

    def send(payload: dict[str, Any]) -> None:
        protocol.write(json.dumps(payload, default=str) + "\n")

    before = memory_kb()
    started = time.perf_counter()
    runner = AGENTS[args.agent][1](args.base_url)
    send({"ready": True, "setup_s": time.perf_counter() - started, "rss_start_kb": before["rss_kb"],
          **memory_kb()})
    loop = asyncio.new_event_loop()
    for line in sys.stdin:
        command = json.loads(line)
        send(loop.run_until_complete(handle(runner, command)))
        if command["cmd"] == "quit":
            break
    loop.close()


if __name__ == "__main__":
    main()
