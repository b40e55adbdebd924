"""`plugdeck plugins extensions`: what installed packages add to plugdeck, and whether each part loads."""

from __future__ import annotations

import json

import typer

KINDS = {  # group -> what an entry there adds
    "plugdeck.plugins": "plugin (tools)",
    "plugdeck.models": "model backend (--model NAME:...)",
    "plugdeck.commands": "command (plugdeck NAME)",
    "plugdeck.embedders": "embedder ([knowledge.embeddings] model = \"NAME:...\")",
    "plugdeck.rules_skills": "rules-model skill",
    "plugdeck.hooks": "tool-call hook",
}


def list_extensions(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List what installed packages add (model backends, commands, embedders, rules skills, hooks, plugins) and whether each loads."""
    # Plugins are only listed: a third-party plugin's code runs in the sandbox, never imported here.
    from .. import extensions
    from .main import _builtin_command_names, _consoles

    builtin_commands = _builtin_command_names()
    rows = []
    for group, kind in KINDS.items():
        kept = extensions.named(group)
        for extension in extensions.declared(group):
            if kept.get(extension.name) is not extension:
                status = f"skipped: {extension.name!r} is taken by {kept[extension.name].package}"
            elif group == extensions.COMMANDS and extension.name in builtin_commands:
                status = f"skipped: {extension.name!r} is a built-in command"
            elif group == extensions.PLUGINS:
                status = "listed by plugdeck plugins"
            elif extensions.load(extension) is None:
                status = "skipped: " + next(p.message for p in extensions.problems(group)
                                             if (p.name, p.package) == (extension.name, extension.package))
            else:
                status = "ok"
            rows.append({"group": group, "kind": kind, "name": extension.name, "package": extension.package,
                         "target": extension.target, "builtin": extension.builtin, "status": status})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.markup import escape

    out, _ = _consoles()
    for row in rows:
        colour = "green" if row["status"] == "ok" else "red" if row["status"].startswith("skipped") else "dim"
        out.print(f"[bold]{escape(row['name'])}[/] {escape(row['kind'])} [dim]from {escape(row['package'])} "
                  f"({escape(row['target'])})[/]  [{colour}]{escape(row['status'])}[/]")


plugins_commands = {"extensions": list_extensions}
