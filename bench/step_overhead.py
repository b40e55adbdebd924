"""Framework CPU per agent step, with a zero-latency scripted model and an instant tool.

A step is one model turn plus the tool call it asks for. The model's turns are prepared
ModelResponse objects, so nearly all CPU measured is plugdeck's own: the loop, argument
validation, events, the executor. A hand-written asyncio loop doing the same calls is the
baseline in the same run. Target (issue 2): under 0.3 ms per step.
Run: python bench/step_overhead.py [--runs N --steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _report import report  # noqa: E402

from plugdeck import Agent, RunStore, ScriptedModel, tool  # noqa: E402
from plugdeck.models.base import ModelResponse, ToolCall  # noqa: E402


@tool
async def lookup(key: str, n: int = 1) -> dict:
    """Look a key up."""
    return {"key": key, "n": n}


def turns(steps: int) -> list[ModelResponse]:
    calls = [ModelResponse(tool_calls=[ToolCall(f"c{i}", "lookup", {"key": f"k{i}", "n": i})], finish_reason="tool_calls")
             for i in range(steps)]
    return [*calls, ModelResponse(text="done")]


async def agent_runs(runs: int, steps: int, sinks) -> float:
    prepared = turns(steps)
    cpu = time.process_time()
    for _ in range(runs):
        run = await Agent(ScriptedModel(prepared), tools=[lookup], max_steps=steps + 1, sinks=sinks).run("go")
        assert run.ok and run.usage.tool_calls == steps, run
    return time.process_time() - cpu


async def baseline_runs(runs: int, steps: int) -> float:
    """What a minimal hand-rolled loop costs: call the model stand-in and the tool, keep messages."""
    prepared = turns(steps)
    cpu = time.process_time()
    for _ in range(runs):
        messages = [{"role": "user", "content": "go"}]
        for response in prepared:
            messages.append({"role": "assistant", "tool_calls": response.tool_calls})
            for call in response.tool_calls:
                result = await lookup.func(**call.arguments)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
    return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    total = args.runs * (args.steps + 1)  # the answering turn is a step too
    asyncio.run(agent_runs(5, args.steps, []))  # warm up imports and caches
    rows = []
    baseline = asyncio.run(baseline_runs(args.runs, args.steps))
    rows.append({"case": "hand-written asyncio loop (baseline)", "ms_per_step": 1000 * baseline / total})
    plain = asyncio.run(agent_runs(args.runs, args.steps, []))
    rows.append({"case": "plugdeck Agent, no sinks", "ms_per_step": 1000 * plain / total})
    with tempfile.TemporaryDirectory() as tmp, RunStore(os.path.join(tmp, "runs.db")) as store:
        cpu = time.process_time()
        stored = asyncio.run(agent_runs(args.runs, args.steps, [store.record]))
        store.flush()
        with_writer = time.process_time() - cpu  # process-wide: the writer thread counts too
    rows.append({"case": "plugdeck Agent + run store (CPU during the runs)", "ms_per_step": 1000 * stored / total})
    rows.append({"case": "plugdeck Agent + run store (CPU until all is written)", "ms_per_step": 1000 * with_writer / total})
    report("step_overhead", rows, ["case", "ms_per_step"],
           {"runs": args.runs, "steps_per_run": args.steps + 1, "target_ms_per_step": 0.3})


if __name__ == "__main__":
    main()
