"""How long `import plugdeck` and `plugdeck --help` take, against `import langchain_core`, same run.

Each figure is the best of N fresh processes, minus a bare interpreter start, in seconds.
Targets (issue 2): import under 0.15 s, and at most a third of langchain_core's.
Run: python bench/import_time.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from _report import report

CASES = {
    "python (baseline start)": [sys.executable, "-c", "pass"],
    "import plugdeck": [sys.executable, "-c", "import plugdeck"],
    "from plugdeck import Agent, tool": [sys.executable, "-c", "from plugdeck import Agent, tool"],
    "plugdeck --help": [sys.executable, "-m", "plugdeck.cli.main", "--help"],
    "import langchain_core": [sys.executable, "-c", "import langchain_core"],
    "from langchain_core.tools import tool": [sys.executable, "-c", "from langchain_core.tools import tool"],
}


def best_of(command: list[str], repeat: int) -> float | None:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            return None  # not installed (langchain_core comes with the bench extra)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    raw = {name: best_of(cmd, args.repeat) for name, cmd in CASES.items()}
    base = raw.pop("python (baseline start)")
    rows = [{"case": name, "seconds": None if t is None else round(t - base, 4)} for name, t in raw.items()]
    ours, theirs = raw["import plugdeck"] - base, raw["import langchain_core"]
    ratio = None if theirs is None else round(ours / (theirs - base), 3)
    report("import_time", rows, ["case", "seconds"],
           {"interpreter_start": round(base, 4), "plugdeck_over_langchain_core": ratio,
            "targets": {"import plugdeck": "< 0.15 s", "ratio": "<= 0.333"}})
    if ratio is not None:
        print(f"\nimport plugdeck / import langchain_core = {ratio}")


if __name__ == "__main__":
    sys.path.insert(0, shutil.os.path.dirname(__file__))
    main()
