"""Knowledge bases: bring your own documents, get answers that cite them.

    from plugdeck import Agent
    from plugdeck.plugins.knowledge import GroundingCheck, KnowledgeBase, knowledge_plugin

    kb = KnowledgeBase.open("handbook")
    kb.add(["./handbook"])                       # folders, files, globs; only changed files are re-read
    kb.search("vacation days", k=5)              # hybrid keyword + vector search, with citations
    agent = Agent("rules", [knowledge_plugin(kb)], checks=[GroundingCheck(kb)])

Names load on first use, so importing this package (or its standard-library-only modules, such as
`rules_skill`) does not load numpy, torch or the readers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "KnowledgeBase": "base",
    "KnowledgeError": "base",
    "AddReport": "base",
    "Progress": "base",
    "Passage": "search",
    "knowledge_plugin": "tool",
    "GroundingCheck": "grounding",
    "knowledge_skill": "rules_skill",
    "LocalEmbedder": "embeddings",
    "EndpointEmbedder": "embeddings",
    "EmbeddingError": "embeddings",
    "GROUNDED_SYSTEM_PROMPT": "tool",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .base import AddReport, KnowledgeBase, KnowledgeError, Progress
    from .embeddings import EmbeddingError, EndpointEmbedder, LocalEmbedder
    from .grounding import GroundingCheck
    from .rules_skill import knowledge_skill
    from .search import Passage
    from .tool import GROUNDED_SYSTEM_PROMPT, knowledge_plugin


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
