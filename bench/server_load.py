"""`plugdeck serve` under load: N concurrent streaming chats through the OpenAI-compatible API.

Each chat is a real agent run: the model (the echo model of tests/server/echo_model.py, in its own
process) asks for the calculator with the chat's canary, then answers with the tool's result,
streamed. The client checks every stream: no errors, the answer carries its own canary, every event
belongs to its own run. Added latency = the client's end-to-end time minus the time the model itself
spent on that chat (measured inside the model server), i.e. what plugdeck adds: HTTP in and out,
the agent loop, the tool, events, the run store. `in_run` is the part inside the run itself (its
duration minus its model calls, from its own events): it leaves out HTTP, and a client or model
slowed down by other work on the machine. Several rounds show whether memory stays bounded.

By default the 500 chats start over 5 s and the model takes 2.5 s to its first token, so all 500 are
open at once (`at_once`) without the start itself being the test; `--ramp-s 0 --first-token-ms 20`
sends them all at once at a fast model instead (a burst: throughput and queueing).

Run: python bench/server_load.py [--chats 500 --rounds 3 --ramp-s 5 --first-token-ms 2500 --chunk-ms 20]
Target (issue 6): p99 added latency under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _report import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ECHO_MODEL = ROOT / "tests" / "server" / "echo_model.py"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def memory_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def post_stream(host: str, port: int, path: str, body: dict) -> tuple[int, list[str]]:
    """POST on a fresh connection and read the streamed answer's `data:` lines. Plain asyncio, so that
    the load generator costs little next to the server it measures."""
    reader, writer = await asyncio.open_connection(host, port)
    payload = json.dumps(body).encode()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload)
    try:
        status = int((await reader.readline()).split()[1])
        chunked = False
        while (header := await reader.readline()) not in (b"\r\n", b""):
            chunked |= header.lower().startswith(b"transfer-encoding:") and b"chunked" in header.lower()
        if chunked:
            body_bytes = bytearray()
            while (size := int((await reader.readline()).strip() or b"0", 16)):
                body_bytes += await reader.readexactly(size)
                await reader.readline()
        else:
            body_bytes = await reader.read()
    finally:
        writer.close()
    lines = body_bytes.decode().splitlines()
    return status, [line[5:].strip() for line in lines if line.startswith("data:")]


async def chat(url: str, canary: int, delay: float) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = {"model": "plugdeck", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"Please check canary {canary}"}]}
    await asyncio.sleep(delay)
    started = time.perf_counter()
    outcome = {"canary": canary, "error": None, "mixed": False, "started": started}
    try:
        status, payloads = await post_stream(host, int(port), "/v1/chat/completions", body)
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome["ended"] = time.perf_counter()
    outcome["seconds"] = outcome["ended"] - started
    if status != 200 or not payloads or payloads[-1] != "[DONE]":
        outcome["error"] = f"HTTP {status}, the stream ended with {payloads[-1:]!r}"
        return outcome
    chunks = [json.loads(p) for p in payloads[:-1]]
    ids = {c["id"] for c in chunks}
    runs = {c["plugdeck"]["run_id"] for c in chunks if "run_id" in c.get("plugdeck", {})}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    expected_run = next(iter(ids)).removeprefix("chatcmpl-") if len(ids) == 1 else None
    outcome["mixed"] = text != f"canary {canary}" or runs != {expected_run}
    # Inside the server: the run's duration minus its model calls, as the run's own events tell it.
    events = [c["plugdeck"] for c in chunks if "type" in c.get("plugdeck", {})]
    finished = next(e for e in events if e["type"] == "run_finished")
    outcome["in_run"] = finished["duration"] - sum(e["latency"] for e in events if e["type"] == "model_called")
    return outcome


async def round_of(url: str, chats: int, ramp: float = 0.0) -> tuple[list[dict], float]:
    """`chats` chats, their starts spread evenly over `ramp` seconds (0: all at once)."""
    canaries = random.sample(range(10_000_000, 99_999_999), chats)
    started = time.perf_counter()
    results = await asyncio.gather(*(chat(url, c, ramp * i / chats) for i, c in enumerate(canaries)))
    return results, time.perf_counter() - started


def most_at_once(results: list[dict]) -> int:
    """The largest number of chats that were open at the same moment."""
    edges = sorted([(r["started"], 1) for r in results if "ended" in r] + [(r["ended"], -1) for r in results if "ended" in r])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak


def start(command: list[str], env: dict, ready: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if re.search(ready, line):
            return process, line
    raise RuntimeError(f"{command[:3]} did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=500, help="concurrent streaming chats per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-token-ms", type=float, default=2500.0, help="the model's time to first token")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="the model's time between streamed pieces")
    parser.add_argument("--ramp-s", type=float, default=5.0, help="spread the chats' starts over this many seconds "
                                                                   "(0: all at once)")
    parser.add_argument("--no-store", action="store_true", help="serve without the run store")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on this machine skews the times
    home = tempfile.mkdtemp(prefix="plugdeck-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGDECK_")}
    env.update(HOME=home, PLUGDECK_HOME=os.path.join(home, "data"), XDG_CONFIG_HOME=os.path.join(home, "config"))
    model, line = start([sys.executable, str(ECHO_MODEL), "--first-token-ms", str(args.first_token_ms),
                         "--chunk-ms", str(args.chunk_ms)], env, r'"port"')
    model_url = f"http://127.0.0.1:{json.loads(line)['port']}"
    serve_command = [sys.executable, "-m", "plugdeck.cli.main", "serve", "--port", "0", "--base-url",
                     f"{model_url}/v1", "--model", "echo", "--plugin", "calculator", "--planner", "loop"]
    server, line = start(serve_command + (["--no-store"] if args.no_store else []), env, r"serving .* on ")
    url = re.search(r"on (http://\S+)", line).group(1)
    cpus = os.cpu_count() or 1
    if cpus >= 2:  # the server on its own core; the client and the model share the other
        os.sched_setaffinity(server.pid, {1})
        os.sched_setaffinity(model.pid, {0})
        os.sched_setaffinity(0, {0})
    rows = []
    try:
        asyncio.run(round_of(url, min(50, args.chats)))  # warm up: imports, connections, caches
        baseline_rss, _ = memory_mb(server.pid)
        for number in range(1, args.rounds + 1):
            cpu_before = cpu_seconds(server.pid)
            results, wall = asyncio.run(round_of(url, args.chats, args.ramp_s))
            cpu = cpu_seconds(server.pid) - cpu_before
            model_seconds = httpx.get(f"{model_url}/stats").json()["seconds"]
            done = [r for r in results if not r["error"]]
            added = [1000 * (r["seconds"] - model_seconds[str(r["canary"])]) for r in done]
            total = [1000 * r["seconds"] for r in done]
            model_ms = [1000 * model_seconds[str(r["canary"])] for r in done]
            in_run = [1000 * r["in_run"] for r in done]
            rss, peak = memory_mb(server.pid)
            errors = [r["error"] for r in results if r["error"]]
            rows.append({
                "round": number, "chats": args.chats, "at_once": most_at_once(results), "errors": len(errors),
                "mixed_up": sum(1 for r in done if r["mixed"]),
                "model_ms_p50": statistics.median(model_ms) if model_ms else None,
                "e2e_ms_p50": statistics.median(total) if total else None,
                "e2e_ms_p99": percentile(total, 99) if total else None,
                "added_ms_p50": statistics.median(added) if added else None,
                "added_ms_p99": percentile(added, 99) if added else None,
                "added_ms_max": max(added) if added else None,
                "in_run_ms_p50": statistics.median(in_run) if in_run else None,
                "in_run_ms_p99": percentile(in_run, 99) if in_run else None,
                "chats_per_s": len(done) / wall, "server_cpu_ms_per_chat": 1000 * cpu / args.chats,
                "server_rss_mb": round(rss, 1), "server_peak_rss_mb": round(peak, 1),
            })
            if errors:
                print(f"round {number}: first errors: {errors[:3]}", file=sys.stderr)
    finally:
        server.terminate()
        model.terminate()
        server.wait(30)
        model.wait(10)
    report("server_load", rows, ["round", "chats", "at_once", "errors", "mixed_up", "model_ms_p50", "e2e_ms_p50", "e2e_ms_p99",
                                 "added_ms_p50", "added_ms_p99", "added_ms_max", "in_run_ms_p50", "in_run_ms_p99", "chats_per_s",
                                 "server_cpu_ms_per_chat", "server_rss_mb", "server_peak_rss_mb"],
           {"first_token_ms": args.first_token_ms, "chunk_ms": args.chunk_ms, "ramp_s": args.ramp_s,
            "store": not args.no_store, "load_average_before": load_before,
            "server_rss_mb_after_warmup": round(baseline_rss, 1), "cpus": cpus,
            "pinning": "server on CPU 1; client and model on CPU 0" if cpus >= 2 else "none",
            "target_added_ms_p99": 50})


if __name__ == "__main__":
    main()
