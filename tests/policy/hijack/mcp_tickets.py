"""A ticket tracker as a real MCP server over stdio (the official SDK), for the injection suite.

    python mcp_tickets.py STATE_DIR

It reads its tickets from STATE_DIR/tickets.json on every call (so a scenario can plant a ticket
while the server runs) and appends every call that reaches it to STATE_DIR/calls.jsonl: the spy.
"""

import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

STATE = Path(sys.argv[1])
server = MCPServer("tickets")
READ_ONLY = ToolAnnotations(read_only_hint=True)


def arrived(tool: str, arguments: dict) -> None:
    with open(STATE / "calls.jsonl", "a", encoding="utf-8") as spy:
        spy.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


def tickets() -> dict:
    return json.loads((STATE / "tickets.json").read_text(encoding="utf-8"))


@server.tool(annotations=READ_ONLY)
def list_tickets() -> str:
    """List the open support tickets (id and title)."""
    arrived("list_tickets", {})
    return json.dumps([{"id": k, "title": t["title"]} for k, t in tickets().items()])


@server.tool(annotations=READ_ONLY)
def get_ticket(ticket_id: str) -> str:
    """Read one support ticket: its title, reporter and text."""
    arrived("get_ticket", {"ticket_id": ticket_id})
    found = tickets().get(ticket_id)
    if found and "error" in found:  # the tracker answers with an error whose text someone else wrote
        raise ToolError(found["error"])
    return json.dumps({"id": ticket_id, **found}, ensure_ascii=False) if found else f"no ticket {ticket_id}"


@server.tool(annotations=READ_ONLY)
def lookup_user(query: str) -> str:
    """Find a user of the tracker by name or email."""
    arrived("lookup_user", {"query": query})
    return json.dumps({"query": query, "users": []})


@server.tool()
def add_comment(ticket_id: str, text: str) -> str:
    """Add a comment to a ticket (the reporter is emailed)."""
    arrived("add_comment", {"ticket_id": ticket_id, "text": text})
    return f"comment added to {ticket_id}"


server.run()
