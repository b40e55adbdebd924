"""bench/toolcall_parsing.py runs and reports every case (its figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_smoke_reports_every_case(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "bench/toolcall_parsing.py", "--smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["case"]: row for row in document["results"]}
    assert {"native tool call", "hermes call in text", "qwen3-coder XML in text", "GLM-4.5 arg_key in text",
            "gpt-oss harmony in text", "reasoning + <think> answer"} <= set(rows)
    for row in rows.values():
        assert row["client_cpu_us"] > 0 and row["parser_us"] > 0 and row["parser_share_pct"] >= 0
