"""Unpack a wheel without running any of its code: the import tree goes to `lib/`, the wheel's
metadata to `dist-info/` (off the import path, so the plugin is not found a second time as an
entry point). Paths that leave the folder, links, scripts and oversized contents are refused."""

from __future__ import annotations

from ..errors import UserError

import hashlib
import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

MAX_FILES = 5000
MAX_BYTES = 200 * 1024 * 1024  # uncompressed, in all


class UnpackError(UserError, ValueError):
    pass


def unpack_wheel(data: bytes, into: Path) -> dict[str, str]:
    """Extract; relative path (under `into`) -> sha256 of every file written."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UnpackError(f"the artifact is not a wheel (zip): {exc}") from None
    entries = [e for e in archive.infolist() if not e.is_dir()]
    if len(entries) > MAX_FILES or sum(e.file_size for e in entries) > MAX_BYTES:
        raise UnpackError(f"the wheel is too large to unpack (over {MAX_FILES} files or {MAX_BYTES} bytes)")
    plan = []
    for entry in entries:
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise UnpackError(f"the wheel holds a link ({entry.filename}); refused")
        path = PurePosixPath(entry.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in entry.filename:
            raise UnpackError(f"the wheel holds a path outside its folder ({entry.filename!r}); refused")
        top = path.parts[0]
        if top.endswith(".dist-info"):
            target = PurePosixPath("dist-info", *path.parts[1:])
        elif top.endswith(".data"):
            if len(path.parts) < 3 or path.parts[1] not in ("purelib", "platlib"):
                raise UnpackError(f"the wheel installs outside the import path ({entry.filename}); refused")
            target = PurePosixPath("lib", *path.parts[2:])
        else:
            target = PurePosixPath("lib", *path.parts)
        plan.append((entry, target))
    hashes = {}
    for entry, target in plan:
        content = archive.read(entry)
        out = Path(into) / target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content)
        hashes[str(target)] = hashlib.sha256(content).hexdigest()
    return hashes
