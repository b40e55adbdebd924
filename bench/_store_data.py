"""Synthetic store listings for the store benchmarks: manifests with varied words, and a TUF repository
holding them, built in bulk (each namespace signed once by its own key) rather than one publish at a time."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

WORDS = ("weather forecast rain temperature city map route traffic calendar event meeting email inbox send "
         "invoice payment refund customer order shipping parcel track stock price quote currency exchange "
         "translate language text summary document pdf spreadsheet sheet table chart report sales lead crm "
         "ticket issue bug repository commit branch deploy build test log metric alert incident page search "
         "index vector embedding image photo resize video audio transcribe speech music playlist movie book "
         "recipe food restaurant booking hotel flight train ticketing airport news article feed rss social post "
         "tweet comment like follow user account profile login password secret key vault backup restore file "
         "folder upload download share link note task todo project board sprint time zone clock timer reminder "
         "contact phone sms chat message channel team slack discord meeting video call health step sleep "
         "fitness workout score game sport football weather alerts geocode address postal code tax accounting "
         "ledger budget expense receipt scan ocr barcode inventory warehouse supplier product catalog review "
         "rating survey form poll quiz course lesson student grade school library citation paper research").split()


def manifest(rng: random.Random, namespace: str, package: str, version: str = "1.0.0") -> dict:
    def words(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    tools = [{"name": f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{i}", "description": words(rng.randint(6, 18)).capitalize() + ".",
              "effect": rng.choice(["read", "read", "write"]),
              "parameters": {"type": "object", "properties": {rng.choice(WORDS): {"type": "string",
                                                                                  "description": words(4)}}}}
             for i in range(rng.randint(1, 5))]
    artifact = f"{namespace}/{package}".encode()
    return {"name": f"{namespace}/{package}", "version": version, "description": words(rng.randint(8, 20)).capitalize(),
            "kind": "python", "plugin": package.replace("-", "_"), "entry_point": "plugin:plugin", "tools": tools,
            "permissions": {"network": [f"api.{rng.choice(WORDS)}.example"]},
            "artifact": {"file": f"{package}-{version}-py3-none-any.whl",
                         "sha256": hashlib.sha256(artifact).hexdigest(), "length": len(artifact)}}


def listings(count: int, namespaces: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [manifest(rng, f"pub{i % namespaces:04d}", f"pkg{i:05d}") for i in range(count)]


def bulk_repository(folder: Path, manifests: list[dict]):
    """A store repository (and its listings database) holding `manifests`, each namespace with its own key."""
    from datetime import datetime, timedelta, timezone

    from tuf.api.metadata import DelegatedRole, Metadata, MetaFile, TargetFile, Targets

    from plugdeck.store import keys
    from plugdeck.store.layout import artifact_path, bin_of, bin_role, manifest_path, namespace_paths
    from plugdeck.store.manifest import parse_manifest
    from plugdeck.store.repo import Repository, _serializer, _write
    from plugdeck.store.service import Listings

    repo = Repository.create(folder)
    db = Listings(folder / "registry.db")
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    by_namespace: dict[str, list] = {}
    for raw in manifests:
        by_namespace.setdefault(raw["name"].partition("/")[0], []).append(parse_manifest(raw))
    bins: dict[str, Metadata] = {}
    for namespace, items in by_namespace.items():
        signer = keys.generate(folder / "publishers" / f"{namespace}.pem")
        db.add_namespace(namespace, signer.public_key.to_dict())
        md = Metadata(Targets(version=1, expires=expires))
        for m in items:
            for path, data in ((manifest_path(m.name, m.version), m.to_bytes()),
                               (artifact_path(m.name, m.version, m.artifact.file), m.name.encode())):
                target = TargetFile.from_data(path, data, ["sha256"])
                md.signed.targets[path] = target
                directory, _, base = path.rpartition("/")
                _write(repo.targets_dir / directory / f"{target.hashes['sha256']}.{base}", data)
            db.add_version(m, {"schema": "ok", "scanner": [], "blocking": []})
        md.sign(signer)
        _write(repo.metadata_dir / f"1.{namespace}.json", md.to_bytes(_serializer()))
        repo.snapshot.signed.meta[f"{namespace}.json"] = MetaFile(1)
        name = bin_role(bin_of(namespace))
        bin_md = bins.setdefault(name, repo.role(name))
        bin_md.signed.delegations.keys[signer.public_key.keyid] = signer.public_key
        bin_md.signed.delegations.roles[namespace] = DelegatedRole(namespace, [signer.public_key.keyid], 1, True,
                                                                   paths=namespace_paths(namespace))
    for name, bin_md in bins.items():
        bin_md.signed.version += 1
        bin_md.signatures.clear()
        bin_md.sign(repo.online)
        _write(repo.metadata_dir / f"{bin_md.signed.version}.{name}.json", bin_md.to_bytes(_serializer()))
        repo.snapshot.signed.meta[f"{name}.json"] = MetaFile(bin_md.signed.version)
    repo._new_snapshot()
    return repo, db
