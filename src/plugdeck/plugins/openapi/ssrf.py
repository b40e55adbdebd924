"""The SSRF guard: which addresses an HTTP plugin may connect to.

A host string is never trusted as written. `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` all
mean 127.0.0.1 to the system resolver, and `::ffff:127.0.0.1` is loopback in disguise, so the
guard parses every IPv4 spelling itself, resolves names, checks *every* resolved address
(unwrapping IPv4 inside IPv6), and hands back the checked addresses so that the connection goes
to one of them and no second lookup can swap in another (DNS rebinding).

Private, loopback, link-local, carrier-grade NAT, multicast, reserved and unspecified addresses
are refused unless the plugin allows them: `allow_private=True` allows all of them except cloud
metadata endpoints, which must be named explicitly; a list allows ORIGINS, never a whole address,
because one address serves many services (an API on 127.0.0.1:8100, a database on 127.0.0.1:6379):

    http://127.0.0.1:8100     exactly that origin (scheme, host, port)
    127.0.0.1:8100, [::1]:81  that host and port, over http or https
    api.internal, 10.0.0.0/8  those hosts or networks on the standard ports only (80, 443)

The origins the plugin itself is pinned to (its base URL, the URL its spec came from) are allowed
too when the list names their host: a bare host therefore allows the plugin's own API, and a
redirect from it to another port of the same host is still refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from ...errors import UserError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "fd00:ec2::254")
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}

Resolver = Callable[[str, int], Iterable[str]]


class BlockedURL(UserError):
    """A URL the guard refuses; the message says why and what to do, never the query string."""


def parse_ip(host: str) -> IPAddress | None:
    """The address a host string denotes by itself (no DNS), in any spelling a resolver accepts."""
    host = host.strip().strip("[]")
    if "%" in host:  # an IPv6 zone id ("fe80::1%eth0") names an interface, not another address
        host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _parse_ipv4_loose(host.rstrip("."))


def _parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """inet_aton's grammar: 1 to 4 parts, each decimal, 0x-hex or 0-octal; the last fills the rest."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        number = _parse_number(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = 0
    for n in leading:
        value = value * 256 + n
    value = value * 256 ** (5 - len(numbers)) + last
    return ipaddress.IPv4Address(value)


def _parse_number(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:], 16) if lowered[2:] else 0
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        return int(lowered, 10) if lowered.isdigit() else None
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses carried inside an IPv6 one (mapped, 6to4, Teredo, NAT64, IPv4-compatible)."""
    if address.version == 4:
        return []
    found = []
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in _NAT64):
        found.append(low32)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        found.append(low32)
    return found


def classify(address: IPAddress) -> str | None:
    """Why an address is not a public one (None when it is).

    An IPv6 address that carries an IPv4 one reaches that IPv4 address, so that one decides.
    """
    for candidate in embedded_ipv4(address) or [address]:
        reason = _classify_one(candidate)
        if reason:
            return reason
    return None


def _classify_one(a: IPAddress) -> str | None:
    if a in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (a.is_unspecified, "an unspecified address"),
        (a.is_loopback, "a loopback address"),
        (a.is_link_local, "a link-local address"),
        (a.is_multicast, "a multicast address"),
        (a.version == 4 and a in _CGNAT, "a carrier-grade NAT address"),
        (a.is_private, "a private address"),
        (a.is_reserved, "a reserved address"),
        (not a.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


def is_metadata_host(host: str) -> bool:
    """A cloud metadata endpoint, by name or by address in any spelling (no DNS)."""
    address = parse_ip(host)
    if address is not None:
        return any(a in METADATA_ADDRESSES for a in [address, *embedded_ipv4(address)])
    return host.rstrip(".").lower() in METADATA_NAMES


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


@dataclass(frozen=True)
class Target:
    """A checked URL: connect only to `addresses`, sending `host` as Host header and TLS SNI."""

    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def origin(self) -> str:
        return origin_of(self.scheme, self.host, self.port)


def origin_of(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or BlockedURL with a plain reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedURL(f"{safe_url(url)} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BlockedURL(f"{safe_url(url)}: only http and https URLs are allowed, not {scheme or 'a relative URL'!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedURL(f"{safe_url(url)} has no host")
    return scheme, host, port or DEFAULT_PORTS[scheme]


def safe_url(url: str) -> str:
    """A URL shown in messages: no query or fragment (API keys travel there), no user info."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?", 1)[0]
    except ValueError:
        return url.split("?", 1)[0]


@dataclass(frozen=True)
class Allowance:
    """One allowlist entry: a host name or a network, at one port or the standard ones, for one
    scheme or both."""

    host: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None  # None: the scheme's standard port
    scheme: str | None = None  # None: http or https

    def covers(self, host: str, address: IPAddress) -> bool:
        """Whether the entry names this host or address, whatever the port."""
        if self.host is not None:
            return host == self.host
        return address in self.network or any(e in self.network for e in embedded_ipv4(address))

    def admits(self, scheme: str, port: int) -> bool:
        if self.scheme is not None and scheme != self.scheme:
            return False
        return port == (self.port if self.port is not None else DEFAULT_PORTS[scheme])


def parse_allowance(entry: str) -> Allowance:
    """`http://host:port`, `host:port`, `[v6]:port`, a host, an address or a network (see the top)."""
    text = str(entry).strip().lower()
    if "://" in text:
        scheme, host, port = split_url(text)
        return _allowance(host, port, scheme)
    try:
        return Allowance(network=ipaddress.ip_network(text.strip("[]"), strict=False))
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (host.startswith("[") or ":" not in host):
        return _allowance(host.strip("[]"), int(port))
    if ":" in text or not text or "/" in text:
        raise ValueError(f"{entry!r} is neither an origin (http://host:port), a host[:port] nor a network")
    return Allowance(host=text.rstrip("."))


def _allowance(host: str, port: int | None, scheme: str | None = None) -> Allowance:
    address = parse_ip(host)
    if address is not None:
        return Allowance(network=ipaddress.ip_network(address), port=port, scheme=scheme)
    return Allowance(host=host.rstrip("."), port=port, scheme=scheme)


class Guard:
    """Checks URLs before any connection; one per plugin."""

    def __init__(
        self,
        allow_private: bool | Sequence[str] = False,
        *,
        resolver: Resolver | None = None,
        ports: Iterable[int] | None = None,  # None: any port
    ):
        self.allow_all_private = allow_private is True
        entries = [] if isinstance(allow_private, bool) else list(allow_private)
        try:
            self.allowances = [parse_allowance(e) for e in entries]
        except (ValueError, BlockedURL) as exc:
            raise ValueError(f"allow_private: {exc}") from None
        self.pinned: set[str] = set()  # origins of the plugin itself (see pin)
        self.resolver = resolver or _system_resolver
        self.ports = frozenset(ports) if ports is not None else None

    def pin(self, url: str) -> None:
        """The plugin is pinned to this URL's origin (its base URL, its spec's URL): an entry that
        names the host allows this one origin, not only the standard ports."""
        self.pinned.add(origin_of(*split_url(url)))

    def allows(self, scheme: str, host: str, port: int, address: IPAddress, reason: str) -> bool:
        origin = origin_of(scheme, host, port)
        for allowance in self.allowances:
            if allowance.covers(host, address) and (allowance.admits(scheme, port) or origin in self.pinned):
                return True
        return self.allow_all_private and reason != "a cloud metadata address"

    def check_static(self, url: str) -> tuple[str, str, int]:
        """What can be known without DNS: scheme, port, IP literals in any spelling, local names.

        Used when a plugin is added or built, so that a private base URL is refused up front.
        """
        scheme, host, port = split_url(url)
        self._check_port(url, port)
        address = parse_ip(host)
        if address is not None:
            self._check_address(url, scheme, host, port, address)
        elif host == "localhost" or host.endswith(".localhost"):
            self._check_address(url, scheme, host, port, ipaddress.ip_address("127.0.0.1"))
        elif host in METADATA_NAMES and not any(a.host == host for a in self.allowances):
            raise BlockedURL(f"{safe_url(url)}: {host} is a cloud metadata endpoint; plugdeck never connects to it")
        return scheme, host, port

    async def check(self, url: str) -> Target:
        """Resolve and check a URL; every address must pass. The caller connects to one of them."""
        scheme, host, port = self.check_static(url)
        literal = parse_ip(host)
        if literal is not None:
            return Target(scheme, host, port, (literal,))
        try:
            answers = await asyncio.to_thread(lambda: list(self.resolver(host, port)))
        except (OSError, UnicodeError) as exc:
            raise BlockedURL(f"could not resolve {host}: {exc}") from None
        addresses = []
        for answer in answers:
            address = parse_ip(str(answer))
            if address is None:
                raise BlockedURL(f"{host} resolved to {answer!r}, which is not an IP address")
            self._check_address(url, scheme, host, port, address)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise BlockedURL(f"{host} did not resolve to any address")
        return Target(scheme, host, port, tuple(addresses))

    def _check_port(self, url: str, port: int) -> None:
        if self.ports is not None and port not in self.ports:
            raise BlockedURL(f"{safe_url(url)}: port {port} is not allowed (allowed: {sorted(self.ports)})")

    def _check_address(self, url: str, scheme: str, host: str, port: int, address: IPAddress) -> None:
        reason = classify(address)
        if reason is None or self.allows(scheme, host, port, address, reason):
            return
        shown = host if str(address) == host else f"{host} ({address})"
        origin = origin_of(scheme, host, port)
        if reason == "a cloud metadata address":
            hint = "plugdeck never connects there unless the plugin names that address in allow_private."
        elif any(a.covers(host, address) for a in self.allowances):
            hint = (f"The plugin allows other origins of {host}, not {origin}: private addresses are allowed "
                    "per origin (scheme, host and port), so that an allowed API cannot lead elsewhere on the "
                    "same machine.")
        else:
            hint = ("Private addresses are refused unless the plugin allows them "
                    "(plugdeck plugins add openapi ... --allow-private).")
        raise BlockedURL(f"refused to connect to {safe_url(url)}: {shown} is {reason}. {hint}")
