"""Revocations and changes for what is installed: `plugdeck store audit`, and the check a run makes
when the last one is older than PLUGDECK_STORE_MAX_AGE minutes (default 1440, a day: the timestamp's
lifetime, so a store that stops answering cannot keep a revoked plugin alive for longer)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from . import lock

DEFAULT_MAX_AGE_MINUTES = 1440.0


def max_age_seconds() -> float:
    value = os.environ.get("PLUGDECK_STORE_MAX_AGE", "")
    try:
        minutes = float(value) if value else DEFAULT_MAX_AGE_MINUTES
    except ValueError:
        raise lock.LockError(f"PLUGDECK_STORE_MAX_AGE must be a number of minutes, not {value!r}") from None
    return max(0.0, minutes) * 60


def refresh(home: Path, packages: list[str] | None = None) -> list[dict[str, Any]]:
    """Ask each store (through TUF) whether the installed versions were revoked; record the answers in
    the lock (a revoked one is disabled, with the reason). One result per package."""
    from tuf.api import exceptions as tuf_errors

    from .client import StoreError, _updater, resolve, revocation

    data = lock.read(home)
    chosen = {name: entry for name, entry in data["packages"].items() if packages is None or name in packages}
    results: dict[str, dict[str, Any]] = {}
    for store in sorted({entry["store"] for entry in chosen.values()}):
        names = sorted(name for name, entry in chosen.items() if entry["store"] == store)
        try:
            updater = _updater(home, *resolve(home, store))
            updater.refresh()
            for name in names:
                entry = chosen[name]
                reason = revocation(updater, name, entry["version"])
                entry["checked_at"] = time.time()
                if reason is not None:
                    entry["disabled"] = f"revoked: {reason}"
                    if entry["kind"] == "mcp":
                        _withdraw_mcp_approval(home, entry["plugin"], entry["disabled"])
                results[name] = {"package": name, "version": entry["version"], "status":
                                 "revoked" if entry.get("disabled") else "ok", "reason": entry.get("disabled")}
        except (StoreError, tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            for name in names:
                results[name] = {"package": name, "version": chosen[name]["version"], "status": "unchecked",
                                 "reason": f"store {store!r} could not be checked: {exc}"}
    lock.write(home, data)
    return [results[name] for name in sorted(results)]


def audit(home: Path) -> list[dict[str, Any]]:
    """Every installed package: revoked, changed on disk, unchecked (store unreachable), or ok."""
    results = refresh(home)
    data = lock.read(home)
    for result in results:
        entry = data["packages"][result["package"]]
        if result["status"] == "ok":
            folder = lock.package_dir(home, result["package"], entry["version"])
            try:
                if entry["kind"] == "mcp":  # its server's environment (env/) is pip's, not the lock's
                    _check_server_json(folder, entry["files"], result["package"])
                else:
                    lock.check_files(folder, entry["files"], result["package"])
            except lock.LockError as exc:
                result.update(status="changed", reason=str(exc))
    return results


def ensure_fresh(home: Path, package: str, entry: dict[str, Any]) -> dict[str, Any]:
    """At run start: re-check revocations when the last check is too old; refuse when that fails."""
    if time.time() - entry.get("checked_at", 0) <= max_age_seconds():
        return entry
    result, = refresh(home, [package])
    if result["status"] == "unchecked":
        raise lock.LockError(f"{package}: revocations were last checked more than PLUGDECK_STORE_MAX_AGE ago and "
                             f"{result['reason']}; refusing to load it (plugdeck store audit retries)")
    return lock.read(home)["packages"][package]


def _withdraw_mcp_approval(home: Path, plugin: str, reason: str) -> None:
    """An mcp package runs as an MCP plugin, not through the store's loader: its approvals are dropped,
    so none of its tools is offered (plugins approve brings them back, on the person's word)."""
    from ..plugins import registry

    entry = registry.configured(home).get(plugin)
    if entry is not None and entry.get("kind") == "mcp" and entry.get("options", {}).get("approved"):
        registry.update(home, plugin, options={**entry["options"], "approved": {}, "withdrawn": reason})


def _check_server_json(folder: Path, files: dict[str, str], package: str) -> None:
    import hashlib

    path = folder / "server.json"
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != files.get("server.json"):
        raise lock.LockError(f"{package}: server.json no longer matches plugdeck.lock (changed or removed after install)")
