"""Figures from the raw records: per-group latency and tokens, framework CPU, throughput, memory,
and the issue's targets as ratios against LangGraph in the same run. Only correct runs count.

Every timed figure is given under each decode assumption the run measured (what a native tool
call costs to write: `envelope`, its JSON object; `bare`, its name and arguments only), side by
side, and a target is judged on the one less favourable to plugdeck: the figure to quote."""

from __future__ import annotations

import math
import statistics
from typing import Any

from .harness import Results

BASELINE = "langgraph"
PRICES = (2.5, 10.0)  # USD per million prompt / completion tokens (a GPT-4o-class price list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _framework_cpu_ms_per_call(runs: list[dict[str, Any]]) -> float | None:
    calls = sum(r["model_calls"] for r in runs)
    return 1000 * sum(r["cpu"] - r["tool_cpu"] for r in runs) / calls if calls else None


def styles_of(results: Results) -> list[str]:
    """The decode assumptions the runs were measured under, in the order they ran."""
    return list(dict.fromkeys(r["tool_call_tokens"] for r in [*results.runs, *results.throughput]))


def group_stats(results: Results, phase: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (group, agent, decode assumption)."""
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in results.runs:
        if run["phase"] == phase:
            grouped.setdefault((run["group"], run["agent"], run["tool_call_tokens"]), []).append(run)
    out = {}
    for key, runs in grouped.items():
        good = [r for r in runs if r["ok"]]
        walls = [r["wall"] for r in good]
        prompt = _median([r["prompt_tokens"] for r in good])
        completion = _median([r["completion_tokens"] for r in good])
        out[key] = {
            "group": key[0], "agent": key[1], "tool_call_tokens": key[2], "ok": f"{len(good)}/{len(runs)}",
            "good": len(good), "runs": len(runs),
            "wall_p50_s": percentile(walls, 50), "wall_p95_s": percentile(walls, 95),
            "model_calls": _median([r["model_calls"] for r in good]),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "cost_usd": (prompt * PRICES[0] + completion * PRICES[1]) / 1e6 if good else None,
            "cpu_ms_per_call": _framework_cpu_ms_per_call(good),
            "cpu_ms_per_task": _median([1000 * (r["cpu"] - r["tool_cpu"]) for r in good]),
        }
    for (group, agent, style), row in out.items():
        base = out.get((group, BASELINE, style))
        row["speedup_vs_langgraph"] = _ratio(base and base["wall_p50_s"], row["wall_p50_s"])
        row["prompt_vs_langgraph"] = _ratio(row["prompt_tokens"], base and base["prompt_tokens"])
    return out


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


# Per-assumption fields of a latency row; side by side they become e.g. speedup_vs_langgraph_bare.
SIDE_BY_SIDE = ["wall_p50_s", "wall_p95_s", "speedup_vs_langgraph", "completion_tokens", "prompt_tokens",
                "prompt_vs_langgraph", "cost_usd"]


def latency_rows(results: Results, groups: list[str], agents: list[str], phase: str = "latency") -> list[dict]:
    """One row per group and agent, every assumption's figures side by side, plus the figure to
    quote: the lower speedup and the higher prompt-token ratio of the assumptions measured."""
    stats = group_stats(results, phase)
    styles = styles_of(results)
    rows = []
    for group in groups:
        for agent in agents:
            per_style = [stats[(group, agent, s)] for s in styles if (group, agent, s) in stats]
            if not per_style:
                continue
            row: dict[str, Any] = {"group": group, "agent": agent,
                                   "ok": f"{sum(r['good'] for r in per_style)}/{sum(r['runs'] for r in per_style)}",
                                   "model_calls": _median([r["model_calls"] for r in per_style if r["model_calls"]]),
                                   "cpu_ms_per_call": _median([r["cpu_ms_per_call"] for r in per_style
                                                               if r["cpu_ms_per_call"] is not None])}
            for r in per_style:
                row.update({f"{field}_{r['tool_call_tokens']}": r[field] for field in SIDE_BY_SIDE})
            speedups = [r["speedup_vs_langgraph"] for r in per_style]
            prompts = [r["prompt_vs_langgraph"] for r in per_style]
            row["speedup_vs_langgraph"] = None if None in speedups else min(speedups)
            row["prompt_vs_langgraph"] = None if None in prompts else max(prompts)
            rows.append(row)
    return rows


def cpu_rows(results: Results, agents: list[str]) -> list[dict[str, Any]]:
    rows = []
    for agent in agents:
        runs = [r for r in results.runs if r["phase"] == "cpu" and r["agent"] == agent and r["ok"]]
        if not runs:
            continue
        rows.append({"agent": agent, "runs": len(runs), "model_calls": sum(r["model_calls"] for r in runs),
                     "cpu_ms_per_call": _framework_cpu_ms_per_call(runs),
                     "cpu_ms_per_task_p50": _median([1000 * (r["cpu"] - r["tool_cpu"]) for r in runs]),
                     "wall_ms_per_task_p50": _median([1000 * r["wall"] for r in runs])})
    return rows


def throughput_rows(results: Results) -> list[dict[str, Any]]:
    """Per (concurrency, agent), over the sweep's repetitions: median tasks/s (correct tasks only),
    latency over all its runs, and the CPU-bound ceiling (tasks per second of client CPU), which
    other load on the machine disturbs far less than tasks/s."""
    grouped: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for batch in results.throughput:
        grouped.setdefault((batch["concurrency"], batch["agent"], batch["tool_call_tokens"]), []).append(batch)
    single = {(agent, style): percentile([w for b in batches for w in b["walls"]], 50)
              for (n, agent, style), batches in grouped.items() if n == 1}
    rows = []
    for (concurrency, agent, style), batches in grouped.items():
        walls = [w for b in batches for w in b["walls"]]
        cpu_per_task = _median([b["cpu"] / b["tasks"] for b in batches])
        calls = sum(b["model_calls"] for b in batches)
        p50 = percentile(walls, 50)
        rows.append({
            "concurrency": concurrency, "agent": agent, "tool_call_tokens": style, "reps": len(batches),
            "ok": f"{sum(b['ok'] for b in batches)}/{sum(b['tasks'] for b in batches)}",
            "tasks_per_s": _median([b["ok"] / b["makespan"] for b in batches]),
            "tasks_per_s_best": max(b["ok"] / b["makespan"] for b in batches),
            "wall_p50_s": p50, "wall_p95_s": percentile(walls, 95), "inflation_p50": _ratio(p50, single.get((agent, style))),
            "cpu_ms_per_task": 1000 * cpu_per_task,
            "cpu_ms_per_call": 1000 * sum(b["cpu"] for b in batches) / calls if calls else None,
            "cpu_ceiling_tasks_per_s": 1 / cpu_per_task if cpu_per_task else None,
            "peak_inflight": max(b["peak_inflight"] for b in batches),
            "peak_rss_mb": max(b["peak_rss_kb"] for b in batches) / 1024,
            "server_cpu_share": max(b["server_cpu_share"] for b in batches),
            "load_1m": _median([b["load_1m"] for b in batches]),
        })
    for row in rows:
        base = next((r for r in rows if r["agent"] == BASELINE and r["concurrency"] == row["concurrency"]
                     and r["tool_call_tokens"] == row["tool_call_tokens"]), None)
        row["vs_langgraph"] = _ratio(row["tasks_per_s"], base and base["tasks_per_s"])
        row["ceiling_vs_langgraph"] = _ratio(row["cpu_ceiling_tasks_per_s"], base and base["cpu_ceiling_tasks_per_s"])
    order, styles = list(results.workers), styles_of(results)
    return sorted(rows, key=lambda r: (r["concurrency"], order.index(r["agent"]), styles.index(r["tool_call_tokens"])))


def memory_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    for agent, info in results.workers.items():
        ready = info["ready"]
        rows.append({"agent": agent, "setup_s": ready["setup_s"], "rss_start_mb": ready["rss_start_kb"] / 1024,
                     "rss_ready_mb": ready["rss_kb"] / 1024,
                     "peak_rss_sequential_mb": _mb(info.get("after_latency")), "peak_rss_mb": _mb(info.get("final"))})
    return rows


def _mb(memory: dict[str, int] | None) -> float | None:
    return memory["peak_rss_kb"] / 1024 if memory else None


TARGETS = [
    ("wall time, 8 independent lookups (par8)", "speedup", ["par8"], ">=", 1.3),
    ("wall time, 3-step chains (chain3)", "speedup", ["chain3"], ">=", 1.8),
    ("wall time, diamonds (worst of diamond2-4)", "speedup", ["diamond2", "diamond3", "diamond4"], ">=", 1.6),
    ("wall time, branch-dependent (dynamic): <= 10% slower", "speedup", ["dynamic"], ">=", 1 / 1.1),
    ("prompt tokens, chains (worst of chain2/3/5)", "prompt", ["chain2", "chain3", "chain5"], "<=", 1 / 2.5),
    ("framework CPU per model call over HTTP, ms (zero latency)", "cpu", [], "<=", 1.0),
    ("throughput at the highest concurrency vs LangGraph", "throughput", [], ">=", 2.0),
    ("CPU-bound throughput ceiling at the highest concurrency vs LangGraph", "ceiling", [], ">=", 2.0),
]


def target_rows(results: Results, agents: list[str]) -> list[dict[str, Any]]:
    """Each target per agent, measured under each decode assumption (`measured_envelope`, ...), and
    `measured`: the one less favourable to plugdeck, which `met` judges (the figure to quote)."""
    stats = group_stats(results, "latency")
    cpu = {r["agent"]: r["cpu_ms_per_call"] for r in cpu_rows(results, agents)}
    throughput = throughput_rows(results)
    top = max((r["concurrency"] for r in throughput), default=None)
    styles = styles_of(results)
    rows = []
    for name, kind, groups, sense, goal in TARGETS:
        for agent in agents:
            if agent.startswith(BASELINE):
                continue
            per_style: dict[str, float | None] = {}
            for style in styles:
                value = None
                if kind in ("speedup", "prompt"):
                    field = "speedup_vs_langgraph" if kind == "speedup" else "prompt_vs_langgraph"
                    values = [stats[(g, agent, style)][field] for g in groups if (g, agent, style) in stats]
                    if values and None not in values:
                        value = min(values) if sense == ">=" else max(values)
                elif kind in ("throughput", "ceiling"):
                    field = "vs_langgraph" if kind == "throughput" else "ceiling_vs_langgraph"
                    value = next((r[field] for r in throughput if r["agent"] == agent and r["concurrency"] == top
                                  and r["tool_call_tokens"] == style), None)
                per_style[style] = value
            if kind == "cpu":  # measured at zero latency, where writing a tool call takes no time
                value = cpu.get(agent)
                per_style = {style: value for style in styles}
            values = list(per_style.values())
            value = None if not values or None in values else min(values) if sense == ">=" else max(values)
            met = None if value is None else (value >= goal if sense == ">=" else value <= goal)
            label = name.replace("the highest concurrency", f"{top} concurrent tasks" if top else "(not run)")
            rows.append({"target": label, "agent": agent,
                         **{f"measured_{style}": v for style, v in per_style.items()},
                         "measured": value, "goal": f"{sense} {goal:.3g}",
                         "met": {True: "yes", False: "MISSED", None: "n/a"}[met]})
    return rows


def tool_schema_digests(results: Results) -> dict[str, list[str]]:
    """The tool schemas each agent sent (hashes): identical lists mean identical tools."""
    seen: dict[str, set[str]] = {}
    for run in results.runs:
        seen.setdefault(run["agent"], set()).update(run["tools_digests"])
    return {agent: sorted(digests) for agent, digests in seen.items()}


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        return
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
