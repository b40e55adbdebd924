"""bench/store_search.py and bench/store_refresh.py run (small) and report their rows; figures are not
asserted, only that each measured something real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tuf")
REPO = Path(__file__).resolve().parents[2]


def bench(tmp_path, script: str) -> dict:
    env = {**os.environ, "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, f"bench/{script}", "--smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_search_bench(tmp_path):
    document = bench(tmp_path, "store_search.py")
    rows = {row["path"]: row for row in document["results"]}
    assert {"in process, keyword (FTS5)"} < set(rows) and any(path.startswith("REST over loopback") for path in rows)
    if not document["semantic_off"]:  # the embedding model is installed: both halves measured
        assert {"in process, keyword + semantic, new query", "in process, keyword + semantic, repeated query",
                "REST over loopback, keyword + semantic"} < set(rows) and document["embed_seconds"] > 0
    assert all(row["listings"] == 200 and row["queries"] == 20 and row["p50_ms"] > 0 for row in rows.values())
    assert document["mean_hits"] > 0


def test_refresh_bench(tmp_path):
    document = bench(tmp_path, "store_refresh.py")
    steps = [row["step"] for row in document["results"]]
    assert steps[0].startswith("refresh") and steps[-1] == "install it again (warm cache)"
    assert all(row["packages"] == 300 and row["seconds"] > 0 for row in document["results"])
    assert document["results"][0]["metadata_kb"] > 0 and document["results"][-1]["metadata_kb"] == 0
