"""For a third-party plugin's own code, inside its sandbox.

- `secret(NAME)`: a secret the plugin declared in `needs["secrets"]` and the operator mapped, given
  for the current call only (never in the environment or argv);
- `plugdeck.sandbox.http.client()` / `async_client()`: httpx clients whose requests go out through the
  platform's egress proxy, the sandbox's only way to the network.

The platform's side (launching, limits, the proxy, the self-test) is plugdeck.plugins.sandbox.
Nothing here is imported by `import plugdeck`, and this package imports nothing of plugdeck's.
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
