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
            try:
                lock.check_files(lock.package_dir(home, result["package"], entry["version"]), entry["files"],
                                 result["package"])
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
