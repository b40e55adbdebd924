"""What the model needs to write SQL: the tables, and per table its columns, types, keys, foreign
keys and a few sample values. Each dialect reads its own catalog, through the same read-only
connections as the model's queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .connect import Database, DatabaseError
from .format import format_value

SAMPLE_ROWS = 5
SAMPLE_VALUES = 3  # distinct values shown per column
SAMPLE_WIDTH = 40  # characters of one sample value


@dataclass(frozen=True)
class Table:
    schema: str | None  # None where the database has one namespace (SQLite, MySQL's current database)
    name: str
    kind: str  # "table" or "view"

    @property
    def shown(self) -> str:
        return self.name if self.schema in (None, "public") else f"{self.schema}.{self.name}"


@dataclass
class Column:
    name: str
    type: str
    not_null: bool
    primary_key: bool
    references: str | None = None  # "Table.column" for a foreign key
    samples: list[str] = field(default_factory=list)

    def render(self) -> str:
        traits = [self.type or "untyped"]
        if self.not_null:
            traits.append("not null")
        if self.primary_key:
            traits.append("primary key")
        if self.references:
            traits.append(f"references {self.references}")
        examples = f"; e.g. {', '.join(self.samples)}" if self.samples else ""
        return f"- {self.name}: {', '.join(traits)}{examples}"


def list_tables(db: Database) -> list[Table]:
    sql = {
        "sqlite": "SELECT NULL, name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                  "AND substr(name, 1, 7) <> 'sqlite_'",
        "postgres": "SELECT n.nspname, c.relname, CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> 'information_schema' "
                    "AND left(n.nspname, 3) <> 'pg_' AND has_table_privilege(c.oid, 'SELECT')",
        "mysql": "SELECT NULL, table_name, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END "
                 "FROM information_schema.tables WHERE table_schema = DATABASE()",
    }[db.dialect]
    tables = [Table(schema, name, kind) for schema, name, kind in db.query(sql, max_rows=100_000).rows]
    return sorted(tables, key=lambda t: t.shown)  # the same order whatever the database's collation


def find_table(tables: list[Table], requested: str) -> Table:
    """The table the model meant: exact name first, then ignoring case or the schema."""
    wanted = requested.strip().strip('"`[]')
    for match in (lambda t: t.shown == wanted, lambda t: t.shown.lower() == wanted.lower(),
                  lambda t: t.name.lower() == wanted.lower()):
        found = [t for t in tables if match(t)]
        if len(found) == 1:
            return found[0]
    known = ", ".join(t.shown for t in tables) or "none"
    raise DatabaseError(f"there is no table named {requested!r}; the tables are: {known}", "unknown_table")


def describe(db: Database, table: Table) -> list[Column]:
    columns = _READERS[db.dialect](db, table)
    try:
        sample = db.query(f"SELECT * FROM {quote(db, table)}", max_rows=SAMPLE_ROWS)
    except DatabaseError:
        return columns  # a view too slow to sample still has its columns described
    for index, column in enumerate(sample.columns):
        if index < len(columns):
            columns[index].samples = _samples(row[index] for row in sample.rows)
    return columns


def render_table(table: Table, columns: list[Column]) -> str:
    lines = [f"{table.kind} {table.shown} ({len(columns)} columns)"]
    lines += [column.render() for column in columns]
    return "\n".join(lines)


def quote(db: Database, table: Table) -> str:
    mark = "`" if db.dialect == "mysql" else '"'
    parts = [table.schema, table.name] if table.schema else [table.name]
    return ".".join(mark + part.replace(mark, mark * 2) + mark for part in parts)


def _samples(values) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value is None:
            continue
        text = format_value(value).replace("\n", " ")
        text = text if len(text) <= SAMPLE_WIDTH else text[: SAMPLE_WIDTH - 1] + "…"
        if text not in seen:
            seen.append(text)
        if len(seen) == SAMPLE_VALUES:
            break
    return seen


def _sqlite_columns(db: Database, table: Table) -> list[Column]:
    name = quote(db, table)
    info = db.query(f"PRAGMA table_info({name})", max_rows=10_000).rows
    keys = {row[3]: f"{row[2]}.{row[4]}" if row[4] else row[2] for row in
            db.query(f"PRAGMA foreign_key_list({name})", max_rows=10_000).rows}
    return [Column(row[1], row[2], bool(row[3]), row[5] > 0, keys.get(row[1])) for row in info]


def _postgres_columns(db: Database, table: Table) -> list[Column]:
    relation = quote(db, table)
    info = db.query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "EXISTS (SELECT 1 FROM pg_constraint p WHERE p.conrelid = a.attrelid AND p.contype = 'p' "
        "AND a.attnum = ANY (p.conkey)) "
        "FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (relation,), max_rows=10_000).rows
    keys = dict(db.query(
        "SELECT a.attname, c.confrelid::regclass::text || '.' || fa.attname FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(attnum, fattnum) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fattnum "
        "WHERE c.conrelid = %s::regclass AND c.contype = 'f'", (relation,), max_rows=10_000).rows)
    return [Column(name, type_, not_null, primary, keys.get(name)) for name, type_, not_null, primary in info]


def _mysql_columns(db: Database, table: Table) -> list[Column]:
    info = db.query(
        "SELECT column_name, column_type, is_nullable = 'NO', column_key = 'PRI' FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position", (table.name,),
        max_rows=10_000).rows
    keys = {column: f"{ref_table}.{ref_column}" for column, ref_table, ref_column in db.query(
        "SELECT column_name, referenced_table_name, referenced_column_name FROM information_schema.key_column_usage "
        "WHERE table_schema = DATABASE() AND table_name = %s AND referenced_table_name IS NOT NULL",
        (table.name,), max_rows=10_000).rows}
    return [Column(name, type_, bool(not_null), bool(primary), keys.get(name))
            for name, type_, not_null, primary in info]


_READERS = {"sqlite": _sqlite_columns, "postgres": _postgres_columns, "mysql": _mysql_columns}
