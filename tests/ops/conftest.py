"""Run stores for the ops tests: a SQLite file in tmp_path, or a PostgreSQL database made for the
test on the real server (127.0.0.1:5432, user postgres) and dropped afterwards."""

from __future__ import annotations

import secrets

import pytest
from runstore_pg import admin


@pytest.fixture
def pg_url():
    name = f"plugdeck_runtest_{secrets.token_hex(4)}"
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_target(request, tmp_path):
    """Where a RunStore keeps runs: the same tests run on both databases."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def env(cli_env):
    """The shared CLI environment (tests/cli_env.py), under the name the ops tests use."""
    return cli_env
