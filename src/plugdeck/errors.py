"""One error hierarchy for plugdeck.

    PlugdeckError                 anything plugdeck raises on purpose
    ├── UserError                 the person can act on it (bad input, config, a policy file, a missing
    │   │                         extra, a refused request): surfaces show its message as one line, with
    │   │                         no traceback; the CLI exits 1, the server answers 400
    │   ├── ServiceError          a service plugdeck talks to failed or refused (a model endpoint, an
    │   │                         embedder, a database): check it, then try again; the server answers 502
    │   │                         (ModelError, EmbeddingError, DatabaseError)
    │   └── ConfigError, PolicyError, SetupError, SchemaError, SpecError, RegistryError, MissingExtra, ...
    ├── ToolError                 (plugdeck.tools) a tool's failure, written for the model to read
    └── RunStopped                a run ended early by a limit (steps, budget); its Run records why

Code that catches "any plugdeck error" catches PlugdeckError. Each module keeps its own subclass, so
callers tell errors apart by type, never by name; a subclass also keeps the builtin base its callers
relied on before (`ConfigError` is still a ValueError, `MissingExtra` an ImportError). Anything else
that reaches a surface is a bug of ours: the CLI says so and points at --debug, the server answers 500.
"""

from __future__ import annotations

__all__ = ["PlugdeckError", "UserError", "ServiceError", "RunStopped"]


class PlugdeckError(Exception):
    """Base of every error plugdeck raises on purpose."""


class UserError(PlugdeckError):
    """An error the person can act on; its message is shown as it is, without a traceback."""


class ServiceError(UserError):
    """A service plugdeck depends on (a model endpoint, an embedder, a database) failed or refused.

    Not a bug of ours and not bad input: the message says which service and what it answered, so the
    person can check it and try again."""


class RunStopped(PlugdeckError):
    """A run stopped before its answer because a limit was reached (steps, a budget)."""
