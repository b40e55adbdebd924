"""The plugdeck command as the ops tests run it: a clean environment, its own home, a given run store."""

from __future__ import annotations

import os
import subprocess
import sys


def plugdeck(tmp_path, store, *args):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PLUGDECK_")}, "HOME": str(home),
           "PLUGDECK_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(home / ".config"),
           "PLUGDECK_RUN_STORE": store}
    return subprocess.run([sys.executable, "-m", "plugdeck.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
