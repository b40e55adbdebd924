"""Secrets kept by name in the system keyring (the `keyring` library), never in a configuration file.

    from plugdeck import secret_store
    secret_store.set_secret("openai", "sk-...")          # plugdeck keys set openai
    secret_store.get_secret("openai")                    # -> "sk-..." or None
    secret_store.delete_secret("openai")                 # -> True if there was one
    secret_store.list_secrets()                          # -> ["openai", ...] (names only)

Each function takes `service=`: provider keys use "plugdeck"; other features keep theirs apart under
a service of their own (MCP OAuth tokens: "plugdeck-oauth"). Keyrings cannot list what they hold, so
the names of a service are kept in one more keyring entry beside the secrets (no file on disk).
Every secret read or written is registered with the redactor, so it never shows in a message, a
trace or a stored run. `keyring` is an extra and is imported only when a secret is used.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import UserError
from .redaction import register_secret

SERVICE = "plugdeck"
_INDEX = "\x00names"  # the entry holding a service's names; no real name can start with NUL
NO_BACKEND_HELP = ("Set the key in an environment variable instead (OPENAI_API_KEY, or the variable a model "
                   "profile's api_key_env names), or install a keyring that works without a desktop: "
                   "pip install keyrings.alt (it keeps keys in a file under your home)")


class SecretStoreError(UserError):
    """The keyring is missing, has no usable backend, or refused."""


def get_secret(name: str, *, service: str = SERVICE, redact: bool = True) -> str | None:
    """The secret stored under `name`, or None when there is none. `redact=False` for a record whose
    secret parts the caller registers itself (MCP OAuth keeps a JSON record: every 8-character piece of
    it, field names included, would otherwise be blanked everywhere)."""
    _check_name(name)
    value = _call("read", name, lambda ring: ring.get_password(service, name))
    if redact:
        register_secret(value, f"stored key {name!r}")
    return value


def set_secret(name: str, value: str, *, service: str = SERVICE, redact: bool = True) -> None:
    """Store `value` under `name`, replacing what was there."""
    _check_name(name)
    if not value or not value.strip():
        raise SecretStoreError(f"the key for {name!r} is empty: nothing was stored")
    if redact:
        register_secret(value, f"stored key {name!r}")
    _call("store", name, lambda ring: ring.set_password(service, name, value))
    names = list_secrets(service=service)
    if name not in names:
        _write_index(service, sorted([*names, name]))


def delete_secret(name: str, *, service: str = SERVICE) -> bool:
    """Remove the secret stored under `name`; False when there was none."""
    _check_name(name)
    if get_secret(name, service=service, redact=False) is None:
        _write_index(service, [n for n in list_secrets(service=service) if n != name])
        return False
    _call("delete", name, lambda ring: ring.delete_password(service, name))
    _write_index(service, [n for n in list_secrets(service=service) if n != name])
    return True


def list_secrets(*, service: str = SERVICE) -> list[str]:
    """The names stored for `service` (never the values), sorted."""
    raw = _call("read", "", lambda ring: ring.get_password(service, _INDEX))
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        names = []
    return sorted(n for n in names if isinstance(n, str)) if isinstance(names, list) else []


def _write_index(service: str, names: list[str]) -> None:
    _call("update", "", lambda ring: ring.set_password(service, _INDEX, json.dumps(names)))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or name.startswith("\x00"):
        raise SecretStoreError(f"a stored key needs a name, such as 'openai', not {name!r}")


def _call(action: str, name: str, operation: Any) -> Any:
    """Run one keyring operation, turning keyring's failures into one clear message."""
    try:
        import keyring
        import keyring.errors
    except ModuleNotFoundError:
        raise SecretStoreError("storing keys needs plugdeck's optional part 'keyring', which is not installed: "
                               "pip install 'plugdeck[keyring]'. " + NO_BACKEND_HELP) from None
    what = f"the key {name!r}" if name else "the list of stored keys"
    try:
        return operation(keyring.get_keyring())
    except keyring.errors.NoKeyringError:
        raise SecretStoreError(f"cannot {action} {what}: this machine has no keyring (no desktop keyring service "
                               f"was found). {NO_BACKEND_HELP}") from None
    except keyring.errors.KeyringError as exc:
        raise SecretStoreError(f"the keyring could not {action} {what}: {exc or type(exc).__name__}") from None
