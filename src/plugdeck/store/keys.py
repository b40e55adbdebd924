"""Ed25519 keys on disk for the store: a publisher's namespace key, a registry's root, targets and
online keys. Signing and verifying are python-tuf's and securesystemslib's; this module only keeps
the private key in a PEM file that only its owner can read."""

from __future__ import annotations

from ..errors import UserError

import os
import re
from pathlib import Path

KEY_NAME = r"[a-z][a-z0-9-]{0,38}"


class StoreKeyError(UserError, ValueError):
    """A key that is missing, unreadable or named wrongly."""


def key_path(folder: Path, name: str) -> Path:
    if not re.fullmatch(KEY_NAME, name):
        raise StoreKeyError(f"key name {name!r}: use lowercase letters, digits and '-' (a namespace name)")
    return Path(folder) / f"{name}.pem"


def generate(path: Path, *, overwrite: bool = False):
    """A new Ed25519 signer, its private key written to `path` (mode 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner

    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreKeyError(f"{path} already exists; a key is not replaced silently (remove it first)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return CryptoSigner(private)


def load(path: Path):
    """The signer whose private key is in `path`."""
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import CryptoSigner

    path = Path(path)
    if not path.exists():
        raise StoreKeyError(f"no key at {path} (make one with: plugdeck store keygen NAME)")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise StoreKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    return CryptoSigner(private)


def public_dict(signer) -> dict:
    """The public key as TUF writes it in metadata (keytype, scheme, keyval)."""
    return signer.public_key.to_dict()


def public_key_from_dict(data: dict) -> "SSlibKey":  # noqa: F821
    """A publisher's Ed25519 public key as sent to the store. The key id is computed here, never taken
    from the sender: a chosen id could collide with another namespace's key in the same bin."""
    from securesystemslib.signer import SSlibKey
    from securesystemslib.signer._utils import compute_default_keyid

    try:
        keytype, scheme, keyval = data["keytype"], data["scheme"], data["keyval"]
        if keytype != "ed25519" or scheme != "ed25519" or set(keyval) != {"public"}:
            raise ValueError("publisher keys must be ed25519")
        return SSlibKey(compute_default_keyid(keytype, scheme, keyval), keytype, scheme, dict(keyval))
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreKeyError(f"the public key cannot be used: {exc}") from None
