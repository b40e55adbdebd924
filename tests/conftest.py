import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cli_env import cli_environment  # noqa: E402


@pytest.fixture
def cli_env(tmp_path):
    """The environment for running `plugdeck` in a subprocess: its own home, nothing from this shell's."""
    return cli_environment(tmp_path)
