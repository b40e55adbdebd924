"""What changed between an installed version's manifest and a new one: what `store update` shows, and
whether it must ask again (R22: changed permissions or tool definitions need a new consent)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .manifest import Manifest


@dataclass
class Changes:
    lines: list[str] = field(default_factory=list)  # for the person, one change a line
    needs_consent: bool = False


def compare(old: Manifest, new: Manifest) -> Changes:
    changes = Changes()

    def say(line: str, consent: bool = True) -> None:
        changes.lines.append(line)
        changes.needs_consent |= consent

    before = {t.name: t for t in old.tools}
    after = {t.name: t for t in new.tools}
    for name in sorted(set(after) - set(before)):
        say(f"tool added: {name} [{after[name].effect}]: {after[name].description}")
    for name in sorted(set(before) - set(after)):
        say(f"tool removed: {name}", consent=False)  # fewer tools: nothing new to agree to
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if a.description != b.description:
            say(f"tool {name}: description\n    was: {a.description}\n    now: {b.description}")
        if a.effect != b.effect:
            say(f"tool {name}: effect {a.effect} -> {b.effect}")
        if a.parameters != b.parameters:
            say(f"tool {name}: parameters\n    was: {json.dumps(a.parameters, sort_keys=True)}\n"
                f"    now: {json.dumps(b.parameters, sort_keys=True)}")
        if a.timeout != b.timeout:
            say(f"tool {name}: timeout {a.timeout} -> {b.timeout}")
    p, q = old.permissions, new.permissions
    for label, was, now in (("network", p.network, q.network), ("secrets", p.secrets, q.secrets)):
        for item in sorted(set(now) - set(was)):
            say(f"permission added: {label} {item}")
        for item in sorted(set(was) - set(now)):
            say(f"permission removed: {label} {item}", consent=False)
    if p.filesystem != q.filesystem:
        say(f"permission changed: filesystem {p.filesystem} -> {q.filesystem}", consent=q.filesystem != "none")
    if p.limits != q.limits:
        say(f"limits: {p.limits.model_dump(exclude_none=True)} -> {q.limits.model_dump(exclude_none=True)}")
    if old.description != new.description:
        say(f"description: {new.description}", consent=False)
    return changes
