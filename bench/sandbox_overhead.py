"""What the sandbox costs (issue 14): a warm sandboxed call vs the same tool in process, cold start,
and memory per warm plugin.

- in process: `Tool.call` of a small tool (add two numbers), as a built-in runs;
- sandboxed warm: the same tool in a third-party plugin, its sandbox already started (MCP over stdio to
  the runner under bwrap); added = sandboxed p50 - in-process p50 (goal: < 2 ms);
- cold start: `describe` (a fresh sandbox imports the plugin and prints its manifest) and the first
  call (bwrap + Python + the runner + the MCP handshake), each in a fresh sandbox (goal: < 300 ms),
  for the runner's own MCP server (wire.py) and, in the same run, the MCP SDK's (--sdk) it replaced;
- imports inside the sandbox: the runner started with -X importtime; the slowest top-level imports;
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
    return {"min_ms": ordered[0] * 1000, "p50_ms": statistics.median(ordered) * 1000, "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000}


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


def _imports_inside(site: Path) -> dict[str, float]:
    """The runner's imports inside a fresh sandbox (describe mode, -X importtime): the slowest top-level
    ones, cumulative ms, and their total."""
    import subprocess

    from plugdeck.plugins.sandbox.launch import Launch, command
    from plugdeck.plugins.sandbox.limits import Limits

    argv = command(Launch(name="adder", entry_point="bench_adder:plugin", limits=Limits(), paths=[str(site)],
                          mode="describe"))
    at = argv.index("-I")
    argv[at:at] = ["-X", "importtime"]
    done = subprocess.run(argv, env={}, capture_output=True, text=True, timeout=60)
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # top level: its figure includes what it imported
                top[name.strip()] = top.get(name.strip(), 0) + int(parts[1]) / 1000
    slowest = dict(sorted(top.items(), key=lambda item: -item[1])[:8])
    return {**slowest, "total": sum(top.values())}


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

    manifest = sandboxed.describe("bench_adder:plugin", "adder", paths=[str(site)])
    for sdk, label in ((False, "runner's own server"), (True, "MCP SDK server")):
        describe, first = [], []
        for _ in range(args.cold):
            if not sdk:  # describing never serves: one runner
                sandboxed._described.clear()
                started = time.perf_counter()
                sandboxed.describe("bench_adder:plugin", "adder", paths=[str(site)])
                describe.append(time.perf_counter() - started)
            runtime = sandboxed.SandboxRuntime("adder", "bench_adder:plugin", manifest, paths=[str(site)], sdk=sdk)
            started = time.perf_counter()
            assert await runtime.call("add", {"a": 1, "b": 2}, 30.0) == 3
            first.append(time.perf_counter() - started)
            await runtime.close()
        if not sdk:
            rows.append({"case": "cold: describe (fresh sandbox)", **_ms(describe)})
        rows.append({"case": f"cold: first call (fresh sandbox, {label})", **_ms(first)})
    imports = _imports_inside(site)

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
    report("sandbox_overhead", rows, ["case", "min_ms", "p50_ms", "p95_ms"],
           {"added_per_warm_call_p50_ms": added, "warm_plugin_rss_mb": rss / 1024, "warm_plugin_pss_mb": pss / 1024,
            "calls": args.calls, "cold_runs": args.cold, "slowest_imports_inside_ms": imports})
    print(f"added per warm call (p50): {added:.2f} ms; memory per warm plugin: RSS {rss / 1024:.1f} MB, "
          f"PSS {pss / 1024:.1f} MB")
    print("slowest imports inside the sandbox (ms, cumulative): "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in imports.items()))


if __name__ == "__main__":
    asyncio.run(main())
