"""The benchmark's phases: warm-up, framework CPU (zero latency), latency (alternating agents), throughput.

The latency and throughput phases run once per decode assumption (`Config.tool_call_styles`): what
a native tool call costs the model to write, its JSON envelope or only its name and arguments.
Each run record says which; the summary puts the two side by side.

Every run is checked: it counts only if its answer holds every expected value, the tool calls made
are exactly the expected ones (as a multiset), the mock saw nothing it could not follow and the
agent finished normally. Failed runs are kept in the raw records and reported, never averaged in.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .processes import MockServerProcess, WorkerProcess, can_pin
from .tasks import Task, build, canonical_call, suite


@dataclass
class Config:
    agents: list[str]
    groups: list[str]
    profile: str
    instances: int
    reps: int
    cpu_reps: int
    concurrency: list[int]
    throughput_groups: list[str]
    throughput_reps: int = 1
    tool_call_styles: list[str] = field(default_factory=lambda: ["envelope", "bare"])
    cpu_only_agents: list[str] = field(default_factory=list)  # reference points, in the CPU phase only
    pin: bool = True
    progress: bool = True


@dataclass
class Results:
    runs: list[dict[str, Any]] = field(default_factory=list)  # one record per counted or failed run
    throughput: list[dict[str, Any]] = field(default_factory=list)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)


def check(task: Task, outcome: dict[str, Any], stats: dict[str, Any] | None) -> list[str]:
    """Why a run does not count (empty when it does)."""
    problems = []
    if stats is None:
        problems.append("the mock server saw no request for this run")
    elif stats["errors"]:  # first: it says why the rest went wrong (the mock would not write a call)
        problems.append(f"the mock could not follow: {stats['errors'][0]}")
    if outcome.get("status") != "ok":
        problems.append(f"status {outcome.get('status')}: {outcome.get('error') or outcome.get('answer', '')[:200]}")
    missing = [v for v in task.expected["values"] if v not in outcome.get("answer", "")]
    if missing:
        problems.append(f"answer lacks {missing}: {outcome.get('answer', '')[:200]!r}")
    calls = sorted(canonical_call(name, arguments) for name, arguments in outcome.get("calls", []))
    if calls != task.expected["calls"]:
        extra = sorted(set(calls) - set(task.expected["calls"]))
        absent = sorted(set(task.expected["calls"]) - set(calls))
        problems.append(f"tool calls differ (extra {extra}, missing {absent}, {len(calls)} made)")
    return problems


class Bench:
    def __init__(self, config: Config):
        self.config = config
        self.tasks = suite(config.groups, config.instances)
        self.tags = itertools.count(1)
        self.results = Results()
        self.pin = config.pin and can_pin()

    def log(self, message: str) -> None:
        if self.config.progress:
            print(message, file=sys.stderr, flush=True)

    def tag(self) -> str:
        return f"{next(self.tags):06d}"

    def run(self) -> Results:
        server = MockServerProcess("zero", self.pin, self.config.tool_call_styles[0])
        workers: dict[str, WorkerProcess] = {}
        try:
            for agent in self.config.agents + self.config.cpu_only_agents:
                self.log(f"starting {agent}")
                workers[agent] = WorkerProcess(agent, server.base_url, self.pin)
                self.results.workers[agent] = {"ready": workers[agent].ready}
            self._warm_up(server, workers)
            if self.config.cpu_reps:  # at zero latency what a tool call costs to write takes no time
                self._sequential(server, workers, "cpu", "zero", self.config.cpu_reps, self.config.tool_call_styles[:1])
            for agent in self.config.cpu_only_agents:
                workers.pop(agent).stop()
            self._sequential(server, workers, "latency", self.config.profile, self.config.reps,
                             self.config.tool_call_styles)
            for agent, worker in workers.items():
                self.results.workers[agent]["after_latency"] = worker.ask({"cmd": "memory"})
            if self.config.concurrency:
                self._throughput(server, workers)
            for agent, worker in workers.items():
                self.results.workers[agent]["final"] = worker.ask({"cmd": "memory"})
            self.results.server = server.status()
        finally:
            for worker in workers.values():
                worker.stop()
            server.stop()
        return self.results

    def _warm_up(self, server: MockServerProcess, workers: dict[str, WorkerProcess]) -> None:
        """Every task once per agent, at zero latency, not counted: imports, caches, connections."""
        self.log("warming up")
        server.set_profile("zero")
        for agent, worker in workers.items():
            worker.ask({"cmd": "scale", "value": 0.0})
            tags = []
            for task in self.tasks:
                tags.append(self.tag())
                worker.ask({"cmd": "run", "tag": tags[-1], "question": task.question})
            server.take(tags)

    def _sequential(self, server: MockServerProcess, workers: dict[str, WorkerProcess], phase: str,
                    profile: str, reps: int, styles: list[str]) -> None:
        """Each task `reps` times per agent and decode assumption, one run at a time, agents
        alternating run by run (the agent that goes first rotates, so no agent always follows
        another), the assumptions alternating repetition by repetition."""
        server.set_profile(profile)
        scale = 0.0 if profile == "zero" else 1.0
        for worker in workers.values():
            worker.ask({"cmd": "scale", "value": scale})
        agents = list(workers)
        total = reps * len(styles) * len(self.tasks) * len(agents)
        done = 0
        for rep in range(reps):
            for style in styles:
                server.set_tool_call_tokens(style)
                for position, task in enumerate(self.tasks):
                    shift = (rep * len(self.tasks) + position) % len(agents)
                    for agent in agents[shift:] + agents[:shift]:
                        tag = self.tag()
                        outcome = workers[agent].ask({"cmd": "run", "tag": tag, "question": task.question})
                        stats = server.take([tag]).get(tag)
                        self._record(phase, agent, task, rep, style, outcome, stats)
                        done += 1
                self.log(f"{phase} ({style}): {done}/{total} runs")
        server.set_tool_call_tokens(styles[0])

    def _record(self, phase: str, agent: str, task: Task, rep: int, style: str, outcome: dict[str, Any],
                stats: dict[str, Any] | None) -> None:
        problems = check(task, outcome, stats)
        stats = stats or {}
        self.results.runs.append({
            "phase": phase, "agent": agent, "task": task.id, "group": task.group, "family": task.family, "rep": rep,
            "tool_call_tokens": style,
            "ok": not problems, "problems": problems, "wall": outcome["wall"], "cpu": outcome.get("cpu"),
            "tool_cpu": outcome.get("tool_cpu"), "model_calls": stats.get("calls", 0),
            "prompt_tokens": stats.get("prompt_tokens", 0), "completion_tokens": stats.get("completion_tokens", 0),
            "modes": stats.get("modes", {}), "tools_digests": stats.get("tools_digests", []),
            "tool_calls": len(outcome.get("calls", [])), "details": outcome.get("details", {}),
            "answer": outcome.get("answer", "")[:300],
        })
        if problems:
            self.log(f"  FAILED {phase} {agent} {task.id}: {'; '.join(problems)}")

    def _throughput(self, server: MockServerProcess, workers: dict[str, WorkerProcess]) -> None:
        """N tasks in flight at once (max(4, N) in all), from a mix of groups; agents alternate per
        batch, and the whole sweep repeats `throughput_reps` times."""
        mix = [build(group, i) for i in range(4) for group in self.config.throughput_groups]
        agents = list(workers)
        levels = [(rep, style, n) for rep in range(self.config.throughput_reps)
                  for style in self.config.tool_call_styles for n in self.config.concurrency]
        for round_number, (rep, style, concurrency) in enumerate(levels):
            server.set_tool_call_tokens(style)
            total = max(4, concurrency)
            batch = [mix[i % len(mix)] for i in range(total)]
            shift = round_number % len(agents)
            for agent in agents[shift:] + agents[:shift]:
                tags = [self.tag() for _ in batch]
                before = server.status()["cpu"]
                load = os.getloadavg()[0]
                started = time.perf_counter()
                reply = workers[agent].ask({"cmd": "batch", "concurrency": concurrency,
                                            "items": [[tag, task.question] for tag, task in zip(tags, batch)]})
                elapsed = time.perf_counter() - started
                status = server.status()
                server_cpu = status["cpu"] - before
                stats = server.take(tags)
                failures, walls = [], []
                for tag, task, outcome in zip(tags, batch, reply["runs"]):
                    problems = check(task, outcome, stats.get(tag))
                    if problems:
                        failures.append({"task": task.id, "agent": agent, "problems": problems})
                    else:
                        walls.append(outcome["wall"])
                self.results.throughput.append({
                    "agent": agent, "concurrency": concurrency, "rep": rep, "tool_call_tokens": style,
                    "peak_inflight": status["peak_inflight"],
                    "load_1m": (load + os.getloadavg()[0]) / 2, "tasks": total, "ok": total - len(failures),
                    "failures": failures[:5], "makespan": reply["makespan"], "walls": walls,
                    "cpu": reply["cpu"] - reply["tool_cpu"],
                    "model_calls": sum(s["calls"] for s in stats.values()),
                    "server_cpu_share": server_cpu / elapsed if elapsed else 0.0,
                    "rss_kb": reply["rss_kb"], "peak_rss_kb": reply["peak_rss_kb"],
                })
                self.log(f"throughput N={concurrency} ({style}) {agent}: {total / reply['makespan']:.2f} tasks/s, "
                         f"{total - len(failures)}/{total} correct")

