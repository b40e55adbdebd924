"""`plugdeck.lock` (in PLUGDECK_HOME): what was installed from a store, exactly.

Per package: the store, the version, the sha256 of the artifact and of the manifest, the sha256 of
every tool definition (as consented to) and of every file unpacked. A run loads a store plugin only
when its files still hash to these values and its tools still match these definitions.
"""

from __future__ import annotations

from ..errors import UserError
from ..files import write_atomically

import hashlib
import json
from pathlib import Path
from typing import Any

LOCK_FILE = "plugdeck.lock"


class LockError(UserError, ValueError):
    """The installed files or tools no longer match the lock, or the lock is unreadable."""


def lock_path(home: Path) -> Path:
    return Path(home) / LOCK_FILE


def read(home: Path) -> dict[str, Any]:
    path = lock_path(home)
    if not path.exists():
        return {"version": 1, "packages": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LockError(f"{path} is not valid JSON ({exc}); reinstall the store plugins") from None
    if not isinstance(data, dict) or not isinstance(data.get("packages"), dict):
        raise LockError(f"{path} is not a plugdeck lock file")
    return data


def write(home: Path, data: dict[str, Any]) -> None:
    write_atomically(lock_path(home), json.dumps(data, indent=2, sort_keys=True))


def package_dir(home: Path, name: str, version: str) -> Path:
    return Path(home) / "store" / "packages" / name / version


def manifest_file(home: Path, name: str, version: str) -> Path:
    """The installed version's manifest, beside its folder (what `store update` compares a new one with)."""
    return package_dir(home, name, version).parent / f"{version}.manifest.json"


def check_files(folder: Path, files: dict[str, str], package: str) -> None:
    """Every locked file is there with its hash, and nothing was added beside them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LockError(f"{package}: its installed files are missing ({folder}); reinstall it")
    import shutil

    # Compiled files are not locked: drop them, so Python compiles the verified sources again rather
    # than trusting a .pyc that someone may have placed beside them.
    for cache in [p for p in folder.rglob("__pycache__") if p.is_dir()]:
        shutil.rmtree(cache)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    added = sorted(present - set(files))
    if added:
        raise LockError(f"{package}: files were added after install ({', '.join(added[:5])}); refusing to load it")
    for relative, digest in files.items():
        path = folder / relative
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise LockError(f"{package}: {relative} no longer matches plugdeck.lock (changed or removed after "
                            "install); refusing to load it")
