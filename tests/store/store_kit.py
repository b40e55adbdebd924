"""Helpers for the store tests: a real registry under uvicorn on a free loopback port (in a thread),
and a small plugin project to publish."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from app_thread import AppThread

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]

WEATHER = '''"""The weather plugin."""

from plugdeck import Plugin, tool


@tool
def forecast(city: str) -> str:
    """Tomorrow's forecast for a city.

    Args:
        city: The city's name.
    """
    return f"Sunny in {city}, 21 C"


plugin = Plugin(name="weather", version="0.1.0", description="Weather forecasts.", tools=[forecast])
'''

PERMISSIONS = '''
[tool.plugdeck.permissions]
network = ["api.weather.example"]
secrets = ["WEATHER_KEY"]
'''


def plugdeck(env, *args, timeout=120, input=None):
    return subprocess.run([*PLUGDECK, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def weather_project(parent: Path, module: str = WEATHER) -> Path:
    """A `plugdeck plugins new weather` project whose tool is forecast(city)."""
    from plugdeck.plugins.scaffold import scaffold

    folder = scaffold("weather", parent)
    (folder / "plugdeck_weather" / "__init__.py").write_text(module, encoding="utf-8")
    with open(folder / "pyproject.toml", "a", encoding="utf-8") as out:
        out.write(PERMISSIONS)
    return folder


class RegistryThread(AppThread):
    """`plugdeck store serve`'s app on a free port of 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, folder: Path, **options):
        from plugdeck.store.service import create_app

        super().__init__(create_app(folder, **options))
        self.repo = self.app.state.repo

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        close = getattr(self.app.state.listings, "close", None)
        if close is not None:  # a PostgreSQL index's connections
            close()


PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_schema():
    """A registry database URL on the test PostgreSQL (127.0.0.1:5432, trust auth, db `test`) that sees
    only a fresh schema of its own; dropped afterwards."""
    import uuid

    import psycopg
    import pytest

    schema = f"store_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER} ({exc}); the store's PostgreSQL tests need it",
                    pytrace=False)
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
