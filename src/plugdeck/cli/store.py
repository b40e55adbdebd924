"""`plugdeck store ...` (serve, keygen, publish, add, search) and `plugdeck install NS/NAME`.

Module-level imports stay light: this module loads with every CLI start."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .common import fail as _fail, home as _home

group = typer.Typer(help="The plugin store: run a registry, publish, add a store, search.", no_args_is_help=True)

StoreOpt = typer.Option(None, "--store", help="A store added with plugdeck store add (its name or URL).")
YesOpt = typer.Option(False, "--yes", "-y", help="Consent without asking (scripts). Never implied without a terminal.")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts.")


def _consent(question: str, yes: bool, what: str) -> None:
    from .confirm import ask_person

    answer = ask_person(question, yes, what)
    if isinstance(answer, str):
        _fail(answer)
    if not answer:
        _fail("not approved; nothing was changed")


def _keys_dir(home: Path) -> Path:
    return home / "store" / "keys"


# ---- registry side ----------------------------------------------------------------------------


@group.command("serve")
def serve(
    port: int = typer.Option(8700, "--port", help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Default loopback only."),
    folder: Optional[Path] = typer.Option(None, "--dir", help="The registry's folder (default PLUGDECK_HOME/registry)."),
    db: Optional[str] = typer.Option(None, "--db", metavar="URL",
                                     help="Keep the index (namespaces, versions, search) in this PostgreSQL database, "
                                          "postgresql://USER@HOST/DB, so several replicas sharing it and --dir serve "
                                          "one registry (default: SQLite in the folder)."),
    max_upload: int = typer.Option(50 * 1024 * 1024, "--max-upload", help="Largest upload accepted, in bytes."),
    writes_per_minute: int = typer.Option(60, "--writes-per-minute", help="Most writes (POST) one address may make "
                                                                         "in a minute."),
    run_packages: bool = typer.Option(True, "--run-packages/--no-run-packages",
                                      help="At publish, install each package and call its tools once in the sandbox "
                                           "(refusing one whose tools differ from its manifest; flagging undeclared "
                                           "network use)."),
    semantic: bool = typer.Option(True, "--semantic/--no-semantic",
                                  help="Semantic search beside keywords (embeds each listing at publish; needs the "
                                       "knowledge extra's model, else keyword only)."),
    admin_token_env: Optional[str] = typer.Option(
        None, "--admin-token-env", help="An environment variable holding the admin token; with it, claiming a "
                                        "namespace needs that token (default: first come, first served)."),
) -> None:
    """Run a store registry: REST API, OpenAPI document at /openapi.json, TUF files under /tuf."""
    import uvicorn

    from ..store.client import root_fingerprint
    from ..store.service import create_app

    folder = folder or _home() / "registry"
    admin_token = None
    if admin_token_env:
        admin_token = os.environ.get(admin_token_env)
        if not admin_token:
            _fail(f"${admin_token_env} is empty")
    from ..errors import UserError

    try:
        app = create_app(folder, max_upload=max_upload, admin_token=admin_token, writes_per_minute=writes_per_minute,
                         run_packages=run_packages, semantic=semantic, db=db)
    except UserError as exc:  # a --db that is not a PostgreSQL URL, or one that cannot be reached
        _fail(str(exc))
    where = f"index {app.state.listings.db.where}, " if db else ""
    fingerprint = root_fingerprint((folder / "metadata" / "1.root.json").read_bytes())
    print(f"store at http://{host}:{port} ({where}folder {folder})\nroot fingerprint {fingerprint}\n"
          f"keys in {folder / 'keys'}: move root.pem and targets.pem off this server; it needs only online.pem",
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@group.command("rotate-root")
def rotate_root(
    folder: Path = typer.Option(..., "--dir", help="The registry's folder."),
    old_key: Path = typer.Option(..., "--old-key", help="The current root key (PEM), brought back from offline."),
    new_key: Path = typer.Option(..., "--new-key", help="The new root key (PEM); made if it does not exist."),
) -> None:
    """Replace the store's root key: the new root is signed by the old key and the new one, so every
    client follows it; afterwards the old key signs nothing that clients accept."""
    from ..store import keys
    from ..store.repo import Repository, TrustError

    try:
        if not new_key.exists():
            keys.generate(new_key)
        version = Repository(folder).rotate_root(old_key, new_key)
    except (TrustError, keys.StoreKeyError) as exc:
        _fail(str(exc))
    print(f"root version {version} is signed by the old and the new key; keep {new_key} offline")


@group.command("keygen")
def keygen(namespace: str = typer.Argument(..., help="The namespace the key will publish in, e.g. acme")) -> None:
    """Make a publisher key (Ed25519) for a namespace; the private key never leaves this machine."""
    from ..store import keys

    try:
        signer = keys.generate(keys.key_path(_keys_dir(_home()), namespace))
    except keys.StoreKeyError as exc:
        _fail(str(exc))
    print(f"key for namespace {namespace!r}: {keys.key_path(_keys_dir(_home()), namespace)}\n"
          f"key id {signer.public_key.keyid}")


@group.command("publish")
def publish(
    project: Path = typer.Argument(..., help="A plugin project folder (plugdeck plugins new makes one)."),
    store: str = typer.Option(..., "--store", help="The store's URL."),
    key: str = typer.Option(..., "--key", help="The namespace whose key signs (plugdeck store keygen NAME)."),
    admin_token_env: Optional[str] = typer.Option(None, "--admin-token-env",
                                                  help="Variable with the store's admin token, to claim the namespace."),
) -> None:
    """Build the package, sign its namespace's metadata with your key, and upload it."""
    from ..store.publish import build

    _publish(lambda: build(project, key), store, key, admin_token_env)


@group.command("import-mcp")
def import_mcp(
    server_json: Path = typer.Argument(..., help="An MCP server's server.json (the official MCP registry's format)."),
    store: str = typer.Option(..., "--store", help="The store's URL."),
    key: str = typer.Option(..., "--key", help="The namespace whose key signs (plugdeck store keygen NAME)."),
    name: Optional[str] = typer.Option(None, "--name", help="The package's name in the namespace (default: the last "
                                                            "part of the server's name)."),
    admin_token_env: Optional[str] = typer.Option(None, "--admin-token-env",
                                                  help="Variable with the store's admin token, to claim the namespace."),
) -> None:
    """Publish an MCP server (a PyPI or npm package, stdio) from its server.json: the server is installed
    and started here once to list its tools, which go in the signed manifest."""
    from ..store.mcp_package import MCPPackageError, build_mcp
    from ..store.publish import PublishError

    def build() -> Any:
        try:
            return build_mcp(server_json, key, package=name)
        except (MCPPackageError, OSError) as exc:
            raise PublishError(str(exc)) from None

    _publish(build, store, key, admin_token_env)


def _publish(build: Any, store: str, key: str, admin_token_env: Optional[str]) -> None:
    from ..store import keys
    from ..store.publish import PublishError, register, upload

    home = _home()
    try:
        signer = keys.load(keys.key_path(_keys_dir(home), key))
        package = build()
        token = _token(home, store, key)
        if token is None:
            token = register(store, key, signer, os.environ.get(admin_token_env) if admin_token_env else None)
            _save_token(home, store, key, token)
            print(f"claimed namespace {key!r} at {store}", file=sys.stderr)
        answer = upload(store, package, signer, token)
    except (PublishError, keys.StoreKeyError) as exc:
        _fail(str(exc))
    for finding in answer["checks"]["scanner"]:
        print(f"scanner: {finding}", file=sys.stderr)
    print(f"published {answer['name']} {answer['version']} ({len(package.manifest.tools)} tools)")


def _tokens_path(home: Path) -> Path:
    return home / "store" / "tokens.json"


def _token(home: Path, store: str, namespace: str) -> str | None:
    path = _tokens_path(home)
    tokens = json.loads(path.read_text()) if path.exists() else {}
    return tokens.get(f"{store.rstrip('/')} {namespace}")


def _save_token(home: Path, store: str, namespace: str, token: str) -> None:
    path = _tokens_path(home)
    tokens = json.loads(path.read_text()) if path.exists() else {}
    tokens[f"{store.rstrip('/')} {namespace}"] = token
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(tokens, out)


# ---- client side ------------------------------------------------------------------------------


@group.command("add")
def add(
    name: str = typer.Argument(..., help="A name for the store, e.g. team"),
    url: str = typer.Argument(..., help="The store's URL, e.g. http://127.0.0.1:8700"),
    fingerprint: Optional[str] = typer.Option(None, "--fingerprint",
                                              help="The root fingerprint the store's operator published; must match."),
    yes: bool = YesOpt,
) -> None:
    """Add a store: shows its root fingerprint and pins it as the root of trust."""
    from ..store.client import StoreError, add_store, fetch_first_root, root_fingerprint

    home = _home()
    try:
        root = fetch_first_root(url)
        print(f"store {url}\nroot fingerprint {root_fingerprint(root)}", file=sys.stderr)
        if fingerprint is None:
            _consent("Trust this root (compare the fingerprint with the one the store's operator published)?",
                     yes, "adding a store")
        entry = add_store(home, name, url, root, fingerprint=fingerprint)
    except StoreError as exc:
        _fail(str(exc))
    print(f"added store {name!r} ({entry['url']}), root {entry['fingerprint']}")


@group.command("search")
def search(
    query: str = typer.Argument("", help="Words to look for in names, descriptions and tools."),
    store: Optional[str] = StoreOpt,
    kind: Optional[str] = typer.Option(None, "--kind", help="python, openapi or mcp."),
    namespace: Optional[str] = typer.Option(None, "--publisher", help="Only this publisher's namespace."),
    permission: Optional[str] = typer.Option(None, "--permission", help="none, network, no-network, secrets, "
                                                                         "no-secrets, filesystem or no-filesystem."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many results."),
    as_json: bool = JsonOpt,
) -> None:
    """Search a store's listings (latest versions): keyword and semantic, best match first, then installs."""
    from ..store.client import StoreError, resolve, search as find, stores

    home = _home()
    try:
        url = store.rstrip("/") if store and "://" in store and store.rstrip("/") not in \
            [s["url"] for s in stores(home).values()] else resolve(home, store)[1]
        answer = find(url, query, kind=kind, namespace=namespace, permission=permission, limit=limit,
                      answer_only=False)
    except StoreError as exc:
        _fail(str(exc))
    results = answer["results"]
    if answer.get("note"):
        print(f"note: {answer['note']}", file=sys.stderr)
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    if not results:
        print("no packages found")
    for r in results:
        tools = ", ".join(t["name"] for t in r["tools"])
        print(f"{r['name']} {r['version']} ({r['kind']}): {r['description']}\n  tools: {tools}")


def install(
    package: str = typer.Argument(..., help="NAMESPACE/NAME, e.g. acme/weather"),
    store: Optional[str] = StoreOpt,
    version: Optional[str] = typer.Option(None, "--version", help="A version (default: the latest)."),
    yes: bool = YesOpt,
    allow_flagged: bool = typer.Option(False, "--allow-flagged",
                                       help="Install even when the metadata scanner flags a tool (after reading it)."),
) -> None:
    """Install a plugin from a store: verified through TUF, shown with its tools and permissions, then
    installed only with your consent, and pinned in plugdeck.lock."""
    from ..config import load_config
    from ..extras import MissingExtra, require
    from ..plugins.registry import RegistryError
    from ..store import client

    try:
        require("store", "plugdeck install")
    except MissingExtra as exc:
        _fail(str(exc))
    home = load_config().home
    try:
        if store and "://" in store and store.rstrip("/") not in [s["url"] for s in client.stores(home).values()]:
            root = client.fetch_first_root(store)
            print(f"store {store} is new here; root fingerprint {client.root_fingerprint(root)}", file=sys.stderr)
            _consent("Trust this store's root?", yes, "adding a store")
            client.add_store(home, client.name_for_url(store), store, root)

        def consent(fetched, findings) -> bool:
            from ..plugins.scan import blocking

            _show(fetched, findings)
            if blocking(findings) and not allow_flagged:
                _fail("the metadata scanner flags what reads like hidden instructions to the model (above); "
                      "not installed (--allow-flagged installs it anyway)")
            _consent(f"Install {fetched.manifest.name} {fetched.manifest.version}?", yes, "installing a plugin")
            return True

        entry = client.install(home, package, store=store, version=version, consent=consent)
    except (client.StoreError, RegistryError) as exc:
        _fail(str(exc))
    print(f"installed {package} {entry['version']} as plugin {entry['plugin']!r} (pinned in plugdeck.lock)")


def _show(fetched, findings) -> None:
    """Everything the person consents to, every text in full with invisible characters spelled out."""
    from ..plugins.scan import spell_out

    m = fetched.manifest
    say = lambda text="": print(text, file=sys.stderr)  # noqa: E731
    say(f"{m.name} {m.version} ({m.kind}) from store {fetched.store}, signed by namespace {m.namespace!r}")
    say(f"  {spell_out(m.description)}")
    say("tools:")
    for t in m.tools:
        say(f"  {m.plugin}.{t.name} [{t.effect}]: {spell_out(t.description)}")
        say(f"    parameters: {spell_out(json.dumps(t.parameters, ensure_ascii=False))}")
    p = m.permissions
    limits = {k: v for k, v in p.limits.model_dump().items() if v is not None}
    say("permissions:")
    say(f"  network: {', '.join(p.network) or 'none'}")
    say(f"  secrets: {', '.join(p.secrets) or 'none'}")
    say(f"  filesystem: {p.filesystem}")
    say(f"  limits: {json.dumps(limits) if limits else 'none declared'}")
    for finding in findings:
        say(f"scanner: {finding}")


@group.command("update")
def update(
    packages: Optional[list[str]] = typer.Argument(None, help="Packages to update (default: every one installed)."),
    yes: bool = YesOpt,
) -> None:
    """Install newer versions: quietly when tools and permissions are unchanged, else show what changed
    and ask again."""
    from ..store.client import StoreError
    from ..store.update import update as run_update

    def ask(package: str, old: str, new: str, changes) -> bool:
        print(f"{package} {old} -> {new} changes what it may do:", file=sys.stderr)
        for line in changes.lines:
            print(f"  {line}", file=sys.stderr)
        _consent(f"Update {package} to {new}?", yes, "an update that changes tools or permissions")
        return True

    try:
        outcomes = run_update(_home(), packages or None, ask)
    except StoreError as exc:
        _fail(str(exc))
    for o in outcomes:
        if o["outcome"] == "up to date":
            print(f"{o['package']} {o['version']}: up to date")
        else:
            print(f"{o['package']} {o['previous']} -> {o['version']}: {o['outcome']}"
                  + ("" if o["changes"] else " (no change to tools or permissions)"))


@group.command("revoke")
def revoke(
    package: str = typer.Argument(..., help="NAMESPACE/NAME"),
    version: str = typer.Argument(..., help="The version to revoke."),
    reason: str = typer.Option(..., "--reason", help="Why: shown to everyone who installed it."),
    store: str = typer.Option(..., "--store", help="The store's URL."),
    key: Optional[str] = typer.Option(None, "--key", help="Revoke as the publisher: the namespace's key."),
    admin_token_env: Optional[str] = typer.Option(None, "--admin-token-env",
                                                  help="Revoke as the store: a variable holding its admin token."),
) -> None:
    """Revoke a version (signed through TUF); installed copies are disabled at their next refresh."""
    from ..store import keys
    from ..store.publish import PublishError, revoke as as_publisher, revoke_as_admin

    home = _home()
    try:
        if admin_token_env:
            as_admin = revoke_as_admin(store, package, version, reason, os.environ.get(admin_token_env, ""))
            print(f"revoked {as_admin['name']} {as_admin['version']} as the store")
            return
        if not key:
            _fail("give --key NAMESPACE (as the publisher) or --admin-token-env VAR (as the store)")
        token = _token(home, store, key)
        if token is None:
            _fail(f"no API token for namespace {key!r} at {store} on this machine")
        done = as_publisher(store, package, version, reason, keys.load(keys.key_path(_keys_dir(home), key)), token)
    except (PublishError, keys.StoreKeyError) as exc:
        _fail(str(exc))
    print(f"revoked {done['name']} {done['version']}")


@group.command("audit")
def audit(as_json: bool = JsonOpt) -> None:
    """Check every installed store plugin: revoked (with the reason), changed on disk, or ok."""
    from ..store.audit import audit as run_audit

    results = run_audit(_home())
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        if not results:
            print("nothing installed from a store")
        for r in results:
            print(f"{r['package']} {r['version']}: {r['status']}" + (f" ({r['reason']})" if r["reason"] else ""))
    if any(r["status"] != "ok" for r in results):
        raise typer.Exit(1)


app_commands: dict[str, Any] = {"install": install}
