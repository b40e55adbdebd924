"""Test stand-ins for the two things on a person's desk: the keyring (in memory) and the browser (a
"user agent" that follows the authorization address with httpx, so the code travels through the
authorization server's real redirect to plugdeck's real loopback listener)."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("no such entry")


class Browser:
    """`open_url` for plugdeck's login: follows the address in a thread, like a person would."""

    def __init__(self, tamper_state: bool = False) -> None:
        self.tamper_state = tamper_state
        self.opened: list[str] = []
        self.pages: list[httpx.Response] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        thread = threading.Thread(target=self._follow, args=(url,), daemon=True)
        self.threads.append(thread)
        thread.start()
        return True

    def _follow(self, url: str) -> None:
        with httpx.Client(timeout=10) as client:
            answer = client.get(url)  # the authorization server approves at once and redirects
            location = answer.headers["location"]
            if self.tamper_state:  # an attacker's page sends its own code to the loopback listener
                parts = urlsplit(location)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": "forged"}
                location = urlunsplit(parts._replace(query=urlencode(query)))
            self.pages.append(client.get(location))

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)
