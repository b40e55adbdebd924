"""API keys for `plugdeck serve`, kept in `PLUGDECK_HOME/keys.json` (mode 0600).

A key is `pdk_<id>_<secret>`: the id finds the record, the 256-bit secret proves it. Only a salted
SHA-256 of the secret is stored (a random 256-bit secret needs no slow hash), so the file gives
nobody a working key, and the key itself is shown once, when it is created. Each key names the
plugins it may use (`*` for all; a knowledge base counts as a plugin of its name), and may carry a
rate (`60/min`), a limit on runs at once, and a policy file of its own.

Standard library only: the `plugdeck keys` commands import this without the server stack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

PREFIX = "pdk_"
_TOKEN = re.compile(r"^pdk_([0-9a-f]{10})_([A-Za-z0-9_-]{20,})$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
            "d": 86400, "day": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeyProblem(UserError, ValueError):
    """A key request a person can fix (bad rate, unknown key, bad name)."""


def parse_rate(text: str) -> tuple[int, float]:
    """'60/min' -> (60 requests, per 60.0 seconds)."""
    match = _RATE.match(text or "")
    if not match or int(match.group(1)) < 1:
        raise KeyProblem(f"rate {text!r} is not understood: write COUNT/PERIOD, e.g. 60/min, 5/s, 1000/hour, 10000/day")
    return int(match.group(1)), float(_PERIODS[match.group(2)])


@dataclass
class ApiKey:
    id: str
    name: str
    plugins: list[str]  # plugin (or knowledge base) names; ["*"] for all
    salt: str = field(repr=False)
    digest: str = field(repr=False)
    created_at: float = 0.0
    rate: str | None = None  # "60/min"
    concurrent: int | None = None  # runs at once
    policy: str | None = None  # a policy file for this key's runs
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def all_plugins(self) -> bool:
        return "*" in self.plugins

    def allows(self, plugin: str) -> bool:
        return self.all_plugins or plugin in self.plugins

    def public(self) -> dict[str, Any]:
        """What may be shown: everything except the salt and digest."""
        data = asdict(self)
        data.pop("salt"), data.pop("digest")
        data["status"] = "active" if self.active else "revoked"
        return data

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, secret), self.digest)


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, home: str | Path):
        self.path = Path(home) / "keys.json"
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    # ---- reading (the server calls these on every request; the file is read again only when it changed)

    def keys(self) -> list[ApiKey]:
        self._refresh()
        return list(self._keys.values())

    def any_active(self) -> bool:
        return any(k.active for k in self.keys())

    def required(self) -> bool:
        """Whether the server needs a key for every API request: once any key was made, even after the
        last is revoked (revoking must never open the server). Without keys.json, this machine needs none."""
        return bool(self.keys())

    def verify(self, token: str) -> ApiKey | None:
        """The active key this token proves, or None."""
        match = _TOKEN.match(token or "")
        if not match:
            return None
        self._refresh()
        key = self._keys.get(match.group(1))
        if key is None or not key.active or not key.matches(match.group(2)):
            return None
        return key

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._keys = {k.id: k for k in self._read()}
            self._stamp = stamp

    def _read(self) -> list[ApiKey]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [ApiKey(**item) for item in data.get("keys", [])]
        except (OSError, ValueError, TypeError) as exc:
            raise KeyProblem(f"{self.path} cannot be read ({exc}); fix it or move it away and create keys again") from None

    # ---- changing (the `plugdeck keys` commands)

    def create(self, plugins: list[str], *, name: str | None = None, rate: str | None = None,
               concurrent: int | None = None, policy: str | None = None) -> tuple[ApiKey, str]:
        """Make a key; returns it and the token, which is not stored anywhere and cannot be shown again."""
        plugins = [p.strip() for p in plugins if p.strip()]
        if not plugins:
            raise KeyProblem("name the plugins this key may use: --plugins calculator,pizzeria (or '*' for all)")
        if rate is not None:
            parse_rate(rate)
        if concurrent is not None and concurrent < 1:
            raise KeyProblem("--concurrent must be at least 1")
        keys = self._read() if self.path.exists() else []
        key_id = secrets.token_hex(5)
        name = name or f"key-{key_id}"
        if not _NAME.match(name):
            raise KeyProblem(f"key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        if any(k.name == name and k.active for k in keys):
            raise KeyProblem(f"an active key is already named {name!r}; choose another --name or revoke it first")
        secret, salt = secrets.token_urlsafe(32), secrets.token_hex(16)
        key = ApiKey(id=key_id, name=name, plugins=plugins, salt=salt, digest=_digest(salt, secret),
                     created_at=time.time(), rate=rate, concurrent=concurrent, policy=policy)
        self._write([*keys, key])
        return key, f"{PREFIX}{key_id}_{secret}"

    def revoke(self, id_or_name: str) -> ApiKey:
        keys = self._read() if self.path.exists() else []
        found = [k for k in keys if k.active and id_or_name in (k.id, k.name)]
        if not found:
            known = ", ".join(f"{k.name} ({k.id})" for k in keys if k.active) or "none"
            raise KeyProblem(f"no active key with id or name {id_or_name!r} (active keys: {known})")
        for key in found:
            key.revoked_at = time.time()
        self._write(keys)
        return found[0]

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside, then rename: a crash never leaves half a file; 0600 from the first byte.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"keys": [asdict(k) for k in keys]}, out, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None
