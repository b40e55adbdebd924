"""The registry's side of TUF: the repository's roles, kept as files a plain web server (or a CDN) serves.

    root        offline key (keys/root.pem: move it off the server); signs which keys hold each role
    targets     offline key (keys/targets.pem); delegates each hashed bin `bins-XX` to the online key
    bins-XX     online key; delegates namespace N to N's publisher key, for `XX/N/*` only (terminating)
    N           the publisher's key, and no key of the registry's: it lists N's packages and their hashes
    snapshot    online key; the version of every targets role, so none can be rolled back or mixed
    timestamp   online key; the snapshot's version, short-lived, so a frozen mirror is noticed

Metadata is written with consistent snapshots (`VERSION.ROLE.json`, artifacts as `SHA256.FILE`), so a
client in the middle of a refresh never sees half of a publish. The timestamp is written last: a
publish is visible once it is.

Several registry replicas may share the folder (`store serve --db postgresql://...`): a write takes a
lock on the folder's `repository.lock` as well as the process's, and every replica catches up with
the timestamp and snapshot another one wrote before it reads or writes (see `_catch_up`).

A publisher's upload is accepted only when its namespace metadata is signed by the key registered for
that namespace, is exactly one version newer, keeps every earlier target byte for byte (versions are
immutable), and adds exactly the files uploaded, all inside the namespace's paths.
"""

from __future__ import annotations

from ..errors import UserError
from ..files import write_atomically

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from . import keys
from .layout import REVOKED_FILE, all_bins, bin_of, bin_paths, bin_role, namespace_paths, revoked_path
from .manifest import MANIFEST_FILE

EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=365), "bins": timedelta(days=90),
          "snapshot": timedelta(days=7), "timestamp": timedelta(days=1)}
RESERVED = {"root", "targets", "snapshot", "timestamp"}


class TrustError(UserError, ValueError):
    """An upload or a change that the repository refuses; the message says why."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _serializer():
    from tuf.api.serialization.json import JSONSerializer

    return JSONSerializer(compact=True)


def _stamp(path: Path) -> tuple:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_size


@contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` between processes (flock; where there is none, this process's only)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one replica per folder
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, data: bytes) -> None:
    """Write then rename: a reader sees the old file or the new one, never half of one."""
    write_atomically(path, data)


def check_namespace_name(namespace: str) -> None:
    import re

    from .manifest import NAMESPACE

    if not re.fullmatch(NAMESPACE, namespace) or namespace in RESERVED or namespace.startswith("bins-"):
        raise TrustError(f"namespace {namespace!r}: use lowercase letters, digits and '-', starting with a letter "
                         "(root, targets, snapshot, timestamp and bins-* are taken by the store's own roles)")


class Repository:
    """A store's TUF repository in `folder` (metadata/, targets/, keys/)."""

    def __init__(self, folder: Path):
        from tuf.api.metadata import Metadata

        self.folder = Path(folder)
        self.metadata_dir = self.folder / "metadata"
        self.targets_dir = self.folder / "targets"
        self.keys_dir = self.folder / "keys"
        if not (self.metadata_dir / "timestamp.json").exists():
            raise TrustError(f"{self.folder} holds no store repository (plugdeck store serve creates one)")
        self.online = keys.load(self.keys_dir / "online.pem")
        self._lock = threading.RLock()
        self._seen_stamp: tuple = ()
        self._load()

    def _load(self) -> None:
        from tuf.api.metadata import Metadata

        self._seen_stamp = _stamp(self.metadata_dir / "timestamp.json")
        self.timestamp = Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        self.snapshot = self._read("snapshot", self.timestamp.signed.snapshot_meta.version)
        self.root = Metadata.from_file(str(self.metadata_dir / "root.json"))

    def _catch_up(self) -> None:
        """Reload when another process (a replica sharing the folder) wrote a newer timestamp. Our own
        writes leave the versions equal, so state this process holds is never thrown away."""
        from tuf.api.metadata import Metadata

        stamp = _stamp(self.metadata_dir / "timestamp.json")
        if stamp == self._seen_stamp:
            return
        on_disk = Metadata.from_file(str(self.metadata_dir / "timestamp.json"))
        self._seen_stamp = stamp
        if on_disk.signed.version != self.timestamp.signed.version:
            self._load()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time, in this process and across the replicas sharing the folder, each starting
        from the files as the last writer left them."""
        with self._lock, _folder_lock(self.folder / "repository.lock"):
            self._catch_up()
            yield

    # ---- creating ---------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: Path) -> Repository:
        """A new repository: fresh root, targets and online keys, the 256 bins, empty namespaces."""
        from tuf.api.metadata import (Delegations, DelegatedRole, Metadata, MetaFile, Root, Snapshot, Targets,
                                      Timestamp)

        folder = Path(folder)
        if (folder / "metadata" / "timestamp.json").exists():
            raise TrustError(f"{folder} already holds a store repository")
        root_key = keys.generate(folder / "keys" / "root.pem")
        targets_key = keys.generate(folder / "keys" / "targets.pem")
        online = keys.generate(folder / "keys" / "online.pem")
        now = _now()
        root = Metadata(Root(expires=now + EXPIRY["root"], consistent_snapshot=True))
        root.signed.add_key(root_key.public_key, "root")
        root.signed.add_key(targets_key.public_key, "targets")
        for role in ("snapshot", "timestamp"):
            root.signed.add_key(online.public_key, role)
        root.sign(root_key)

        roles = {bin_role(b): DelegatedRole(bin_role(b), [online.public_key.keyid], 1, True, paths=bin_paths(b))
                 for b in all_bins()}
        targets = Metadata(Targets(expires=now + EXPIRY["targets"],
                                   delegations=Delegations({online.public_key.keyid: online.public_key}, roles)))
        targets.sign(targets_key)
        snapshot = Metadata(Snapshot(expires=now + EXPIRY["snapshot"]))
        snapshot.signed.meta["targets.json"] = MetaFile(1)
        bins = {}
        for b in all_bins():
            bins[bin_role(b)] = Metadata(Targets(expires=now + EXPIRY["bins"], delegations=Delegations({}, {})))
            bins[bin_role(b)].sign(online)
            snapshot.signed.meta[f"{bin_role(b)}.json"] = MetaFile(1)
        snapshot.sign(online)
        timestamp = Metadata(Timestamp(expires=now + EXPIRY["timestamp"], snapshot_meta=MetaFile(1)))
        timestamp.sign(online)

        meta = folder / "metadata"
        _write(meta / "1.root.json", root.to_bytes(_serializer()))
        _write(meta / "root.json", root.to_bytes(_serializer()))
        _write(meta / "1.targets.json", targets.to_bytes(_serializer()))
        for name, md in bins.items():
            _write(meta / f"1.{name}.json", md.to_bytes(_serializer()))
        _write(meta / "1.snapshot.json", snapshot.to_bytes(_serializer()))
        _write(meta / "timestamp.json", timestamp.to_bytes(_serializer()))
        (folder / "targets").mkdir(parents=True, exist_ok=True)
        return cls(folder)

    @classmethod
    def open_or_create(cls, folder: Path) -> Repository:
        if (Path(folder) / "metadata" / "timestamp.json").exists():
            return cls(folder)
        return cls.create(folder)

    # ---- reading ----------------------------------------------------------------------------

    def _read(self, role: str, version: int):
        from tuf.api.metadata import Metadata

        return Metadata.from_file(str(self.metadata_dir / f"{version}.{role}.json"))

    def role(self, name: str):
        """The current metadata of a targets role (targets, bins-XX or a namespace), or None."""
        with self._lock:
            self._catch_up()
            meta = self.snapshot.signed.meta.get(f"{name}.json")
        return None if meta is None else self._read(name, meta.version)

    def namespace_targets(self, namespace: str) -> dict[str, Any]:
        """Target path -> TargetFile that the namespace's current metadata lists."""
        md = self.role(namespace)
        return {} if md is None else dict(md.signed.targets)

    def namespace_version(self, namespace: str) -> int:
        md = self.role(namespace)
        return 0 if md is None else md.signed.version

    # ---- accepting a publish ----------------------------------------------------------------

    def accept(self, namespace: str, public_key: dict[str, Any], metadata: bytes, files: dict[str, bytes]) -> int:
        """Take a publisher's signed namespace metadata and the files it adds; returns its version.

        `public_key` is the key registered for the namespace (by the registry's admin); `files` maps
        target paths to their bytes. Raises TrustError, and changes nothing, when any check fails."""
        from tuf.api.exceptions import UnsignedMetadataError
        from tuf.api.metadata import DelegatedRole, Metadata, Targets
        from tuf.api.serialization import DeserializationError

        check_namespace_name(namespace)
        try:
            md = Metadata.from_bytes(metadata)
        except DeserializationError as exc:
            raise TrustError(f"the namespace metadata cannot be read: {exc}") from None
        if not isinstance(md.signed, Targets):
            raise TrustError(f"the namespace metadata must be targets metadata, not {md.signed.type}")
        if md.signed.delegations is not None:
            raise TrustError("a namespace cannot delegate further; remove its delegations")
        if md.signed.is_expired(_now()):
            raise TrustError("the namespace metadata has already expired")
        with self._writing():
            bin_name = bin_role(bin_of(namespace))
            bin_md = self.role(bin_name)
            delegation = bin_md.signed.delegations.roles.get(namespace)
            first = delegation is None
            if first:
                key = keys.public_key_from_dict(public_key)
                bin_md.signed.delegations.keys[key.keyid] = key
                delegation = DelegatedRole(namespace, [key.keyid], 1, True, paths=namespace_paths(namespace))
                bin_md.signed.delegations.roles[namespace] = delegation
            try:
                bin_md.signed.verify_delegate(namespace, md.signed_bytes, md.signatures)
            except UnsignedMetadataError:
                raise TrustError(f"the metadata for namespace {namespace!r} is not signed by that namespace's "
                                 "key: a publisher signs only its own namespace") from None
            expected = self.namespace_version(namespace) + 1
            if md.signed.version != expected:
                raise TrustError(f"namespace {namespace!r} metadata must be version {expected} (one newer than the "
                                 f"store's), not {md.signed.version}; fetch the current one and sign again")
            old = self.namespace_targets(namespace)
            for path, target in old.items():
                if md.signed.targets.get(path) != target:
                    raise TrustError(f"{path} was already published and cannot change or disappear "
                                     "(versions are immutable)")
            added = {p: t for p, t in md.signed.targets.items() if p not in old}
            if set(added) != set(files):
                raise TrustError(f"the metadata adds {sorted(added)} but the upload carries {sorted(files)}")
            for path, target in added.items():
                if path.endswith("/" + REVOKED_FILE) and path.replace(REVOKED_FILE, MANIFEST_FILE) not in old:
                    raise TrustError(f"{path}: only a published version can be revoked")
                if not delegation.is_delegated_path(path):
                    raise TrustError(f"{path} is outside namespace {namespace!r} (its paths: {delegation.paths})")
                if set(target.hashes) != {"sha256"}:
                    raise TrustError(f"{path}: give exactly one sha256 hash")
                try:
                    target.verify_length_and_hashes(files[path])
                except Exception:
                    raise TrustError(f"{path}: the uploaded bytes do not match the signed length and sha256") from None
            self._commit(namespace, md, added, files, bin_name, bin_md if first else None)
            return md.signed.version

    def _commit(self, namespace, md, added, files, bin_name, new_bin) -> None:
        from tuf.api.metadata import MetaFile

        for path, target in added.items():
            directory, _, base = path.rpartition("/")
            _write(self.targets_dir / directory / f"{target.hashes['sha256']}.{base}", files[path])
        _write(self.metadata_dir / f"{md.signed.version}.{namespace}.json", md.to_bytes(_serializer()))
        snapshot = self.snapshot
        if new_bin is not None:
            new_bin.signed.version += 1
            new_bin.signed.expires = _now() + EXPIRY["bins"]
            new_bin.signatures.clear()
            new_bin.sign(self.online)
            _write(self.metadata_dir / f"{new_bin.signed.version}.{bin_name}.json", new_bin.to_bytes(_serializer()))
            snapshot.signed.meta[f"{bin_name}.json"] = MetaFile(new_bin.signed.version)
        snapshot.signed.meta[f"{namespace}.json"] = MetaFile(md.signed.version)
        self._new_snapshot()

    def _new_snapshot(self) -> None:
        from tuf.api.metadata import MetaFile

        snapshot = self.snapshot
        snapshot.signed.version += 1
        snapshot.signed.expires = _now() + EXPIRY["snapshot"]
        snapshot.signatures.clear()
        snapshot.sign(self.online)
        _write(self.metadata_dir / f"{snapshot.signed.version}.snapshot.json", snapshot.to_bytes(_serializer()))
        self.timestamp.signed.snapshot_meta = MetaFile(snapshot.signed.version)
        self.renew_timestamp()

    def revoke_as_store(self, name: str, version: str, data: bytes) -> None:
        """The store's own revocation of a version (an admin's decision), signed by the online key in the
        namespace's bin: the one kind of file a bin may list (clients refuse any other there)."""
        from tuf.api.metadata import MetaFile, TargetFile

        namespace = name.partition("/")[0]
        path = revoked_path(name, version)
        with self._writing():
            if path.replace(REVOKED_FILE, MANIFEST_FILE) not in self.namespace_targets(namespace):
                raise TrustError(f"{name} {version} is not published here")
            bin_name = bin_role(bin_of(namespace))
            md = self.role(bin_name)
            if path in md.signed.targets or path in self.namespace_targets(namespace):
                raise TrustError(f"{name} {version} is already revoked")
            target = TargetFile.from_data(path, data, ["sha256"])
            md.signed.targets[path] = target
            directory, _, base = path.rpartition("/")
            _write(self.targets_dir / directory / f"{target.hashes['sha256']}.{base}", data)
            md.signed.version += 1
            md.signed.expires = _now() + EXPIRY["bins"]
            md.signatures.clear()
            md.sign(self.online)
            _write(self.metadata_dir / f"{md.signed.version}.{bin_name}.json", md.to_bytes(_serializer()))
            self.snapshot.signed.meta[f"{bin_name}.json"] = MetaFile(md.signed.version)
            self._new_snapshot()

    # ---- keeping it fresh, rotating keys ----------------------------------------------------

    def renew_timestamp(self, expires: datetime | None = None) -> None:
        """A new timestamp (clients refuse an expired one: a store that stops renewing it, or a mirror
        that replays an old one, is noticed within EXPIRY['timestamp'])."""
        timestamp = self.timestamp
        timestamp.signed.version += 1
        timestamp.signed.expires = expires or _now() + EXPIRY["timestamp"]
        timestamp.signatures.clear()
        timestamp.sign(self.online)
        _write(self.metadata_dir / "timestamp.json", timestamp.to_bytes(_serializer()))

    def renew_if_due(self) -> bool:
        """Renew the bins, the snapshot and the timestamp when less than half their life is left (run
        periodically by the service). Returns whether anything was signed anew."""
        from tuf.api.metadata import MetaFile

        with self._writing():
            now = _now()
            renewed = False
            for name in (bin_role(b) for b in all_bins()):
                md = self.role(name)
                if md.signed.expires - now < EXPIRY["bins"] / 2:
                    md.signed.version += 1
                    md.signed.expires = now + EXPIRY["bins"]
                    md.signatures.clear()
                    md.sign(self.online)
                    _write(self.metadata_dir / f"{md.signed.version}.{name}.json", md.to_bytes(_serializer()))
                    self.snapshot.signed.meta[f"{name}.json"] = MetaFile(md.signed.version)
                    renewed = True
            if renewed or self.snapshot.signed.expires - now < EXPIRY["snapshot"] / 2:
                self._new_snapshot()
                return True
            if self.timestamp.signed.expires - now < EXPIRY["timestamp"] / 2:
                self.renew_timestamp()
                return True
        return False

    def rotate_root(self, old_root_key: Path, new_root_key: Path) -> int:
        """Replace the root key: the new root is signed by the old key and the new one, so clients
        that trust the old root accept it, and afterwards trust only the new key. Returns its version."""
        old, new = keys.load(old_root_key), keys.load(new_root_key)
        with self._writing():
            root = self.root
            if old.public_key.keyid not in root.signed.roles["root"].keyids:
                raise TrustError(f"{old_root_key} is not the current root key")
            root.signed.revoke_key(old.public_key.keyid, "root")
            root.signed.add_key(new.public_key, "root")
            root.signed.version += 1
            root.signed.expires = _now() + EXPIRY["root"]
            root.signatures.clear()
            root.sign(old, append=True)
            root.sign(new, append=True)
            data = root.to_bytes(_serializer())
            _write(self.metadata_dir / f"{root.signed.version}.root.json", data)
            _write(self.metadata_dir / "root.json", data)
            return root.signed.version
