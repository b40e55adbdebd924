"""The registry's TUF repository on its own: renewal of what expires, and a new repository's shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("tuf")

from plugdeck.store.layout import all_bins, bin_role  # noqa: E402
from plugdeck.store.repo import EXPIRY, Repository, TrustError, _serializer, _write  # noqa: E402


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def test_a_new_repository_delegates_every_bin_and_is_found_again(tmp_path):
    repo = Repository.create(tmp_path / "r")
    targets = repo.role("targets")
    assert len(targets.signed.delegations.roles) == len(all_bins()) == 256
    for name in (bin_role("00"), bin_role("ff")):
        md = repo.role(name)
        targets.signed.verify_delegate(name, md.signed_bytes, md.signatures)  # signed by the online key
    again = Repository(tmp_path / "r")
    assert again.timestamp.signed.version == repo.timestamp.signed.version
    with pytest.raises(TrustError, match="already holds a store repository"):
        Repository.create(tmp_path / "r")
    with pytest.raises(TrustError, match="holds no store repository"):
        Repository(tmp_path / "empty")


def test_renewal_signs_anew_only_what_is_due(tmp_path):
    repo = Repository.create(tmp_path / "r")
    assert repo.renew_if_due() is False
    before = repo.timestamp.signed.version
    repo.renew_timestamp(expires=now() + timedelta(hours=1))
    assert repo.renew_if_due() is True
    assert repo.timestamp.signed.version == before + 2
    assert repo.timestamp.signed.expires - now() > EXPIRY["timestamp"] / 2

    name = bin_role("7f")
    md = repo.role(name)
    md.signed.version += 1
    md.signed.expires = now() + timedelta(days=2)
    md.signatures.clear()
    md.sign(repo.online)
    _write(repo.metadata_dir / f"{md.signed.version}.{name}.json", md.to_bytes(_serializer()))
    from tuf.api.metadata import MetaFile

    repo.snapshot.signed.meta[f"{name}.json"] = MetaFile(md.signed.version)
    snapshot = repo.snapshot.signed.version
    assert repo.renew_if_due() is True
    renewed = repo.role(name)
    assert renewed.signed.version == md.signed.version + 1
    assert renewed.signed.expires - now() > EXPIRY["bins"] / 2
    assert repo.snapshot.signed.version == snapshot + 1
    assert repo.role(bin_role("80")).signed.version == 1  # the others were not due
