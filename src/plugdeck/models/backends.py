"""Model backends that packages add through the `plugdeck.models` entry-point group.

A name `PREFIX:NAME` (say `anthropic:claude-x`) goes to the backend registered as PREFIX, which
makes the Model for NAME. Names without a registered prefix (a profile, `rules`, `qwen2.5:7b` at an
endpoint) are left to the configuration.
"""

from __future__ import annotations

from .base import Model


def backend_model(name: str) -> Model | None:
    """The Model from the backend registered for the name's prefix, or None when no backend has it."""
    prefix, colon, rest = name.partition(":")
    if not colon or not prefix:
        return None
    from .. import extensions

    backend = extensions.model_backend(prefix)
    if backend is None:
        return None
    try:
        model = backend(rest)
    except extensions.ExtensionError:
        raise
    except Exception as exc:
        raise extensions.ExtensionError(f"the model backend {prefix!r} could not make a model for {rest!r}: "
                                        f"{type(exc).__name__}: {exc}") from exc
    if not hasattr(model, "stream"):
        raise extensions.ExtensionError(f"the model backend {prefix!r} returned {type(model).__name__}, "
                                        "not a model (an object with an async stream(messages, tools) method)")
    return model
