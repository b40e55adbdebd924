"""Resource limits for one sandboxed plugin: what its manifest asks for, cut to the operator's ceiling.

A manifest declares `needs["limits"]` (any of the fields below); whatever it leaves out gets the
default, and every value is cut to the ceiling, so a plugin can ask for less but never for more than
the operator allows. Bad values (not positive integers) are refused with a message naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ...errors import UserError


class LimitError(UserError, ValueError):
    """A manifest or an operator setting asked for a limit that is not a positive whole number."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 1024  # address space (RLIMIT_AS); Python with the MCP SDK loaded needs ~400 MB of it
    cpu_s: int = 30  # CPU seconds over the sandbox process's life (RLIMIT_CPU), then it is killed
    processes: int = 64  # processes and threads of the plugin's own user (RLIMIT_NPROC)
    file_size_mb: int = 16  # the largest file it may write (RLIMIT_FSIZE)
    open_files: int = 128  # RLIMIT_NOFILE
    scratch_mb: int = 64  # the private tmpfs at /tmp
    wall_s: int = 60  # one call, start to answer; then the whole sandbox is killed

    @classmethod
    def from_dict(cls, data: Any, where: str = "limits") -> Limits:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise LimitError(f"{where} must be a table of limits, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LimitError(f"{where}: unknown limit(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LimitError(f"{where}.{key} must be a positive whole number, not {value!r}")
            values[key] = value
        return cls(**values)

    def within(self, ceiling: Limits) -> Limits:
        """Each limit cut to the ceiling's."""
        return replace(self, **{f.name: min(getattr(self, f.name), getattr(ceiling, f.name)) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def plugin_limits(needs: dict[str, Any] | None, ceiling: Limits) -> Limits:
    """The limits a plugin runs with: its manifest's `needs["limits"]`, defaults, the ceiling."""
    asked = (needs or {}).get("limits")
    return Limits.from_dict(asked, "needs.limits").within(ceiling)
