"""agentbench: plugdeck (tool loop, plan, auto) against LangGraph's `create_react_agent`, same mock model,
same tools, same prompts, runs alternating. Run from the repository root:

    python -m bench.agentbench                      # hosted-API latency, every family (about 45 minutes)
    python -m bench.agentbench --profile local8b    # a fast local model: framework overhead shows more
    python -m bench.agentbench --smoke              # correctness only, zero latency, well under a minute
    python -m bench.agentbench --families par8,chain,diamond,dynamic,timetable --reps 1 --cpu-reps 0 \
        --concurrency 1,64,256 --throughput-reps 1   # the wall-time, token and throughput targets (~13 min)

Timed figures are measured under both decode assumptions for native tool calls (`envelope`: the
model writes the call's JSON object; `bare`: only its name and arguments) and shown side by side;
each target is judged on the one less favourable to plugdeck. The mock model knows each task's
ideal graph but writes a call only from what the request told it (see oracle.py).

Prints tables (latency and tokens per task group, framework CPU, throughput, memory, targets) and
a JSON document as the last line; writes bench/results/<name>.json and <name>-runs.jsonl (every run).
Exits 1 when any run was wrong (its answer or its tool calls), 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

from bench._report import environment, report

from . import summary
from .harness import Bench, Config
from .processes import can_pin
from .profiles import PROFILES
from .runners import AGENTS, DEFAULT_AGENTS, DEFAULT_CPU_ONLY
from .tasks import FAMILIES, groups_for
from .tokenizer import TOOL_CALL_STYLES

PACKAGES = ["plugdeck", "httpx", "pydantic", "langgraph", "langgraph-prebuilt", "langchain-core",
            "langchain-openai", "openai"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.agentbench",
                                     description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--smoke", action="store_true",
                        help="CI check: zero latency, one instance and one run per group, concurrency 1,16")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="hosted", help="the mock model's latency")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"families or groups, comma-separated (families: {', '.join(FAMILIES)})")
    parser.add_argument("--agents", default=",".join(DEFAULT_AGENTS), help=f"from: {', '.join(AGENTS)}")
    parser.add_argument("--cpu-agents", default=",".join(DEFAULT_CPU_ONLY),
                        help="reference agents run only in the zero-latency CPU phase ('' for none)")
    parser.add_argument("--reps", type=int, default=3, help="runs per task and agent in the latency phase")
    parser.add_argument("--instances", type=int, default=2, help="tasks per group (different entities)")
    parser.add_argument("--cpu-reps", type=int, default=5, help="runs per task and agent at zero latency (0: skip)")
    parser.add_argument("--concurrency", default="1,16,64,256", help="throughput levels ('' to skip)")
    parser.add_argument("--throughput-reps", type=int, default=3, help="repetitions of the throughput sweep")
    parser.add_argument("--throughput-mix", default="par8,chain3", help="groups the throughput tasks come from")
    parser.add_argument("--tool-call-tokens", choices=["both", *TOOL_CALL_STYLES], default="both",
                        help="what a native tool call costs: the JSON object a model writes (envelope), only "
                             "its name and arguments (bare), or both, side by side (the default)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin clients and server to separate CPUs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.smoke:
        args.profile, args.reps, args.instances, args.cpu_reps = "zero", 1, 1, 0
        args.concurrency, args.throughput_reps = "1,16", 1
    return args


def langgraph_available() -> bool:
    return all(importlib.util.find_spec(name) for name in ("langgraph", "langchain_openai"))


def versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    cpu_agents = [a.strip() for a in args.cpu_agents.split(",") if a.strip() and args.cpu_reps]
    unknown = [a for a in agents + cpu_agents if a not in AGENTS]
    if unknown:
        sys.exit(f"unknown agent(s) {unknown}; choose from {', '.join(AGENTS)}")
    skipped = []
    if not langgraph_available():
        skipped = [a for a in agents + cpu_agents if AGENTS[a][0] == "langgraph"]
        agents = [a for a in agents if a not in skipped]
        cpu_agents = [a for a in cpu_agents if a not in skipped]
        print(f"LangGraph is not installed: skipped {', '.join(skipped) or 'nothing'}. "
              "Install the benchmark's extra to compare: pip install -e '.[bench]'", file=sys.stderr)
    try:
        groups = groups_for([f.strip() for f in args.families.split(",") if f.strip()])
        mix = groups_for(args.throughput_mix.split(","))
    except ValueError as exc:
        sys.exit(str(exc))
    config = Config(agents=agents, groups=groups, profile=args.profile, instances=args.instances, reps=args.reps,
                    cpu_reps=args.cpu_reps, concurrency=[int(n) for n in args.concurrency.split(",") if n.strip()],
                    throughput_groups=mix, throughput_reps=args.throughput_reps, cpu_only_agents=cpu_agents,
                    tool_call_styles=list(TOOL_CALL_STYLES) if args.tool_call_tokens == "both"
                    else [args.tool_call_tokens], pin=not args.no_pin,
                    progress=not args.quiet)
    load_before = os.getloadavg()
    results = Bench(config).run()
    load_after = os.getloadavg()

    styles = config.tool_call_styles
    latency = summary.latency_rows(results, groups, agents)
    side = [f"{field}_{style}" for field in ("wall_p50_s", "speedup_vs_langgraph", "completion_tokens",
                                             "prompt_tokens", "prompt_vs_langgraph") for style in styles]
    summary.print_table(f"Latency and tokens per task group ({args.profile} profile; correct runs only; "
                        f"native tool calls cost: {' | '.join(styles)})", latency,
                        ["group", "agent", "ok", "model_calls", *side, "cpu_ms_per_call"])
    cpu = summary.cpu_rows(results, agents + cpu_agents)
    summary.print_table("Framework CPU at zero model latency (client process CPU minus tool CPU)", cpu,
                        ["agent", "runs", "model_calls", "cpu_ms_per_call", "cpu_ms_per_task_p50",
                         "wall_ms_per_task_p50"])
    throughput = summary.throughput_rows(results)
    summary.print_table(f"Throughput ({args.throughput_mix} mix, {args.profile} profile, client on one core)",
                        throughput, ["concurrency", "agent", "tool_call_tokens", "ok", "tasks_per_s", "vs_langgraph",
                                     "wall_p50_s",
                                     "wall_p95_s", "inflation_p50", "cpu_ms_per_task", "cpu_ms_per_call",
                                     "cpu_ceiling_tasks_per_s", "ceiling_vs_langgraph", "peak_inflight",
                                     "peak_rss_mb", "load_1m"])
    memory = summary.memory_rows(results)
    summary.print_table("Memory and start-up per worker process", memory,
                        ["agent", "setup_s", "rss_start_mb", "rss_ready_mb", "peak_rss_sequential_mb", "peak_rss_mb"])
    failures = [r for r in results.runs if not r["ok"]] + [f for t in results.throughput for f in t["failures"]]
    summary.print_table("Failed runs (the first 20; each counted as failed, never averaged in)",
                        [{"task": f["task"], "agent": f.get("agent", "-"), "problem": f["problems"][0][:160]}
                         for f in failures[:20]], ["task", "agent", "problem"])
    failed_runs = sum(not r["ok"] for r in results.runs) + sum(t["tasks"] - t["ok"] for t in results.throughput)
    digests = summary.tool_schema_digests(results)
    tool_agents = {a: d for a, d in digests.items() if d}
    identical = len({tuple(d) for d in tool_agents.values()}) <= 1
    name = "agentbench-smoke" if args.smoke else f"agentbench-{args.profile}"
    out = Path(__file__).resolve().parents[1] / "results"
    out.mkdir(exist_ok=True)
    with open(out / f"{name}-runs.jsonl", "w") as raw:
        for run in results.runs:
            raw.write(json.dumps(run) + "\n")
    print(f"\nTool schemas sent by the tool-calling agents: {'identical' if identical else 'DIFFERENT'} "
          f"({tool_agents}). Failed runs: {failed_runs}. Raw runs: bench/results/{name}-runs.jsonl")
    extra = {
        "profile": PROFILES[args.profile].as_dict(), "tool_call_tokens": styles, "agents": agents,
        "skipped_agents": skipped,
        "groups": groups, "reps": args.reps, "instances": args.instances, "cpu_reps": args.cpu_reps,
        "concurrency": config.concurrency, "throughput_mix": mix, "pinned": config.pin and can_pin(),
        "cpu_model": cpu_model(), "versions": versions(), "environment": environment(),
        "latency": latency, "cpu": cpu, "throughput": throughput, "memory": memory,
        "tool_schemas_identical": identical, "failed_runs": failed_runs, "failures": failures[:20],
        "server": results.server, "load_average_before": load_before, "load_average_after": load_after, "command": " ".join(["python -m bench.agentbench", *(argv or sys.argv[1:])]),
    }
    report(name, summary.target_rows(results, agents),
           ["target", "agent", *(f"measured_{style}" for style in styles), "measured", "goal", "met"], extra)
    return 1 if failed_runs or not identical else 0


if __name__ == "__main__":
    sys.exit(main())
