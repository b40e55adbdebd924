"""Keyring backends for tests: nothing ever touches the real user keyring.

    from memory_keyring import MemoryKeyring, use_keyring
    with use_keyring(MemoryKeyring()) as ring: ...      # in this process (keyring.set_keyring)

`FileKeyring` keeps its entries in the JSON file named by $TEST_KEYRING_FILE, so a `plugdeck` command run
in a subprocess (PYTHON_KEYRING_BACKEND=memory_keyring.FileKeyring, with tests/ on PYTHONPATH) and the
test share them. The `keyring_backend` fixture (tests/conftest.py) is a fresh MemoryKeyring per test.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import keyring
import keyring.backend
import keyring.errors


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._load()
        entries[(service, username)] = password
        self._save(entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = self._load()
        if (service, username) not in entries:
            raise keyring.errors.PasswordDeleteError(f"no {username!r} in {service!r}")
        del entries[(service, username)]
        self._save(entries)

    def _load(self) -> dict[tuple[str, str], str]:
        return self.entries

    def _save(self, entries: dict[tuple[str, str], str]) -> None:
        self.entries = entries


class FileKeyring(MemoryKeyring):
    """Entries in the JSON file $TEST_KEYRING_FILE, shared with subprocesses."""

    def _path(self) -> Path:
        return Path(os.environ["TEST_KEYRING_FILE"])

    def _load(self) -> dict[tuple[str, str], str]:
        path = self._path()
        rows = json.loads(path.read_text()) if path.is_file() else []
        return {(service, name): value for service, name, value in rows}

    def _save(self, entries: dict[tuple[str, str], str]) -> None:
        self._path().write_text(json.dumps([[s, n, v] for (s, n), v in entries.items()]))


@contextlib.contextmanager
def use_keyring(ring: keyring.backend.KeyringBackend) -> Iterator[keyring.backend.KeyringBackend]:
    """`ring` as the process's keyring for the block, then the one before it again."""
    before = keyring.get_keyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(before)
