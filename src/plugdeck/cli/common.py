"""What every command group shares: failing with one line on stderr, and PLUGDECK_HOME."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str) -> NoReturn:
    """Print `error: MESSAGE` on stderr and exit 1 (a mistake the person can fix; no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


def home() -> Path:
    """PLUGDECK_HOME as the configuration says (flags aside)."""
    from ..config import load_config

    return load_config().home
