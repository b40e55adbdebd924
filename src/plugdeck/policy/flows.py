"""The data-flow rule: what the model read must not leave through another tool without a person's OK.

A hijacked model does not need a `write` tool to do harm: once private data (a knowledge passage,
database rows) and untrusted content (which may carry an attacker's instructions) are in its context,
any call that sends arguments somewhere (a GET with a query string, an MCP call) can carry the data
out. So, checked in code before every call, reads and writes alike:

    Once untrusted or private content from a place S is in the context, a call to a tool whose egress
    is a place other than S needs a person's OK, unless every argument value is traceable to trusted
    input.

- A tool's `egress` is where its arguments go: an OpenAPI plugin's server origin
  (`http://127.0.0.1:8000`), an MCP server (`mcp:NAME`), a database server (`postgresql://host:port/db`).
  None means the call sends nothing outside plugdeck's process or this machine (the calculator, the
  knowledge base search, a SQLite file): such calls are never held by this rule. A tool made in code
  that does not declare its egress fails closed when its output is untrusted (a `fetch_page(url)`
  reads from outside, so its arguments surely go there) or when it comes from a third-party package:
  it may reach anywhere, so no content is "from the same place" for it. Other undeclared tools (a
  helper computing on its arguments) are taken to stay on this machine; declare `egress=` on a tool
  that sends data out.
- The place content came from is the egress of the tool that returned it (None: this machine); a client-sent
  history is the place `history` (see plugdeck.policy.provenance). Sending data back where it came from
  tells that place nothing new, so a tool whose egress is the only place the content came from is free.
  A call whose arguments hold a URL (`fetch(url=...)`, a webhook) also sends to that URL's origin (unless
  the tool declares that it stays on this machine), so it is "the same place" only if the content came
  from there and from nowhere else: a fetch server's answers do not make any URL "its own place".
- An argument value is traceable to trusted input when it is a boolean or null, a value the tool's schema
  itself offers (an `enum`, `const` or `default`), or a string or number that is a piece of the person's
  message of this run, cut at word boundaries, with its marks as the person wrote them and its letter case
  as written or all lower, upper, title or first-letter case (runs of whitespace count as one space). So
  "São Paulo", "são paulo" and "5" trace to "Weather in São Paulo for 5 days?"; "Paulo São", "5 5",
  "São Paulo!!" and "sÃo PaUlo" do not: rearranged words, added marks and letter case could all encode
  what the model read. A model that obeys an attacker can still choose which piece of the person's words
  to send: a few bits per call, the residue this rule accepts. Values the model made up or copied from
  tool output are not traceable; nor is a
  value computed by another tool (a calculator result), since its input may have come from the content.
  Only the person's message of this run counts: words from earlier turns were given for earlier requests.

The policy can relax it per tool, visibly, with globs over `plugin.tool`:

    [policy]
    flows = {"weather.*" = "allow", "mail.*" = "deny"}   # allow | confirm (the default) | deny

`allow`: data may leave through those tools without asking (use it for a service you trust with
everything the model reads); `deny`: such calls are refused outright. The decision names the rule,
the arguments that are not traceable and where the content came from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from ..tools import UNDECLARED, Tool
from .provenance import Context, Source

FLOW_ACTIONS = ("allow", "confirm", "deny")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/?#]", re.I)


@dataclass(frozen=True)
class Flow:
    """A call that would carry content from `sources` to `destination`."""

    action: str  # allow | confirm | deny
    rule: str
    reason: str
    untraced: list[str]
    sources: list[Source]
    destination: str

    def details(self) -> dict[str, Any]:
        return {"untraced": self.untraced, "sources": [s.to_dict() for s in self.sources],
                "destination": self.destination}


def check_flow(flows: dict[str, str], tool: Tool, arguments: dict[str, Any], context: Context,
               where: Callable[[str], str] = lambda key: "policy") -> Flow | None:
    """The data-flow rule's say on one call, or None when no content could leave through it."""
    destination = tool.destination
    if destination is None:
        return None
    places = {destination, *url_origins(arguments)}
    # A tool that may reach anywhere sends to no single place: everything read is foreign to it.
    foreign = [s for s in context.sources
               if (s.untrusted or s.private) and (places != {s.place} or UNDECLARED in places)]
    if not foreign:
        return None
    untraced = untraced_arguments(arguments, tool.parameters, context.person)
    if not untraced:
        return None
    name = tool.qualified_name
    pattern = next((p for p in flows if fnmatchcase(name, p)), None)
    action = flows[pattern] if pattern is not None else "confirm"
    rule = (f"flows {pattern!r} = {action!r} ({where(f'flows[{pattern}]')})" if pattern is not None
            else "data flow: read content may not leave through another tool unasked")
    came_from = Context(foreign).describe()
    to = " and ".join("anywhere (no egress declared)" if p == UNDECLARED else p for p in sorted(places))
    reason = (f"{', '.join(untraced)} of this call, which goes to {to}, {'is' if len(untraced) == 1 else 'are'} not "
              f"from your request, and the conversation holds content from {came_from}: the call could carry that "
              "content out")
    return Flow(action, rule, reason, untraced, foreign, to)


def url_origins(arguments: Any) -> set[str]:
    """The origins (scheme://host:port) of the URLs among the argument values."""
    found = set()
    for _, value in leaves(arguments):
        if isinstance(value, str) and _URL.match(value.strip()):
            try:
                parts = urlsplit(value.strip())
                port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
            except ValueError:  # a URL too broken to parse: its destination is unknown
                found.add(UNDECLARED)
                continue
            found.add(f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}" + (f":{port}" if port else ""))
    return found


def untraced_arguments(arguments: Any, schema: dict[str, Any], person: list[str]) -> list[str]:
    """Argument paths whose values are not traceable to the person's words or the tool's schema."""
    said = [" ".join(text.split()) for text in person]
    offered = _schema_values(schema)
    return [path for path, value in leaves(arguments) if not _traceable(value, said, offered)]


def _traceable(value: Any, said: list[str], offered: set[str]) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if _canonical(value) in offered:
        return True
    text = " ".join(str(value).split())
    return not text or any(_piece_of(text, message) for message in said)


def _piece_of(text: str, message: str) -> bool:
    """Whether `text` is a piece of `message` cut at word boundaries, in one of the usual letter cases."""
    lowered = message.lower()
    if len(lowered) != len(message):  # a letter whose lower case is longer: compare exactly
        lowered = message
    start = lowered.find(text.lower())
    while start != -1:
        end = start + len(text)
        span = message[start:end]
        whole = ((start == 0 or not (span[0].isalnum() and message[start - 1].isalnum()))
                 and (end == len(message) or not (span[-1].isalnum() and message[end].isalnum())))
        if whole and text in (span, span.lower(), span.upper(), span.title(), span.capitalize()):
            return True
        start = lowered.find(text.lower(), start + 1)
    return False


def _schema_values(schema: Any) -> set[str]:
    """Every enum, const and default value anywhere in a JSON Schema (canonical JSON)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "enum" and isinstance(value, list):
                    found.update(_canonical(v) for v in value)
                elif key in ("const", "default"):
                    found.add(_canonical(value))
                elif key not in ("description", "title", "examples"):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) for every scalar in arguments: `items[0].name`; the root itself is "arguments"."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path or "arguments", value
