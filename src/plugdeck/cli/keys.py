"""`plugdeck keys ...`: keys for model providers, stored once in the system keyring (as `llm keys` does).

    plugdeck keys set openai            # asks for the key (or reads it from a pipe); never in a config file
    plugdeck keys list                  # names only
    plugdeck keys get openai            # prints the key, for scripts
    plugdeck keys delete openai

A model profile uses one with `api_key = "keyring:openai"`. The access keys clients use to call
`plugdeck serve` are the server's and live under `plugdeck serve keys` (cli/access_keys.py); `keys
create` and `keys revoke` still work here and say where they went. Without a keyring backend (a
server without a desktop) each command says what to do instead.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import typer

from . import access_keys
from .common import fail as _fail

group = typer.Typer(help="Model providers' keys, kept in the system keyring (plugdeck serve keys: the server's "
                         "access keys).", no_args_is_help=True)

NameArg = typer.Argument(..., help="The key's name, such as openai; a profile uses it as api_key = \"keyring:NAME\".")


def _keyring(operation: Callable[[Any], Any]) -> Any:
    """`operation(secret_store)`; a keyring that is missing or refuses ends the command with its message."""
    from .. import secret_store

    try:
        return operation(secret_store)
    except secret_store.SecretStoreError as exc:
        _fail(str(exc))


@group.command("set")
def set_key(name: str = NameArg) -> None:
    """Store a key (asked for without echo, or read from a pipe: echo $KEY | plugdeck keys set NAME)."""
    value = typer.prompt(f"Key for {name}", hide_input=True) if sys.stdin.isatty() else sys.stdin.read()
    _keyring(lambda store: store.set_secret(name, value.strip()))
    print(f"stored key {name!r} in the keyring. Use it in a model profile with: api_key = \"keyring:{name}\"",
          file=sys.stderr)


@group.command("get")
def get_key(name: str = NameArg) -> None:
    """Print a stored key (for scripts)."""
    value = _keyring(lambda store: store.get_secret(name))
    if value is None:
        _fail(f"no key named {name!r} is stored (plugdeck keys list shows them; store one with plugdeck keys set "
              f"{name})")
    print(value)


@group.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List the stored keys' names (never the keys)."""
    names = _keyring(lambda store: store.list_secrets())
    if as_json:
        print(json.dumps(names))
    elif names:
        print("\n".join(names))
    else:
        print("no keys stored; store one with: plugdeck keys set openai", file=sys.stderr)
    if _has_access_keys():
        print("(plugdeck serve's access keys: plugdeck serve keys list)", file=sys.stderr)


@group.command("delete")
def delete_key(name: str = NameArg) -> None:
    """Remove a stored key from the keyring."""
    if not _keyring(lambda store: store.delete_secret(name)):
        _fail(f"no key named {name!r} is stored (plugdeck keys list shows them)")
    print(f"deleted key {name!r}", file=sys.stderr)


def _has_access_keys() -> bool:
    from ..server.keys import KeyProblem

    try:
        return bool(access_keys._store().keys())
    except KeyProblem:
        return False


def _moved(command, name: str):
    """The server's `keys NAME` command, still answering here, with a note of where it lives now."""

    @functools.wraps(command)
    def still_here(*args, **kwargs):
        print(f"note: server access keys are under plugdeck serve keys now (plugdeck serve keys {name})",
              file=sys.stderr)
        return command(*args, **kwargs)

    return still_here


for _name, _command in (("create", access_keys.create), ("revoke", access_keys.revoke)):
    group.command(_name, help=f"Moved: plugdeck serve keys {_name} (still works here).")(_moved(_command, _name))
