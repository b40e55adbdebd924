"""The store client: add a store with its root of trust, search it, fetch and install packages.

Every file that is installed comes through python-tuf's ngclient Updater, which checks the chain
root -> timestamp -> snapshot -> targets -> bin -> namespace (signatures, versions, expiry, hashes)
before it hands the bytes over; nothing is unpacked before that. Search results come from the REST
API and are only listings: what is installed is what TUF verified.
"""

from __future__ import annotations

from ..errors import UserError
from ..files import write_atomically

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from .layout import REVOKED_FILE, artifact_path, manifest_path, revoked_path
from .manifest import Manifest, ManifestError, parse_manifest


class StoreError(UserError, ValueError):
    """Something about a store or a package that the person can act on; the message says what."""


class TrustFailure(StoreError):
    """TUF refused the store's metadata or a file: nothing was installed."""


# ---- stores -----------------------------------------------------------------------------------


def stores_path(home: Path) -> Path:
    return Path(home) / "store" / "stores.json"


def stores(home: Path) -> dict[str, dict[str, Any]]:
    path = stores_path(home)
    return json.loads(path.read_text(encoding="utf-8")).get("stores", {}) if path.exists() else {}


def _save_stores(home: Path, known: dict[str, dict[str, Any]]) -> None:
    write_atomically(stores_path(home), json.dumps({"stores": known}, indent=2))


def root_fingerprint(root_bytes: bytes) -> str:
    """What a person compares with the fingerprint the store's operator publishes: the sha256 of the
    store's first root metadata, the same for the store's whole life (later roots chain from it)."""
    return "sha256:" + hashlib.sha256(root_bytes).hexdigest()


def fetch_first_root(url: str) -> bytes:
    import httpx

    try:
        answer = httpx.get(f"{url.rstrip('/')}/tuf/metadata/1.root.json", timeout=30)
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the store at {url}: {exc}") from None
    if answer.status_code != 200:
        raise StoreError(f"{url} is not a plugdeck store (no TUF root at /tuf/metadata/1.root.json: "
                         f"{answer.status_code})")
    return answer.content


def add_store(home: Path, name: str, url: str, root: bytes, *, fingerprint: str | None = None) -> dict[str, Any]:
    """Pin `root` (fetched by the caller, after showing its fingerprint) as this store's root of trust."""
    from tuf.api.metadata import Metadata, Root

    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", name):
        raise StoreError(f"store name {name!r}: use lowercase letters, digits, '-' and '_'")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise StoreError(f"{url!r} is not an http(s) URL")
    actual = root_fingerprint(root)
    if fingerprint is not None and fingerprint != actual:
        raise TrustFailure(f"the store's root fingerprint is {actual}, not the {fingerprint} you expected; "
                           "not added")
    try:
        md = Metadata.from_bytes(root)
        if not isinstance(md.signed, Root) or md.signed.version != 1:
            raise ValueError("not version 1 root metadata")
        md.signed.verify_delegate("root", md.signed_bytes, md.signatures)  # self-signed, as a root must be
    except Exception as exc:
        raise TrustFailure(f"the store's root metadata is not valid: {exc}") from None
    known = stores(home)
    if name in known and known[name]["url"] != url.rstrip("/"):
        raise StoreError(f"a store named {name!r} is already added ({known[name]['url']}); choose another name")
    folder = store_dir(home, name)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "metadata").mkdir(parents=True)
    (folder / "metadata" / "root.json").write_bytes(root)
    known[name] = {"url": url.rstrip("/"), "fingerprint": actual}
    _save_stores(home, known)
    return known[name]


def store_dir(home: Path, name: str) -> Path:
    return Path(home) / "store" / "stores" / name


def resolve(home: Path, store: str | None) -> tuple[str, str]:
    """(name, url) of a store given by name or URL; the only one added when none is given."""
    known = stores(home)
    if store is None:
        if len(known) == 1:
            (name, entry), = known.items()
            return name, entry["url"]
        raise StoreError("give --store NAME (added stores: " + (", ".join(known) or "none; plugdeck store add NAME URL")
                         + ")")
    if store in known:
        return store, known[store]["url"]
    for name, entry in known.items():
        if entry["url"] == store.rstrip("/"):
            return name, entry["url"]
    raise StoreError(f"no store {store!r} is added; add it first (it shows the root fingerprint to check): "
                     f"plugdeck store add NAME {store if '://' in store else 'URL'}")


def name_for_url(url: str) -> str:
    parsed = urlparse(url)
    return "store-" + re.sub(r"[^a-z0-9_-]+", "-", f"{parsed.hostname or ''}-{parsed.port or ''}".lower()).strip("-")


# ---- search (listings, unverified) ------------------------------------------------------------


def search(url: str, query: str, *, kind: str | None = None, namespace: str | None = None,
           permission: str | None = None, limit: int = 20, answer_only: bool = True) -> Any:
    """The store's results (or, with answer_only=False, its whole answer: results, semantic, note)."""
    import httpx

    params = {k: v for k, v in {"q": query, "kind": kind, "namespace": namespace, "permission": permission,
                                "limit": limit}.items() if v}
    try:
        answer = httpx.get(f"{url}/api/v1/search", params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the store at {url}: {exc}") from None
    if answer.status_code != 200:
        raise StoreError(f"the store answered {answer.status_code} to the search: {answer.text[:300]}")
    return answer.json()["results"] if answer_only else answer.json()


def latest_version(url: str, package: str) -> str | None:
    """The highest version that is not revoked, as the store lists it (what is then fetched is verified)."""
    import httpx

    try:
        answer = httpx.get(f"{url}/api/v1/packages/{package}", timeout=30)
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach the store at {url}: {exc}") from None
    if answer.status_code == 404:
        raise StoreError(f"the store has no package {package}")
    if answer.status_code != 200:
        raise StoreError(f"the store answered {answer.status_code} for {package}")
    return answer.json()["latest"]


# ---- verified download ------------------------------------------------------------------------


@dataclass
class Fetched:
    store: str
    manifest: Manifest
    manifest_bytes: bytes
    artifact: bytes
    namespace_keys: list[str]  # the key ids the store delegates the namespace to, now


def _updater(home: Path, name: str, url: str):
    from tuf.ngclient import Updater

    folder = store_dir(home, name)
    (folder / "cache").mkdir(parents=True, exist_ok=True)
    return Updater(metadata_dir=str(folder / "metadata"), metadata_base_url=f"{url}/tuf/metadata/",
                   target_base_url=f"{url}/tuf/targets/", target_dir=str(folder / "cache"),
                   bootstrap=None)  # the root pinned by store add (and the roots it has verified since)


def fetch(home: Path, store: str, package: str, version: str) -> Fetched:
    """The package's manifest and artifact, each verified by TUF, and checked against each other."""
    from tuf.api import exceptions as tuf_errors

    name, url = resolve(home, store)
    try:
        updater = _updater(home, name, url)
        updater.refresh()
        manifest_bytes = _download(updater, manifest_path(package, version), f"{package} {version}")
        try:
            manifest = parse_manifest(manifest_bytes)
        except ManifestError as exc:
            raise StoreError(f"{package} {version}: {exc}") from None
        if (manifest.name, manifest.version) != (package, version):
            raise TrustFailure(f"the manifest at {package} {version} is for {manifest.name} {manifest.version}")
        revoked = revocation(updater, package, version)
        if revoked is not None:
            raise StoreError(f"{package} {version} was revoked: {revoked}")
        artifact = _download(updater, artifact_path(package, version, manifest.artifact.file),
                             f"the artifact of {package} {version}")
    except tuf_errors.ExpiredMetadataError as exc:
        raise TrustFailure(f"the store's signed metadata has expired ({exc}): the store may be frozen or a "
                           "mirror is replaying old metadata; nothing was installed") from None
    except tuf_errors.BadVersionNumberError as exc:
        raise TrustFailure(f"the store offered older or mismatched metadata ({exc}): a rollback or "
                           "mix-and-match; nothing was installed") from None
    except tuf_errors.UnsignedMetadataError as exc:
        raise TrustFailure(f"the store's metadata is not signed by the keys it must be ({exc}); nothing was "
                           "installed") from None
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise TrustFailure(f"a file from the store does not match its signed hash or length ({exc}): it was "
                           "tampered with; nothing was installed") from None
    except tuf_errors.DownloadError as exc:
        raise TrustFailure(f"downloading from the store failed ({exc}); nothing was installed") from None
    except tuf_errors.RepositoryError as exc:
        raise TrustFailure(f"the store's metadata was refused ({type(exc).__name__}: {exc}); nothing was "
                           "installed") from None
    if hashlib.sha256(artifact).hexdigest() != manifest.artifact.sha256:
        raise TrustFailure(f"the artifact of {package} {version} is not the one its manifest names")
    return Fetched(name, manifest, manifest_bytes, artifact, _namespace_keys(home, name, manifest.namespace))


def _namespace_keys(home: Path, store: str, namespace: str) -> list[str]:
    """Check the roles above the namespace, as ngclient verified and kept them: neither the top-level
    targets role nor the bin may list a package file itself (TUF would take a file a delegating role
    lists before asking its delegates, so an online key could otherwise stand in for a publisher).
    Returns the key ids the bin delegates the namespace to."""
    from tuf.api.metadata import Metadata

    from .layout import bin_of, bin_role

    folder = store_dir(home, store) / "metadata"
    bin_md = None
    for role in ("targets", bin_role(bin_of(namespace))):
        md = Metadata.from_file(str(folder / f"{role}.json"))
        # A bin may list revocations (the store's admin revokes with the online key), nothing else.
        if any(not (role != "targets" and path.endswith("/" + REVOKED_FILE)) for path in md.signed.targets):
            raise TrustFailure(f"the store's {role} role lists package files itself; only a namespace's own key may "
                               "(refused: the store's keys may be stolen); nothing was installed")
        bin_md = md
    return sorted(bin_md.signed.delegations.roles[namespace].keyids)


def check_namespace_pin(home: Path, store: str, namespace: str, keyids: list[str]) -> bool:
    """True when the namespace's key is the one pinned at the first install from it (or none is pinned yet).
    The store's online key decides which key a new namespace has; once pinned, a change is refused."""
    pinned = stores(home).get(store, {}).get("namespaces", {}).get(namespace)
    if pinned is not None and pinned != keyids:
        raise TrustFailure(f"the key of namespace {namespace!r} changed since you first installed from it (was "
                           f"{', '.join(k[:16] for k in pinned)}, now {', '.join(k[:16] for k in keyids)}): the "
                           "publisher may have replaced it, or the store's keys were stolen; nothing was installed. "
                           "If the publisher confirms the new key, add the store again (plugdeck store add)")
    return pinned is None


def pin_namespace(home: Path, store: str, namespace: str, keyids: list[str]) -> None:
    known = stores(home)
    known[store].setdefault("namespaces", {})[namespace] = keyids
    _save_stores(home, known)


def revocation(updater, package: str, version: str) -> str | None:
    """The reason a version was revoked, if its publisher or the store revoked it (TUF-verified)."""
    info = updater.get_targetinfo(revoked_path(package, version))
    if info is None:
        return None
    cached = updater.find_cached_target(info)
    try:
        reason = json.loads(Path(cached or updater.download_target(info)).read_bytes()).get("reason")
    except (ValueError, AttributeError):
        reason = None
    return str(reason or "no reason given")[:500]


def _download(updater, path: str, what: str) -> bytes:
    info = updater.get_targetinfo(path)
    if info is None:
        raise TrustFailure(f"{what} is not in the store's signed metadata (not published, or not signed by "
                           "its namespace's key); nothing was installed")
    cached = updater.find_cached_target(info)
    return Path(cached or updater.download_target(info)).read_bytes()


# ---- install ----------------------------------------------------------------------------------


def scan(manifest: Manifest) -> list:
    from ..plugins.scan import ToolText, scan_tools

    return scan_tools(ToolText.of(t.name, t.description, t.parameters) for t in manifest.tools)


def install(home: Path, package: str, *, store: str | None = None, version: str | None = None,
            consent: Callable[[Fetched, list], bool]) -> dict[str, Any]:
    """Fetch (TUF-verified), ask `consent` (shown the manifest and the scanner's findings), unpack, lock
    and register. Returns the lock entry. Nothing is written unless consent is given."""
    from ..plugins import registry
    from . import lock
    from .unpack import UnpackError, unpack_wheel

    if not re.fullmatch(r"[a-z][a-z0-9-]{0,38}/[a-z][a-z0-9_-]{0,63}", package):
        raise StoreError(f"{package!r} is not namespace/name (e.g. acme/weather)")
    name, url = resolve(home, store)
    version = version or latest_version(url, package)
    if version is None:
        raise StoreError(f"every version of {package} is revoked")
    fetched = fetch(home, name, package, version)
    manifest = fetched.manifest
    data = lock.read(home)
    previous = data["packages"].get(package)
    owners = registry.configured(home)
    owner = owners.get(manifest.plugin)
    if owner is not None and owner.get("options", {}).get("package") != package:
        raise StoreError(f"a plugin named {manifest.plugin!r} is already added; remove it first "
                         f"(plugdeck plugins remove {manifest.plugin})")
    if manifest.plugin in registry.installed_names():
        raise StoreError(f"{manifest.plugin!r} is the name of an installed plugin; {package} cannot take it")
    first_from_namespace = check_namespace_pin(home, name, manifest.namespace, fetched.namespace_keys)
    if not consent(fetched, scan(manifest)):
        raise StoreError("not installed: no consent")
    target = lock.package_dir(home, package, version)
    staging = Path(tempfile.mkdtemp(dir=_parent(target), prefix=".installing-"))
    try:
        if manifest.kind == "mcp":  # the artifact is its server.json; the server comes from PyPI or npm
            (staging / "server.json").write_bytes(fetched.artifact)
            files = {"server.json": hashlib.sha256(fetched.artifact).hexdigest()}
        else:
            files = unpack_wheel(fetched.artifact, staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except UnpackError as exc:
        raise StoreError(f"{package} {version}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    plugin_kind, options = "store", {"package": package}
    if manifest.kind == "mcp":
        plugin_kind, options = "mcp", _mcp_options(manifest, target, package)
    entry = {
        "store": name, "store_url": url, "version": version, "kind": manifest.kind, "plugin": manifest.plugin,
        "entry_point": manifest.entry_point, "spec": manifest.spec, "base_url": manifest.base_url,
        "artifact": {"file": manifest.artifact.file, "sha256": manifest.artifact.sha256},
        "manifest_sha256": hashlib.sha256(fetched.manifest_bytes).hexdigest(),
        "tools": manifest.tool_digests(),
        "permissions": manifest.permissions.model_dump(),
        "files": files,
    }
    entry["checked_at"] = time.time()  # revocations were just checked, through TUF
    data["packages"][package] = entry
    lock.write(home, data)
    lock.manifest_file(home, package, version).write_bytes(fetched.manifest_bytes)  # for the next update's diff
    if first_from_namespace:
        pin_namespace(home, name, manifest.namespace, fetched.namespace_keys)
    _count_install(url, package, version)
    registry.add(home, manifest.plugin, plugin_kind, options, replace=owner is not None)
    if previous and previous["version"] != version:
        shutil.rmtree(lock.package_dir(home, package, previous["version"]), ignore_errors=True)
        lock.manifest_file(home, package, previous["version"]).unlink(missing_ok=True)
    return entry


def _mcp_options(manifest: Manifest, target: Path, package: str) -> dict[str, Any]:
    """An MCP plugin's options for an installed mcp package: its server installed and started once; its
    tools must be the manifest's (what the person consented to), and are then pinned."""
    from ..plugins.mcp.pinning import approve
    from .mcp_package import MCPPackageError, live_tools, prepare, tool_definitions
    from .verify import compare_tools

    try:
        command = prepare(manifest.server, target)
        env = {s: s for s in manifest.permissions.secrets}
        live = live_tools(manifest.plugin, command, env)
    except MCPPackageError as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise StoreError(f"{package} {manifest.version}: {exc}") from None
    differ = compare_tools(manifest, tool_definitions(live))
    if differ:
        shutil.rmtree(target, ignore_errors=True)
        found = "; ".join(f"{what}: {', '.join(names)}" for what, names in differ.items())
        raise StoreError(f"{package} {manifest.version}: the server's tools are not the ones published ({found}); "
                         "not installed")
    return approve({"command": command, "env": env, "package": package,
                    "server_info": {"name": manifest.name, "version": manifest.version}}, live)


def _count_install(url: str, package: str, version: str) -> None:
    import httpx

    try:  # best effort: only the search order depends on it
        httpx.post(f"{url}/api/v1/packages/{package}/{version}/installs", timeout=5)
    except httpx.HTTPError:
        pass


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent
