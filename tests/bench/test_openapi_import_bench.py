"""bench/openapi_import.py runs and reports the largest spec's tools (its figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_smoke_reports_the_spotify_spec(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PLUGDECK_HOME": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "bench/openapi_import.py", "--smoke"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (row,) = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    assert row["spec"] == "spotify-sonallux/fixed-spotify-open-api.yml"
    assert row["tools"] == 97 and row["schema_chars"] > 50_000
    assert row["load_ms"] > 0 and row["build_ms"] > 0
