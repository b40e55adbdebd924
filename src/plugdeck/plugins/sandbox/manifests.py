"""Described manifests kept on disk, so that a CLI start does not pay a sandbox start per plugin.

A manifest is kept under PLUGDECK_HOME/cache/sandbox/ by a key made of plugdeck's version, the
interpreter, the entry point, and the size and modification time of every file the package's RECORD
lists: a package upgraded, reinstalled or edited gets a new key, and is described afresh. Packages
without a RECORD (made by hand) and editable installs (whose code lives outside the RECORD) are never
cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def _folder() -> Path:
    home = os.environ.get("PLUGDECK_HOME") or Path.home() / ".local" / "share" / "plugdeck"
    return Path(home).expanduser() / "cache" / "sandbox"


def cache_key(entry_point: str, name: str, dist: Any) -> str | None:
    from ... import __version__

    files = getattr(dist, "files", None) if dist is not None else None
    if not files or '"editable": true' in (dist.read_text("direct_url.json") or "").replace("\n", " "):
        return None
    digest = hashlib.sha256(json.dumps([__version__, sys.executable, entry_point, name, dist.metadata["Name"],
                                        dist.version]).encode())
    for file in files:
        try:
            stat = os.stat(file.locate())
        except OSError:
            continue
        digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached(key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    try:
        return json.loads((_folder() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def keep(key: str | None, manifest: dict[str, Any]) -> None:
    if key is None:
        return
    folder = _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.json.{os.getpid()}"
        partial.write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(partial, folder / f"{key}.json")
    except OSError:  # a read-only home: described again next time, no harm
        pass
