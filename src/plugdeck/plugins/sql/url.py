"""Database URLs in SQLAlchemy's form, read with the standard library (building a plugin on every
run should not import SQLAlchemy):

    sqlite:///relative/file.db   sqlite:////absolute/file.db
    postgresql://user@host:5432/dbname?sslmode=require   (postgres://, postgresql+psycopg:// too)
    mysql://user@host:3306/dbname   mariadb://user@host/dbname   (mysql+pymysql:// too)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ...errors import UserError

BACKENDS = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql",
            "mariadb": "mysql"}
EXAMPLES = "sqlite:///path/to/file.db, postgresql://user@host:5432/dbname or mysql://user@host:3306/dbname"


class BadURL(UserError, ValueError):
    pass


@dataclass(frozen=True)
class DatabaseURL:
    scheme: str  # as written, e.g. "postgresql+psycopg"
    backend: str  # "sqlite", "postgresql" or "mysql"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None  # for SQLite, the file's path
    options: dict[str, str] = field(default_factory=dict)  # the query string: driver options

    def label(self) -> str:
        """The URL for messages: never the password."""
        if self.backend == "sqlite":
            return f"{self.scheme}:///{self.database}"
        login = (self.user or "") + (":***" if self.password is not None else "")
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "")
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{login + '@' if login else ''}{host}{port}/{self.database or ''}"


def parse_url(url: str) -> DatabaseURL:
    """Split a database URL; BadURL (whose message never repeats the URL) when it is not one."""
    if "://" not in url:
        raise BadURL(f"this is not a database URL; write it like {EXAMPLES}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    backend = BACKENDS.get(scheme.split("+")[0])
    if backend is None:
        raise BadURL(f"plugdeck reads SQLite, PostgreSQL and MySQL/MariaDB databases, not {scheme.split('+')[0]!r}; "
                     "the URL should start with sqlite://, postgresql://, mysql:// or mariadb://")
    try:
        port = parts.port
    except ValueError:
        raise BadURL("the port in the database URL is not a number from 0 to 65535") from None
    if backend == "sqlite":
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if parts.netloc or not path or path == ":memory:":
            raise BadURL("a SQLite URL names a file: sqlite:///relative/path.db or sqlite:////absolute/path.db")
        return DatabaseURL(scheme, backend, database=path)
    return DatabaseURL(
        scheme, backend, host=parts.hostname, port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=unquote(parts.path.lstrip("/")) or None,
        options=dict(parse_qsl(parts.query)),
    )
