"""The PostgreSQL server the run store tests use: 127.0.0.1:5432, trust auth, user postgres."""

from __future__ import annotations

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def admin():
    """A connection to the server's `test` database, for creating and dropping test databases."""
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); the run store tests need it running",
                    pytrace=False)
