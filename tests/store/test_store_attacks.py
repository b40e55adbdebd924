"""TUF's attacks on a real registry on loopback, each refused by the client with a clear message and
nothing installed: tampered artifact, tampered metadata, rollback, freeze, mix-and-match, a publisher
key signing another namespace (at the registry, and from a registry whose online key is stolen), an
old root key after rotation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from store_kit import RegistryThread, weather_project

pytest.importorskip("tuf")

from plugdeck.plugins import registry as plugin_registry  # noqa: E402
from plugdeck.store import client, keys, lock  # noqa: E402
from plugdeck.store.publish import Package, register, sign_namespace, upload  # noqa: E402
from plugdeck.store.repo import TrustError  # noqa: E402


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Package:
    from plugdeck.store.publish import build

    return build(weather_project(tmp_path_factory.mktemp("project")), "acme")


def version(package: Package, number: str) -> Package:
    return Package(package.manifest.model_copy(update={"version": number}), package.artifact)


@pytest.fixture
def store(tmp_path, package):
    """A registry with acme/weather 0.1.0 published by acme's key."""
    with RegistryThread(tmp_path / "registry") as reg:
        reg.acme = keys.generate(tmp_path / "acme.pem")
        reg.token = register(reg.url, "acme", reg.acme)
        upload(reg.url, package, reg.acme, reg.token)
        yield reg


def client_home(tmp_path: Path, url: str, name: str = "home") -> Path:
    home = tmp_path / name
    client.add_store(home, "team", url, client.fetch_first_root(url))
    return home


def install(home: Path, number: str | None = None) -> dict:
    return client.install(home, "acme/weather", store="team", version=number, consent=lambda fetched, findings: True)


def assert_nothing_installed(home: Path) -> None:
    assert not lock.lock_path(home).exists()
    assert not (home / "store" / "packages").exists()
    assert plugin_registry.configured(home) == {}


def refused(home: Path, match: str, number: str | None = None) -> None:
    with pytest.raises(client.TrustFailure, match=match) as caught:
        install(home, number)
    assert "nothing was installed" in str(caught.value) or "not the one" in str(caught.value)


def test_an_honest_store_installs(tmp_path, store):
    home = client_home(tmp_path, store.url)
    entry = install(home)
    assert entry["version"] == "0.1.0" and (home / "store" / "packages" / "acme" / "weather" / "0.1.0").is_dir()


def test_tampered_artifact(tmp_path, store):
    wheel, = (store.repo.targets_dir).rglob("*.whl")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 1
    wheel.write_bytes(bytes(data))
    home = client_home(tmp_path, store.url)
    refused(home, "does not match its signed hash or length")
    assert_nothing_installed(home)


def test_tampered_metadata(tmp_path, store):
    path = store.repo.metadata_dir / "1.acme.json"
    md = json.loads(path.read_text())
    target = next(t for p, t in md["signed"]["targets"].items() if p.endswith(".whl"))
    target["hashes"]["sha256"] = "0" * 64  # point the signed entry elsewhere; the signature no longer holds
    path.write_text(json.dumps(md))
    home = client_home(tmp_path, store.url)
    refused(home, "not signed by the keys it must be")
    assert_nothing_installed(home)


def test_rollback_to_older_metadata(tmp_path, store, package):
    home = client_home(tmp_path, store.url)
    old_timestamp = (store.repo.metadata_dir / "timestamp.json").read_bytes()
    upload(store.url, version(package, "0.2.0"), store.acme, store.token)
    install(home, "0.2.0")  # the client has now seen the newer timestamp
    before = lock.lock_path(home).read_bytes()
    (store.repo.metadata_dir / "timestamp.json").write_bytes(old_timestamp)
    refused(home, "older or mismatched metadata", "0.1.0")
    assert lock.lock_path(home).read_bytes() == before
    assert not (home / "store" / "packages" / "acme" / "weather" / "0.1.0").exists()


def test_freeze_with_an_expired_timestamp(tmp_path, store):
    store.repo.renew_timestamp(expires=datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1))
    home = client_home(tmp_path, store.url)
    refused(home, "expired")
    assert_nothing_installed(home)


def test_mix_and_match(tmp_path, store, package):
    upload(store.url, version(package, "0.2.0"), store.acme, store.token)
    # Serve the namespace's older, validly signed metadata where the snapshot names the newer one.
    (store.repo.metadata_dir / "2.acme.json").write_bytes((store.repo.metadata_dir / "1.acme.json").read_bytes())
    home = client_home(tmp_path, store.url)
    refused(home, "older or mismatched metadata", "0.2.0")
    assert_nothing_installed(home)


def test_the_registry_refuses_a_publisher_key_signing_another_namespace(tmp_path, store, package):
    evil = keys.generate(tmp_path / "evil.pem")
    evil_token = register(store.url, "evil", evil)
    newer = version(package, "0.2.0")
    from plugdeck.store.layout import artifact_path, manifest_path

    files = {manifest_path("acme/weather", "0.2.0"): newer.manifest.to_bytes(),
             artifact_path("acme/weather", "0.2.0", newer.manifest.artifact.file): newer.artifact}
    current = store.repo.role("acme")
    from tuf.api.serialization.json import JSONSerializer

    # Evil signs acme's next metadata with its own key: refused by the repository itself...
    forged = _resign(current.to_bytes(JSONSerializer()), files, evil)
    with pytest.raises(TrustError, match="not signed by that namespace's key"):
        store.repo.accept("acme", store.app.state.listings.namespace("acme")["public_key"], forged, files)
    # ...and through the API its token publishes only in its own namespace.
    import httpx

    answer = httpx.post(f"{store.url}/api/v1/packages", headers={"Authorization": f"Bearer {evil_token}"},
                        files={"manifest": ("m", newer.manifest.to_bytes()), "artifact": ("a", newer.artifact),
                               "metadata": ("acme.json", forged)})
    assert answer.status_code == 403 and "publishes in namespace 'evil', not 'acme'" in answer.json()["detail"]
    # Nor can it list acme's paths in its own namespace's metadata.
    inside_acme = {manifest_path("acme/weather", "9.9.9"): b"{}"}
    with pytest.raises(TrustError, match="outside namespace 'evil'"):
        store.repo.accept("evil", store.app.state.listings.namespace("evil")["public_key"],
                          sign_namespace(None, inside_acme, evil), inside_acme)
    assert store.repo.namespace_version("acme") == 1


def test_a_stolen_online_key_cannot_sign_a_namespace(tmp_path, store, package):
    """The registry's online key (snapshot, timestamp, bins) is stolen: the thief writes acme metadata
    signed by another key and publishes it with a valid snapshot and timestamp. Clients refuse it."""
    from tuf.api.serialization.json import JSONSerializer

    from plugdeck.store.layout import artifact_path, manifest_path

    evil = keys.generate(tmp_path / "thief.pem")
    newer = version(package, "0.2.0")
    files = {manifest_path("acme/weather", "0.2.0"): newer.manifest.to_bytes(),
             artifact_path("acme/weather", "0.2.0", newer.manifest.artifact.file): newer.artifact}
    forged = _resign(store.repo.role("acme").to_bytes(JSONSerializer()), files, evil)
    from tuf.api.metadata import MetaFile

    store.repo._commit("acme", _parse(forged), {p: t for p, t in _parse(forged).signed.targets.items()
                                                if p in files}, files, None, None)
    assert store.repo.snapshot.signed.meta["acme.json"] == MetaFile(2)
    home = client_home(tmp_path, store.url)
    refused(home, "not signed by the keys it must be", "0.2.0")
    assert_nothing_installed(home)


def _online_key_signs(repo, role: str, change) -> None:
    """What a thief holding the registry's online key can do: change a bin and publish it properly."""
    from tuf.api.metadata import MetaFile

    from plugdeck.store.repo import _serializer, _write

    md = repo.role(role)
    change(md.signed)
    md.signed.version += 1
    md.signatures.clear()
    md.sign(repo.online)
    _write(repo.metadata_dir / f"{md.signed.version}.{role}.json", md.to_bytes(_serializer()))
    repo.snapshot.signed.meta[f"{role}.json"] = MetaFile(md.signed.version)
    repo._new_snapshot()


def test_a_stolen_online_key_cannot_list_a_package_in_a_bin(tmp_path, store, package):
    """TUF takes a file that a delegating role lists before it asks the delegates: the client refuses any
    package file listed by the top-level targets or a bin, so only a namespace's key lists packages."""
    from tuf.api.metadata import TargetFile

    from plugdeck.store.layout import artifact_path, bin_of, bin_role, manifest_path

    newer = version(package, "0.2.0")
    files = {manifest_path("acme/weather", "0.2.0"): newer.manifest.to_bytes(),
             artifact_path("acme/weather", "0.2.0", newer.manifest.artifact.file): newer.artifact}
    for path, data in files.items():
        digest = TargetFile.from_data(path, data, ["sha256"]).hashes["sha256"]
        directory, _, base = path.rpartition("/")
        (store.repo.targets_dir / directory).mkdir(parents=True, exist_ok=True)
        (store.repo.targets_dir / directory / f"{digest}.{base}").write_bytes(data)

    def add_targets(signed):
        for path, data in files.items():
            signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])

    _online_key_signs(store.repo, bin_role(bin_of("acme")), add_targets)
    home = client_home(tmp_path, store.url)
    refused(home, "lists package files itself", "0.2.0")
    assert_nothing_installed(home)


def test_a_stolen_online_key_cannot_swap_the_key_of_a_namespace_a_client_has_pinned(tmp_path, store, package):
    """The online key decides which key a new namespace gets, so a thief could re-delegate acme to a key of
    its own; a client that installed from acme before pinned acme's key and refuses the swap."""
    from tuf.api.serialization.json import JSONSerializer

    from plugdeck.store.layout import bin_of, bin_role

    home = client_home(tmp_path, store.url)
    install(home)
    before = lock.lock_path(home).read_bytes()
    thief = keys.generate(tmp_path / "thief.pem")

    def redelegate(signed):
        role = signed.delegations.roles["acme"]
        signed.delegations.keys[thief.public_key.keyid] = thief.public_key
        role.keyids = [thief.public_key.keyid]

    _online_key_signs(store.repo, bin_role(bin_of("acme")), redelegate)
    newer = version(package, "0.2.0")
    from plugdeck.store.layout import artifact_path, manifest_path

    files = {manifest_path("acme/weather", "0.2.0"): newer.manifest.to_bytes(),
             artifact_path("acme/weather", "0.2.0", newer.manifest.artifact.file): newer.artifact}
    forged = _parse(_resign(store.repo.role("acme").to_bytes(JSONSerializer()), files, thief))
    store.repo._commit("acme", forged, {p: forged.signed.targets[p] for p in files}, files, None, None)
    with pytest.raises(client.TrustFailure, match="key of namespace 'acme' changed since you first installed"):
        install(home, "0.2.0")
    assert lock.lock_path(home).read_bytes() == before
    assert not (home / "store" / "packages" / "acme" / "weather" / "0.2.0").exists()


def test_an_old_root_key_after_rotation(tmp_path, store):
    from tuf.api.metadata import Metadata
    from tuf.api.serialization.json import JSONSerializer

    keys_dir = store.repo.keys_dir
    keys.generate(keys_dir / "root-2.pem")
    assert store.repo.rotate_root(keys_dir / "root.pem", keys_dir / "root-2.pem") == 2
    home = client_home(tmp_path, store.url)
    install(home)  # the client walks from the pinned root 1 to root 2, signed by both keys
    assert (home / "store" / "stores" / "team" / "metadata" / "root_history" / "2.root.json").exists()
    # The old root key, stolen, signs a root 3 that hands the timestamp role to the thief.
    old, thief = keys.load(keys_dir / "root.pem"), keys.generate(tmp_path / "thief.pem")
    root = Metadata.from_bytes((store.repo.metadata_dir / "2.root.json").read_bytes())
    for keyid in list(root.signed.roles["timestamp"].keyids):
        root.signed.revoke_key(keyid, "timestamp")
    root.signed.add_key(thief.public_key, "timestamp")
    root.signed.version = 3
    root.signatures.clear()
    root.sign(old)
    (store.repo.metadata_dir / "3.root.json").write_bytes(root.to_bytes(JSONSerializer()))
    fresh = client_home(tmp_path, store.url, "fresh")
    refused(fresh, "not signed by the keys it must be")
    assert_nothing_installed(fresh)


def _parse(data: bytes):
    from tuf.api.metadata import Metadata

    return Metadata.from_bytes(data)


def _resign(current: bytes, files: dict[str, bytes], signer) -> bytes:
    """The next version of a namespace's metadata with `files` added, signed by `signer` alone."""
    from tuf.api.metadata import TargetFile
    from tuf.api.serialization.json import JSONSerializer

    md = _parse(current)
    md.signed.version += 1
    md.signatures.clear()
    for path, data in files.items():
        md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
    md.sign(signer)
    return md.to_bytes(JSONSerializer())
