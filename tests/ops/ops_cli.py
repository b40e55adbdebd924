"""The plugdeck command as the ops tests run it: a clean environment, its own home, a given run store."""

from __future__ import annotations

import subprocess
import sys

from cli_env import cli_environment


def plugdeck(tmp_path, store, *args):
    env = cli_environment(tmp_path, PLUGDECK_RUN_STORE=store)
    return subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
