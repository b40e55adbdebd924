"""Model backends. Each is imported only when used, so `import plugdeck` stays light."""

from __future__ import annotations

from .base import Model, ModelError, ModelResponse, ReasoningChunk, TextChunk, ToolCall

__all__ = ["Model", "ModelError", "ModelResponse", "ReasoningChunk", "TextChunk", "ToolCall", "resolve_model"]


def resolve_model(name: str) -> Model:
    """A model from a short name: `rules`, or a profile from the configuration."""
    if name == "rules":
        from .rules import RulesModel

        return RulesModel()
    from ..config import load_config
    from .profiles import model_for

    return model_for(load_config(), name)
