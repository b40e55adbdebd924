"""The knowledge benchmarks' smoke configurations run and print their figures (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_smoke(script: str, tmp_path: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, f"bench/{script}.py", "--smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_retrieval_smoke_reports_recall_for_every_mode(tmp_path):
    rows = run_smoke("knowledge_retrieval", tmp_path)["results"]
    assert {row["mode"] for row in rows} == {"keyword", "vector", "hybrid"}
    for row in rows:
        assert 0.0 <= row["recall@1"] <= row["recall@5"] <= 1.0
    # On the smoke set (12 passages) hybrid search finds the gold passage in its top 5 nearly always.
    assert next(r for r in rows if r["mode"] == "hybrid")["recall@5"] >= 0.9


@pytest.mark.parametrize("script", ["knowledge_ingest", "knowledge_search"])
def test_smoke_runs_and_reports(script, tmp_path):
    rows = run_smoke(script, tmp_path)["results"]
    assert rows and all(isinstance(row, dict) for row in rows)
