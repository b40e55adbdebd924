"""Writing a file so that a reader sees the old contents or the new, never half of them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = isinstance(data, bytes)
    with tempfile.NamedTemporaryFile("wb" if binary else "w", dir=path.parent, delete=False,
                                     **({} if binary else {"encoding": "utf-8"})) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)
