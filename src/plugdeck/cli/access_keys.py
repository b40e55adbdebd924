"""`plugdeck serve keys ...`: the access keys clients use to call `plugdeck serve`.

    plugdeck serve keys create --plugins calculator,pizzeria [--rate 60/min] [--name NAME]   # printed once
    plugdeck serve keys list
    plugdeck serve keys revoke NAME_OR_ID

Under `serve` because they are the server's: `plugdeck keys` holds the keys plugdeck itself uses to call
model providers (cli/keys.py), as `llm keys` does; its `create` and `revoke` still come here.

Once a key exists, every API request needs `Authorization: Bearer KEY`, even after the last key is
revoked; deleting PLUGDECK_HOME/keys.json lets this machine in without a key again. Standard library
and typer only: the server stack is not imported here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import fail as _fail, home as _home

group = typer.Typer(help="Access keys for plugdeck serve: each limited to some plugins, with an optional rate.",
                    no_args_is_help=True)
CREATE = "plugdeck serve keys create --plugins NAMES"

JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")


def _store():
    from ..server.keys import KeyStore

    return KeyStore(_home())


def _known_plugins(home: Path) -> list[str]:
    """Installed and added plugins and knowledge bases, by name, without loading any of them."""
    from .. import extensions
    from ..plugins import registry

    names = {e.name for e in extensions.declared(extensions.PLUGINS)} | set(registry.configured(home))
    kb_root = home / "kb"
    if kb_root.is_dir():
        names |= {p.name for p in kb_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(names)


@group.command("create")
def create(
    plugins: str = typer.Option(..., "--plugins", help="Comma-separated plugins (and knowledge bases) the key may "
                                                       "use, or '*' for all."),
    name: Optional[str] = typer.Option(None, "--name", help="A name to recognise the key by."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Requests allowed, e.g. 60/min, 5/s, 1000/hour."),
    concurrent: Optional[int] = typer.Option(None, "--concurrent", help="Runs this key may have running at once."),
    policy: Optional[str] = typer.Option(None, "--policy", help="A policy file for this key's runs (instead of "
                                                                "the agent's)."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a key. It is printed once, on stdout; only a salted hash is kept."""
    from ..server.keys import KeyProblem, KeyStore

    home = _home()
    wanted = [p.strip() for p in plugins.split(",") if p.strip()]
    known = _known_plugins(home)
    unknown = [p for p in wanted if p != "*" and p not in known]
    if unknown:
        _fail(f"no plugin or knowledge base named {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
    if policy:
        from ..policy.load import PolicyError, load_policy

        try:
            load_policy(policy)
        except PolicyError as exc:
            _fail(str(exc))
        policy = str(Path(policy).resolve())
    try:
        key, token = KeyStore(home).create(wanted, name=name, rate=rate, concurrent=concurrent, policy=policy)
    except KeyProblem as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"key": token, **key.public()}, indent=2))
        return
    print(token)
    limits = [f"rate {key.rate}"] if key.rate else []
    limits += [f"{key.concurrent} run(s) at once"] if key.concurrent else []
    print(f"created key {key.name} ({key.id}) for {', '.join(key.plugins)}"
          f"{'; ' + ', '.join(limits) if limits else ''}. This is the only time the key is shown: keep it now. "
          f"Use it as: Authorization: Bearer KEY", file=sys.stderr)


@group.command("list")
def list_keys(as_json: bool = JsonOpt, all_keys: bool = typer.Option(False, "--all", help="Revoked keys too.")) -> None:
    """List keys (never the keys themselves)."""
    from ..server.keys import KeyProblem

    store = _store()
    try:
        keys = [k for k in store.keys() if all_keys or k.active]
    except KeyProblem as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps([k.public() for k in keys], indent=2))
        return
    if not keys:
        print(_without_active_keys(store), file=sys.stderr)
        return
    from datetime import datetime

    from rich.table import Table

    from .render import consoles

    table = Table(box=None)
    for column in ("name", "id", "plugins", "rate", "at once", "policy", "created", "status"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.name, k.id, ", ".join(k.plugins), k.rate or "-", str(k.concurrent or "-"), k.policy or "-",
                      datetime.fromtimestamp(k.created_at).strftime("%Y-%m-%d %H:%M"),
                      "active" if k.active else "revoked")
    consoles()[0].print(table)


@group.command("revoke")
def revoke(key: str = typer.Argument(..., help="The key's name or id (see plugdeck serve keys list).")) -> None:
    """Revoke a key: a running server refuses it from its next request on."""
    from ..server.keys import KeyProblem

    store = _store()
    try:
        revoked = store.revoke(key)
    except KeyProblem as exc:
        _fail(str(exc))
    print(f"revoked key {revoked.name} ({revoked.id})", file=sys.stderr)
    if not store.any_active():
        print(_without_active_keys(store), file=sys.stderr)


def _without_active_keys(store) -> str:
    """What plugdeck serve does with no active key: the same rule as the server's (KeyStore.required)."""
    if store.required():
        return ("no active key: plugdeck serve refuses every API request (401) until you create a key "
                f"({CREATE}); its page still signs in with the ?token= link it prints. "
                f"To let this machine in without a key again, delete {store.path}")
    return ("no keys: plugdeck serve answers this machine only, without a key. Create one with: "
            "plugdeck serve keys create --plugins calculator")
