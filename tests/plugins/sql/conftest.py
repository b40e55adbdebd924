"""Real databases for the SQL plugin tests: a copy of Chinook, and a PostgreSQL and a MariaDB
database created for the session (with a login that can only read) and dropped afterwards.

Each database can be checksummed (every table's definition and sorted rows, plus the accounts
and other server state an attack might change), so a test can prove that nothing was written.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from shared_fixtures import FIXTURES
from sql_shop_data import SHOP_TABLES, insert_shop

CHINOOK = FIXTURES / "sql" / "chinook" / "Chinook_Sqlite.sqlite"
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
MARIA_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}


def _digest(parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()


# ---- SQLite: Chinook ----------------------------------------------------------------------------


@dataclass
class SQLiteCopy:
    path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def state(self) -> tuple[str, list[str]]:
        """The file's hash and the folder's listing: a write changes the first, a new file the second."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest(), sorted(p.name for p in self.path.parent.iterdir())


@pytest.fixture
def chinook(tmp_path) -> SQLiteCopy:
    folder = tmp_path / "chinook"
    folder.mkdir()
    target = folder / "chinook.db"
    shutil.copyfile(CHINOOK, target)  # the shared fixture is read-only; tests get their own copy
    return SQLiteCopy(target)


# ---- PostgreSQL -----------------------------------------------------------------------------------


# The reader accounts other test sessions make and drop meanwhile (pytest-xdist workers, another checkout's
# run): server-wide state that the checksums leave out, or tests running beside these would seem to attack.
OTHER_READERS = "plugdeck\\_sqltest\\_ro\\_%"


@dataclass
class PostgresServerDB:
    name: str
    reader: str  # a login role that can only read
    token: str  # unique per session, for file names attacks try to create
    reader_password = None  # the server trusts local logins

    def url(self, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:5432/{self.name}"

    def admin(self):
        import psycopg

        return psycopg.connect(**{**PG_ADMIN, "dbname": self.name}, autocommit=True)

    def checksum(self) -> str:
        with self.admin() as conn:
            columns = conn.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, ordinal_position"
            ).fetchall()
            parts: list = [columns]
            for schema, table in sorted({(c[0], c[1]) for c in columns}):
                rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                parts.append(sorted(map(repr, rows)))
            parts.append(conn.execute("SELECT rolname FROM pg_roles WHERE rolname NOT LIKE %s OR rolname = %s "
                                      "ORDER BY 1", (OTHER_READERS, self.reader)).fetchall())
            parts.append(conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchall())
            parts.append(conn.execute("SELECT last_value, is_called FROM invoice_numbers").fetchall())
            parts.append(conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall())
        return _digest(parts)

    def server_file_exists(self, path: str) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT pg_stat_file(%s, true) IS NOT NULL", (path,)).fetchone()[0]


@pytest.fixture(scope="session")
def postgres_db():
    try:
        import psycopg

        admin = psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=5)
    except Exception as exc:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({exc}); the SQL plugin "
                    "tests need it running (CI starts it)", pytrace=False)
    token = secrets.token_hex(4)
    db = PostgresServerDB(f"plugdeck_sqltest_{token}", f"plugdeck_sqltest_ro_{token}", token)
    admin.execute(f"CREATE DATABASE {db.name}")
    admin.execute(f"CREATE ROLE {db.reader} LOGIN")
    try:
        with db.admin() as conn:
            for statement in SHOP_TABLES["postgres"]:
                conn.execute(statement)
            insert_shop(lambda sql, rows: conn.cursor().executemany(sql, rows))
            conn.execute(f"GRANT CONNECT ON DATABASE {db.name} TO {db.reader}")
            conn.execute(f"GRANT USAGE ON SCHEMA public, audit TO {db.reader}")
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public, audit TO {db.reader}")
        yield db
    finally:
        _drop_when_free(admin, db.name)
        admin.execute(f"DROP ROLE IF EXISTS {db.reader}")
        admin.close()


def _drop_when_free(admin, name: str) -> None:
    """Drop the database; a backend still inside one long function call (a query whose connection the
    watchdog cut) cannot be terminated until that call returns, so wait for it."""
    import time

    import psycopg

    deadline = time.monotonic() + 120
    while True:
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# ---- MariaDB -------------------------------------------------------------------------------------


@dataclass
class MariaServerDB:
    name: str
    reader: str  # an account with SELECT on this database only
    token: str
    reader_password: str

    def url(self, user: str = "root") -> str:
        return f"mysql://{user}@127.0.0.1:3306/{self.name}"

    def admin(self):
        import pymysql

        return pymysql.connect(**{**MARIA_ADMIN, "database": self.name}, autocommit=True)

    def checksum(self) -> str:
        conn = self.admin()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT table_name, column_name, column_type FROM information_schema.columns "
                               "WHERE table_schema = DATABASE() ORDER BY 1, ordinal_position")
                columns = cursor.fetchall()
                parts: list = [columns]
                for table in sorted({c[0] for c in columns}):
                    cursor.execute(f"SELECT * FROM `{table}`")
                    parts.append(sorted(map(repr, cursor.fetchall())))
                cursor.execute("SELECT user, host FROM mysql.user WHERE user NOT LIKE %s OR user = %s ORDER BY 1, 2",
                               (OTHER_READERS, self.reader))
                parts.append(cursor.fetchall())
                cursor.execute("SELECT @@global.max_connections, @@global.general_log, @@global.read_only, "
                               "@@global.max_statement_time")
                parts.append(cursor.fetchall())
        finally:
            conn.close()
        return _digest(parts)

    def server_file_exists(self, path: str) -> bool:
        """LOAD_FILE as root reads any file the server can; a file the server wrote is always readable."""
        conn = self.admin()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT LOAD_FILE(%s) IS NOT NULL", (path,))
                return bool(cursor.fetchone()[0]) or Path(path).exists()
        finally:
            conn.close()


@pytest.fixture(scope="session")
def mariadb_db():
    try:
        import pymysql

        admin = pymysql.connect(**MARIA_ADMIN, autocommit=True, connect_timeout=5)
    except Exception as exc:
        pytest.fail(f"MariaDB is not reachable at 127.0.0.1:3306 as root with an empty password ({exc}); the SQL "
                    "plugin tests need it running (CI starts it)", pytrace=False)
    token = secrets.token_hex(4)
    db = MariaServerDB(f"plugdeck_sqltest_{token}", f"plugdeck_sqltest_ro_{token}", token, secrets.token_hex(8))
    cursor = admin.cursor()
    cursor.execute(f"CREATE DATABASE {db.name} CHARACTER SET utf8mb4")
    cursor.execute(f"CREATE USER '{db.reader}'@'%' IDENTIFIED BY '{db.reader_password}'")
    try:
        conn = db.admin()
        with conn.cursor() as setup:
            for statement in SHOP_TABLES["mysql"]:
                setup.execute(statement)
            insert_shop(setup.executemany)
        conn.close()
        cursor.execute(f"GRANT SELECT, SHOW VIEW ON {db.name}.* TO '{db.reader}'@'%'")
        yield db
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {db.name}")
        cursor.execute(f"DROP USER IF EXISTS '{db.reader}'@'%'")
        admin.close()


# ---- reading results ------------------------------------------------------------------------------


def _rows_of(text: str) -> list[list[str]]:
    """The data rows of a run_query result: between the header and the count line, split into cells."""
    lines = text.splitlines()
    assert lines[-1].startswith("("), text  # the count line is always last
    return [line.split(" | ") for line in lines[1:-1]]


@pytest.fixture
def rows_of():
    return _rows_of
