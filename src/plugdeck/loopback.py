"""Does a name, a Host header or an Origin name this machine? The one answer every plugdeck server uses.

Loopback is the exact name `localhost` or an IP literal that parses as a loopback address (IPv4
`127.0.0.0/8`, IPv6 `::1`, bracketed in headers, and IPv4-mapped `::ffff:127.x.y.z`), nothing else.
A name that merely looks like one (`127.0.0.1.rebind.attacker.example`, `localhost.attacker.example`)
can resolve anywhere: after a DNS rebinding it resolves here, and a web page of the attacker's then
talks to this machine's servers under its own name. So only the name itself counts, never what it
resolves to, a prefix or a suffix. Standard library only: the MCP server and the CLI use it too.
"""

from __future__ import annotations

import ipaddress
import re

LOCALHOST = "localhost"
_PORT = re.compile(r"[0-9]{1,5}")


def is_loopback_host(host: str | None) -> bool:
    """True for `localhost` and loopback IP literals (`127.0.0.1`, `::1`, `[::1]`, `::ffff:127.0.0.1`)."""
    if not host:
        return False
    if host.lower() == LOCALHOST:
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def host_of(host_header: str | None) -> str | None:
    """The host of a Host header (`name`, `name:port`, `[v6]` or `[v6]:port`); None if malformed."""
    if not host_header:
        return None
    if host_header.startswith("["):
        host, bracket, rest = host_header[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:]))):
            return None
        return host
    host, colon, port = host_header.partition(":")
    if colon and not _PORT.fullmatch(port):
        return None  # "a:b:c" (a bare IPv6 address is not a valid Host) or a port that is not a number
    return host


def is_loopback_host_header(host_header: str | None) -> bool:
    """True when a request's Host header names this machine by a loopback name or address."""
    return is_loopback_host(host_of(host_header))


def is_loopback_origin(origin: str | None) -> bool:
    """True for the Origin of a page served from this machine's loopback (`http://localhost:5173`)."""
    if not origin:
        return False
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and is_loopback_host_header(rest)
