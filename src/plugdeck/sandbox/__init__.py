"""Third-party plugins out of process, in a bubblewrap sandbox (R18-R20).

Platform side: `sandboxed_plugin` (plugin.py) starts a plugin's runner under bwrap (launch.py) with
its limits (limits.py), talks MCP to it through the MCP client, runs its egress proxy (egress.py)
and hands it its secrets per call. `check_sandbox` (check.py) is the start-up self-test.

Plugin side (inside the sandbox): `secret(NAME)` gives a declared secret during a call, and
`plugdeck.sandbox.http.client()` is an httpx client whose requests go through the platform's proxy.

Nothing here is imported by `import plugdeck`.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

_secrets: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("plugdeck_call_secrets", default={})
_call: contextvars.ContextVar[str] = contextvars.ContextVar("plugdeck_call_id", default="")


def secret(name: str) -> str:
    """Inside a sandboxed tool: the value of a secret the plugin declared in `needs["secrets"]` and the
    operator mapped, given for this call only. A KeyError names what is missing."""
    values = _secrets.get()
    if name not in values:
        given = ", ".join(sorted(values)) or "none"
        raise KeyError(f"secret {name!r} was not given to this call (given: {given}); declare it in the "
                       "plugin's needs['secrets'] and ask the operator to map it")
    return values[name]


@contextmanager
def _calling(secrets: dict[str, str], call: str = "") -> Iterator[None]:
    """Inside the runner, around one call: its secrets, and its id (egress requests carry it, so that
    the platform files each request under the call that made it)."""
    tokens = _secrets.set(dict(secrets)), _call.set(call)
    try:
        yield
    finally:
        _secrets.reset(tokens[0])
        _call.reset(tokens[1])
