"""One error hierarchy for plugdeck.

    PlugdeckError                 anything plugdeck raises on purpose
    ├── UserError                 the person can fix it (bad input, config, missing extra, a refused
    │   │                         request): surfaces print its message as one line, no traceback
    │   ├── ConfigError, PolicyError, SetupError, SchemaError, SpecError, ...
    │   └── ...
    └── RunStopped                a run ended early by a limit (steps, budget); its Run records why

Code that catches "any plugdeck error" catches PlugdeckError; a surface shows `str(exc)` of a
UserError as it is and a traceback for anything else (a bug of ours). Each module keeps its own
subclass, so callers can still tell them apart by type, never by name.
"""

from __future__ import annotations


class PlugdeckError(Exception):
    """Base of every error plugdeck raises on purpose."""


class UserError(PlugdeckError):
    """An error the person can act on; its message is shown as it is, without a traceback."""


class RunStopped(PlugdeckError):
    """A run stopped before its answer because a limit was reached (steps, a budget)."""
