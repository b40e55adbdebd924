import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cli_env import cli_environment  # noqa: E402


@pytest.fixture
def cli_env(tmp_path):
    """The environment for running `plugdeck` in a subprocess: its own home, nothing from this shell's."""
    return cli_environment(tmp_path)


@pytest.fixture
def keyring_backend():
    """A fresh in-memory keyring for this test (never the user's own); skipped without `keyring`."""
    pytest.importorskip("keyring")
    from memory_keyring import MemoryKeyring, use_keyring

    with use_keyring(MemoryKeyring()) as ring:
        yield ring
