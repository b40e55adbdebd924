"""`plugdeck store update`: install newer versions of what came from a store; quietly when tools and
permissions are unchanged, after a new consent when they changed (R22)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from . import lock
from .diff import Changes, compare
from .manifest import parse_manifest, version_key


def update(home: Path, packages: list[str] | None, ask: Callable[[str, str, str, Changes], bool]) -> list[dict[str, Any]]:
    """For each installed package (or those named): its outcome (up to date, updated, declined).
    `ask(package, old, new, changes)` is called only when the changes need consent."""
    from .client import StoreError, install, latest_version, resolve

    installed = lock.read(home)["packages"]
    unknown = sorted(set(packages or []) - set(installed))
    if unknown:
        raise StoreError(f"not installed from a store: {', '.join(unknown)}")
    outcomes = []
    for package in sorted(packages or installed):
        entry = installed[package]
        latest = latest_version(resolve(home, entry["store"])[1], package)
        if latest is None or version_key(latest) <= version_key(entry["version"]):
            outcomes.append({"package": package, "version": entry["version"], "outcome": "up to date"})
            continue
        old = parse_manifest(lock.manifest_file(home, package, entry["version"]).read_bytes())
        seen: dict[str, Changes] = {}

        def consent(fetched, findings, package=package, old=old) -> bool:
            changes = seen["changes"] = compare(old, fetched.manifest)
            return not changes.needs_consent or ask(package, old.version, fetched.manifest.version, changes)

        try:
            install(home, package, store=entry["store"], version=latest, consent=consent)
        except StoreError as exc:
            if "no consent" not in str(exc):
                raise
            outcomes.append({"package": package, "version": entry["version"], "outcome": "declined",
                             "offered": latest, "changes": seen["changes"].lines})
            continue
        changes = seen["changes"]
        outcomes.append({"package": package, "version": latest, "previous": entry["version"],
                         "outcome": "updated after consent" if changes.needs_consent else "updated quietly",
                         "changes": changes.lines})
    return outcomes
