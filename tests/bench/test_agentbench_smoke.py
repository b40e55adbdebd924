"""agentbench's smoke configuration, as CI runs it: every agent gets every task family right.

Correctness only: no timing is asserted. The structural facts checked here (how many model calls
each planner needs, that plugdeck's tool loop and LangGraph send the model the very same prompts)
come from the mock server's own counts and are deterministic.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGDECK_AGENTS = {"plugdeck-loop", "plugdeck-plan", "plugdeck-auto"}
GROUPS = {"par2", "par4", "par8", "par16", "chain2", "chain3", "chain5", "diamond2", "diamond3", "diamond4",
          "mixed", "math", "retrieval", "dynamic"}


def langgraph_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("langgraph", "langchain_openai"))


def test_smoke_configuration_gets_every_family_right(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLUGDECK_", "LANGSMITH_", "LANGCHAIN_"))}
    env = {**clean, "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    result = subprocess.run([sys.executable, "-m", "bench.agentbench", "--smoke", "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert document["failed_runs"] == 0 and document["failures"] == []

    rows = {(row["group"], row["agent"]): row for row in document["latency"]}
    ran = {agent for _, agent in rows}
    assert PLUGDECK_AGENTS <= ran
    for (group, agent), row in rows.items():
        assert row["ok"] == "1/1", (group, agent, row)
    assert {group for group, _ in rows} == GROUPS

    # The compiled plan answers a 3-step chain in 2 model calls; the tool loop needs 4. A
    # branch-dependent task makes the plan replan (plan, join, plan, join).
    assert rows[("chain3", "plugdeck-plan")]["model_calls"] == 2
    assert rows[("chain3", "plugdeck-loop")]["model_calls"] == 4
    assert rows[("dynamic", "plugdeck-plan")]["model_calls"] == 4
    throughput = {(row["concurrency"], row["agent"]) for row in document["throughput"]}
    assert {(16, agent) for agent in PLUGDECK_AGENTS} <= throughput

    if langgraph_installed():
        assert "langgraph" in ran and document["skipped_agents"] == []
        assert document["tool_schemas_identical"]
        for group in GROUPS:
            # Same tools, same system prompt, same conversation: the model sees identical prompts.
            assert rows[(group, "plugdeck-loop")]["prompt_tokens"] == rows[(group, "langgraph")]["prompt_tokens"]
            assert rows[(group, "langgraph")]["model_calls"] == rows[(group, "plugdeck-loop")]["model_calls"]
    else:
        assert "langgraph" in document["skipped_agents"] and "langgraph" not in ran
        warnings.warn("LangGraph is not installed, so agentbench ran plugdeck's planners only "
                      "(install the bench extra to compare: pip install -e '.[bench]')")
