"""What the sandbox costs (issue 14): a warm sandboxed call vs the same tool in process, cold start,
and memory per warm plugin.

- in process: `Tool.call` of a small tool (add two numbers), as a built-in runs;
- sandboxed warm: the same tool in a third-party plugin, its sandbox already started (MCP over stdio to
  the runner under bwrap); added = sandboxed p50 - in-process p50 (goal: < 2 ms);
- cold start: `describe` (a fresh sandbox imports the plugin and prints its manifest) and the first
  call (bwrap + Python + the MCP SDK + handshake), each in a fresh sandbox (goal: < 300 ms);
- memory: resident set (RSS and PSS) of the warm sandbox's processes (bwrap and the runner).
Run: python bench/sandbox_overhead.py [--calls N] [--cold N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _report import report

PLUGIN = '''
from plugdeck import Plugin, tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


plugin = Plugin(name="adder", tools=[add])
'''


def _ms(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50_ms": statistics.median(ordered) * 1000, "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000}


def _memory_kb(uid: int) -> tuple[int, int]:
    """RSS and PSS, in kB, of every process running as `uid` (the warm sandbox's runner), plus bwrap."""
    rss = pss = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        uids = next(line.split()[1:2] for line in status.splitlines() if line.startswith("Uid:"))
        if uids == [str(uid)]:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.split()[1:2]}
            rss, pss = rss + fields.get("Rss", 0), pss + fields.get("Pss", 0)
    return rss, pss


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()

    from plugdeck.plugins.sandbox import plugin as sandboxed
    from plugdeck.plugins.sandbox.launch import Launch
    from plugdeck.tools import tool

    site = Path(tempfile.mkdtemp(prefix="plugdeck-bench-"))
    site.chmod(0o755)  # the plugin runs under its own UID: its files must be readable by others
    (site / "bench_adder.py").write_text(PLUGIN)
    sys.path.insert(0, str(site))

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    rows = []
    local = []
    for i in range(args.calls):
        started = time.perf_counter()
        await add.call({"a": i, "b": 1})
        local.append(time.perf_counter() - started)
    rows.append({"case": "in process", **_ms(local)})

    describe, first = [], []
    for _ in range(args.cold):
        sandboxed._described.clear()
        started = time.perf_counter()
        plugin = sandboxed.sandboxed_plugin("bench_adder:plugin", "adder", paths=[str(site)])
        describe.append(time.perf_counter() - started)
        started = time.perf_counter()
        await plugin.tool("add").call({"a": 1, "b": 2})
        first.append(time.perf_counter() - started)
        await plugin.close()
    rows.append({"case": "cold: describe (fresh sandbox)", **_ms(describe)})
    rows.append({"case": "cold: first call (fresh sandbox)", **_ms(first)})

    plugin = sandboxed.sandboxed_plugin("bench_adder:plugin", "adder", paths=[str(site)])
    await plugin.tool("add").call({"a": 1, "b": 2})
    warm = []
    for i in range(args.calls):
        started = time.perf_counter()
        assert await plugin.tool("add").call({"a": i, "b": 1}) == i + 1
        warm.append(time.perf_counter() - started)
    rows.append({"case": "sandboxed, warm", **_ms(warm)})
    uid = Launch(name="adder", entry_point="", limits=plugin.runtime.limits).uid
    rss, pss = _memory_kb(uid)
    await plugin.close()
    added = (statistics.median(warm) - statistics.median(local)) * 1000
    report("sandbox_overhead", rows, ["case", "p50_ms", "p95_ms"],
           {"added_per_warm_call_p50_ms": added, "warm_plugin_rss_mb": rss / 1024, "warm_plugin_pss_mb": pss / 1024,
            "calls": args.calls, "cold_runs": args.cold})
    print(f"added per warm call (p50): {added:.2f} ms; memory per warm plugin: RSS {rss / 1024:.1f} MB, "
          f"PSS {pss / 1024:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
