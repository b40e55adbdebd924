"""The environment tests give the `plugdeck` command they run in a subprocess.

A home of its own under the test's tmp_path (HOME, PLUGDECK_HOME, XDG_CONFIG_HOME), and nothing from
the shell's own plugdeck or OpenTelemetry settings, so a developer's config can't change a result.
The `cli_env` fixture (tests/conftest.py) is this for one test; call it directly to add variables.
"""

from __future__ import annotations

import os
from pathlib import Path

NOT_INHERITED = ("PLUGDECK_", "OTEL_", "OPENAI_")


def cli_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED)}
    return {**clean, "HOME": str(home), "PLUGDECK_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(home / ".config"), **extra}
