"""The knowledge bases `plugdeck mcp serve --kb NAME` answers from, as MCP resources.

Each document of each knowledge base is a resource `kb://NAME/SOURCE` (SOURCE as citations show it,
percent-encoded); reading one returns the text the knowledge base holds for it (its chunks joined back
in order, with their headings). A read passes the same admission as a call of the knowledge base's own
search tool: the policy that decides `NAME.search_knowledge` decides the read, and over HTTP the key
must allow the knowledge base's plugin, as for every request.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable
from urllib.parse import quote, unquote, urlsplit

SCHEME = "kb"
MIME = {"md": "text/markdown", "html": "text/markdown", "csv": "text/csv"}  # html is stored as its text


def knowledge_bases(agent: Any) -> list[tuple[Any, Any]]:
    """(knowledge base, its plugin's search tool) for each knowledge base the agent answers from."""
    found = []
    for plugin in getattr(agent, "plugins", []):
        for kb in getattr(plugin, "bases", None) or []:  # set by assemble.knowledge_plugin
            found.append((kb, plugin.tools[0]))
    return found


def resource_uri(kb_name: str, source: str) -> str:
    return f"{SCHEME}://{quote(kb_name, safe='')}/{quote(source, safe='/')}"


def document_text(chunks: list[Any]) -> str:
    """A document's text from its chunks (in order): overlaps once, headings back in as Markdown."""
    out: list[str] = []
    covered, path = 0, ()
    for chunk in chunks:
        if tuple(chunk.title_path) != path:
            shared = 0
            while shared < min(len(path), len(chunk.title_path)) and path[shared] == chunk.title_path[shared]:
                shared += 1
            for depth, title in enumerate(chunk.title_path[shared:], start=shared + 1):
                out.append(f"{chr(10) * 2 if out else ''}{'#' * depth} {title}\n\n")
            path = tuple(chunk.title_path)
        elif out and chunk.start > covered:
            out.append("\n\n")
        if chunk.end <= covered:
            continue
        out.append(chunk.text[max(0, covered - chunk.start):])
        covered = chunk.end
    return "".join(out).strip() + "\n"


def resource_handlers(agent: Any, assume_yes: bool) -> dict[str, Callable[..., Awaitable[Any]]]:
    """`on_list_resources` and `on_read_resource` for the SDK's Server, or {} without knowledge bases."""
    import mcp_types as types
    from mcp_types import INVALID_PARAMS

    from mcp import MCPError

    bases = knowledge_bases(agent)
    if not bases:
        return {}

    async def list_resources(ctx: Any, params: Any) -> Any:
        resources = []
        for kb, search in bases:
            documents = await _through_policy(agent, search, f"{SCHEME}://{kb.name}/", kb.documents, assume_yes)
            if not isinstance(documents, list):
                continue  # the policy keeps this knowledge base from the client: its documents too
            for doc in documents:
                resources.append(types.Resource(
                    uri=resource_uri(kb.name, doc.source), name=doc.source, title=doc.title or None,
                    description=f"{doc.type} document in knowledge base {kb.name!r} ({doc.chunks} passages)",
                    mime_type=MIME.get(doc.type, "text/plain")))
        return types.ListResourcesResult(resources=resources)

    async def read_resource(ctx: Any, params: Any) -> Any:
        uri = str(params.uri)
        kb, search, source = _find(bases, uri)
        if kb is None:
            raise MCPError(INVALID_PARAMS, f"no such resource: {uri} (resources look like kb://NAME/DOCUMENT; "
                                           "list them with resources/list)")
        text = await _read_through_policy(agent, kb, search, source, uri, assume_yes)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, text=text, mime_type=MIME.get(source.rsplit(".", 1)[-1], "text/plain"))])

    return {"on_list_resources": list_resources, "on_read_resource": read_resource}


def _find(bases: list[tuple[Any, Any]], uri: str) -> tuple[Any, Any, str]:
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        return None, None, ""
    name, source = unquote(parts.netloc), unquote(parts.path.lstrip("/"))
    for kb, search in bases:
        if kb.name == name:
            return kb, search, source
    return None, None, ""


async def _read_through_policy(agent: Any, kb: Any, search: Any, source: str, uri: str, assume_yes: bool) -> str:
    from mcp_types import INVALID_PARAMS

    from mcp import MCPError

    from ..tools import ToolError

    def read() -> str:
        doc = next((d for d in kb.documents() if d.source == source), None)
        if doc is None:
            raise ToolError(f"knowledge base {kb.name!r} has no document {source!r}", "not_found")
        return document_text(kb.store.document_chunks(doc.path))

    found = await _through_policy(agent, search, uri, read, assume_yes)
    if isinstance(found, dict):
        raise MCPError(INVALID_PARAMS, f"{found['kind']}: {found['message']}")
    return found


async def _through_policy(agent: Any, search: Any, uri: str, work: Callable[[], Any], assume_yes: bool) -> Any:
    """`work()` run as the knowledge base's search tool (given the uri), so the same admission decides:
    its result, or the refusal or error as {"kind", "message"}."""
    from .mcp import run_through_policy

    def run(uri: str) -> Any:
        return work()

    as_search = dataclasses.replace(search, func=run, check=lambda args: args, parameters={
        "type": "object", "properties": {"uri": {"type": "string"}}, "required": ["uri"]})
    finished = await run_through_policy(as_search, {"uri": uri}, agent.policy, assume_yes, "resources")
    return finished.error if finished.error else finished.result
