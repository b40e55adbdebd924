"""What extensions cost at start-up: reading the plugdeck.* entry points and adding the commands that
packages declare, with no extension package installed and with examples/plugdeck-echo installed.

    python bench/extension_startup.py [--runs 9]

Prints JSON, then a table. Each figure is the median over fresh processes; `plugdeck ask` (a built-in
command) should read no entry point for commands at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugdeck-echo"
PROBE = r"""
import sys, time
t0 = time.perf_counter()
import plugdeck.cli.main as cli
t1 = time.perf_counter()
cli._add_installed_commands(sys.argv[1:])
t2 = time.perf_counter()
print((t1 - t0) * 1000, (t2 - t1) * 1000)
"""


def measure(site: str, argv: list[str], runs: int) -> dict:
    env = {**os.environ, "PYTHONPATH": site}
    samples = [tuple(map(float, subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True,
                                               text=True, check=True).stdout.split())) for _ in range(runs)]
    return {"import_cli_ms": round(statistics.median(s[0] for s in samples), 1),
            "extension_commands_ms": round(statistics.median(s[1] for s in samples), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(EXAMPLE, Path(tmp) / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                        str(Path(tmp) / "site"), str(Path(tmp) / "src")], check=True, capture_output=True)
        rows = [{"case": case, "argv": " ".join(argv), **measure(site, argv, runs)}
                for case, site, argv in [("no extension package", "", ["--help"]),
                                         ("plugdeck-echo installed", str(Path(tmp) / "site"), ["--help"]),
                                         ("plugdeck-echo installed", str(Path(tmp) / "site"), ["ask", "x"])]]
    print(json.dumps({"runs": runs, "results": rows}))
    print(f"\n{'case':26s} {'plugdeck':10s} {'import cli.main':>16s} {'extension commands':>20s}")
    for row in rows:
        print(f"{row['case']:26s} {row['argv']:10s} {row['import_cli_ms']:13.1f} ms {row['extension_commands_ms']:17.2f} ms")


if __name__ == "__main__":
    main()
