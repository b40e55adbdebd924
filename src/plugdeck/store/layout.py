"""Where a package's files sit in the store's TUF repository.

Target paths are `BIN/NAMESPACE/PACKAGE/VERSION/FILE`, BIN being the first two hex digits of the
namespace's sha256. The top-level targets role delegates each of the 256 bins to a bin role (online
key); a bin role delegates each of its namespaces to that publisher's key, for `BIN/NAMESPACE/*` only.
So a client looking up one package reads one bin and one namespace, whatever the store's size.
"""

from __future__ import annotations

import hashlib

from .manifest import MANIFEST_FILE

BIN_DIGITS = 2  # 256 bins: at 10,000 namespaces a bin delegates about 40


def bin_of(namespace: str) -> str:
    return hashlib.sha256(namespace.encode()).hexdigest()[:BIN_DIGITS]


def bin_role(bin_prefix: str) -> str:
    return f"bins-{bin_prefix}"


def all_bins() -> list[str]:
    return [f"{i:0{BIN_DIGITS}x}" for i in range(16 ** BIN_DIGITS)]


def namespace_paths(namespace: str) -> list[str]:
    """The paths the namespace's role may sign for, and no others (TUF's patterns match one path
    component per `*`: PACKAGE/VERSION/FILE)."""
    return [f"{bin_of(namespace)}/{namespace}/*/*/*"]


def bin_paths(bin_prefix: str) -> list[str]:
    return [f"{bin_prefix}/*/*/*/*"]


def version_dir(name: str, version: str) -> str:
    namespace, _, package = name.partition("/")
    return f"{bin_of(namespace)}/{namespace}/{package}/{version}"


def manifest_path(name: str, version: str) -> str:
    return f"{version_dir(name, version)}/{MANIFEST_FILE}"


def artifact_path(name: str, version: str, file: str) -> str:
    return f"{version_dir(name, version)}/{file}"


REVOKED_FILE = "revoked.json"


def revoked_path(name: str, version: str) -> str:
    """A version's revocation: signed by its publisher (in the namespace) or by the store (in the bin)."""
    return f"{version_dir(name, version)}/{REVOKED_FILE}"
