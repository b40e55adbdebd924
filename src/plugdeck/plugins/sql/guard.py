"""Layer 1 of the read-only defence: refuse any SQL that is not one plain read query.

sqlglot parses the query in the database's own dialect and the whole tree is walked: exactly one
statement, a query at its root, no statement hidden inside it (a data-modifying CTE, SELECT INTO,
a locking clause) and only functions from an allowlist (so no pg_sleep, set_config,
load_extension, lo_export, pg_read_file, SLEEP, LOAD_FILE, ...). Whatever sqlglot cannot parse
is refused: failing closed is the point. sqlglot reports the root type `Select` for
`WITH d AS (DELETE ...) SELECT ...` and for `SELECT pg_sleep(100)`, so checking the root alone
would not do.

Functions that build a value of a size the query chooses (repeat, lpad/rpad, printf/format widths)
are allowed only with a literal size of at most MAX_BUILT_LENGTH: one such call can run for many
seconds inside the database without ever reaching a point where the deadline is checked. Functions
that read or write server files (LOAD_FILE, pg_read_file, lo_export, ...) and INTO OUTFILE/DUMPFILE
are named in their refusals, though the allowlist would refuse them anyway.

The database enforces read-only on its own as well (layer 2, see connect.py); either layer
alone must hold.
"""

from __future__ import annotations

import logging
import re

from ...errors import UserError

# sqlglot logs a warning when it falls back to an opaque Command; we refuse those anyway, and a
# library must not print to stderr on its own.
logging.getLogger("sqlglot").addHandler(logging.NullHandler())

# sqlglot's dialect for each SQLAlchemy backend name.
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "mariadb": "mysql"}

# Statement kinds that must not appear anywhere in the tree (sqlglot class names).
FORBIDDEN_NODES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable", "Command", "Pragma",
    "Attach", "Detach", "Copy", "Into", "Lock", "Set", "Use", "Transaction", "Commit", "Rollback", "Analyze",
    "LoadData", "Kill", "Grant", "Revoke", "Cache", "Uncache", "Refresh", "Export", "Install", "Comment",
)

# Functions a read query may call, by sqlglot's key for the function (its class name in lower
# case, which is the same in every dialect) or, for functions sqlglot does not model, by their
# SQL name. Pure computations only: aggregates, windows, numbers, text, dates, JSON values, and
# the operators sqlglot models as functions (AND, EXISTS, COLLATE, JSON and array operators).
SAFE_FUNCTIONS = frozenset("""
and or xor exists collate regexpilike regexpfullmatch arraycontains arraycontainsall arraycontainedby
arrayoverlaps arrayposition jsonarraycontains jsonbcontains jsonbcontainsalltopkeys jsonbcontainstopkey
jsonbcontainsanytopkeys jsonbpathexists jsonbextract jsonbextractscalar
count sum avg min max total groupconcat arrayagg stringagg stddev stddevpop stddevsamp variance variancepop
corr covarpop covarsamp regrslope regrintercept percentilecont percentiledisc mode median bitwiseandagg
bitwiseoragg logicaland logicalor every anyvalue approxdistinct countif jsonarrayagg jsonobjectagg
rownumber rank denserank percentrank cumedist ntile lag lead firstvalue lastvalue nthvalue
abs sign round trunc floor ceil sqrt cbrt pow exp ln log log2 log10 mod pi degrees radians greatest least
rand random widthbucket div
case if coalesce nullif cast trycast
lower upper initcap length bitlength octetlength substring left right trim pad concat concatws replace
reverse repeat strposition splitpart stringtoarray regexplike regexpreplace regexpextract md5 chr
unicode hex quote format printf typeof field elt mid locate instr
currentdate currenttime currenttimestamp localtimestamp now sysdate utctimestamp clock_timestamp
statement_timestamp transaction_timestamp
date time datetime timestamp julianday unixepoch strftime timetostr strtotime strtodate tsordstodate
tsordstotimestamp unixtotime unix_timestamp timestamptrunc datetrunc extract datepart dateadd datesub
datediff timestampdiff timestampadd timestampsub age lastday year quarter month week weekofyear day
dayofweek dayofmonth dayofyear dayname monthname hour minute second weekday yearweek makedate make_date
tonumber numbertostr todays
json jsonextract jsonextractscalar json_array_length jsonb_build_object json_build_object jsonobject
jsonarray arraysize explode explodinggenerateseries generateseries unnest
""".split())


# Never allowed, named so the refusal says why: they read or write files on the database server.
FILE_FUNCTIONS = frozenset("""
load_file pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_file_write lo_import lo_export lo_from_bytea
lo_put pg_ls_logdir pg_ls_waldir pg_ls_tmpdir readfile writefile edit load_extension
""".split())

MAX_BUILT_LENGTH = 10_000  # characters a repeat/pad/printf width may ask for
_SIZE_ARGUMENT = {"repeat": "times", "pad": "expression"}  # sqlglot's name for the size argument
_FORMAT_SPEC = re.compile(r"%[^a-zA-Z%]*")
_INTO_FILE = re.compile(r"\bINTO\s+(OUTFILE|DUMPFILE)\b|\bLOAD\s+(DATA|XML)\b", re.IGNORECASE)


class QueryRefused(UserError, ValueError):
    """The query is not one plain read query; the message says what to change."""


def check_read_query(sql: str, dialect: str) -> None:
    """Raise QueryRefused unless `sql` is exactly one read query using only allowed functions."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    if dialect == "mysql" and re.search(r"/\*M?!", sql):
        # MySQL and MariaDB run the text of /*! ... */ comments; the parser sees only a comment.
        raise QueryRefused("executable comments (/*! ... */) are not allowed; write the SQL out plainly")
    if dialect == "mysql" and _INTO_FILE.search(sql):
        found = " ".join(_INTO_FILE.search(sql).group(0).upper().split())
        raise QueryRefused(f"{found} reads or writes files on the database server and is never allowed; "
                           "plugdeck only returns rows")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryRefused(f"the query could not be parsed as {_DIALECT_NAMES[dialect]} ({first_line}); "
                           "only one plain SELECT is accepted, so simplify it") from None
    if not statements:
        raise QueryRefused("the query is empty; send one SELECT statement")
    if len(statements) > 1:
        raise QueryRefused(f"only one statement is allowed, this has {len(statements)}; send one SELECT")
    root = statements[0]
    if not isinstance(root, exp.Query):
        raise QueryRefused("only read queries (SELECT, WITH ... SELECT, UNION) are allowed, "
                           f"not {_statement_name(root)}")
    forbidden = tuple(getattr(exp, name) for name in FORBIDDEN_NODES if hasattr(exp, name))
    for node in root.walk():
        if isinstance(node, forbidden):
            raise QueryRefused(f"{_statement_name(node)} is not allowed inside a read query; "
                               "the database may only be read")
        if isinstance(node, (exp.SessionParameter, exp.Parameter)):
            raise QueryRefused(f"server and session variables ({node.sql(dialect=dialect)}) are not allowed; "
                               "write the values into the query")
        if isinstance(node, exp.Select) and node.args.get("locks"):
            raise QueryRefused("locking clauses (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) are not allowed")
        if isinstance(node, exp.Func):
            _check_function(node, exp)


def _check_function(node, exp) -> None:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else node.key
    shown = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    if isinstance(node.parent, exp.Dot) and node.parent.expression is node:
        raise QueryRefused(f"schema-qualified function calls ({node.parent.sql()}) are not allowed; "
                           "use the plain built-in function")
    if name in FILE_FUNCTIONS:
        raise QueryRefused(f"the function {shown} reads or writes files on the database server and is never "
                           "allowed; plugdeck only returns rows")
    if name not in SAFE_FUNCTIONS:
        raise QueryRefused(f"the function {shown} is not allowed; only common aggregate, window, number, "
                           "text, date and JSON functions are, so rewrite the query without it")
    if name in _SIZE_ARGUMENT:
        _check_size(node.args.get(_SIZE_ARGUMENT[name]), shown, exp)
    elif name in ("printf", "format"):
        _check_format(node, shown, exp)


def _check_size(size, shown: str, exp) -> None:
    """A value built to a size the query chooses: only a small, literal size."""
    if not (isinstance(size, exp.Literal) and not size.is_string and size.this.isdigit()):
        raise QueryRefused(f"{shown} needs a plain number as its length (at most {MAX_BUILT_LENGTH:,}), not "
                           f"{size.sql() if size is not None else 'nothing'}; it would build a value of any size")
    if int(size.this) > MAX_BUILT_LENGTH:
        raise QueryRefused(f"{shown} with a length of {int(size.this):,} is not allowed (at most "
                           f"{MAX_BUILT_LENGTH:,}): it builds a huge value that no deadline can interrupt")


def _check_format(node, shown: str, exp) -> None:
    """printf/format: a literal format string whose widths and precisions are small numbers."""
    template = node.this if isinstance(node, exp.Format) else (node.expressions or [None])[0]
    if not (isinstance(template, exp.Literal) and template.is_string):
        raise QueryRefused(f"{shown} needs a literal format string; a computed one could ask for any width")
    for spec in _FORMAT_SPEC.findall(template.this):
        if "*" in spec:
            raise QueryRefused(f"{shown} with a width or precision taken from an argument ({spec}…) is not "
                               f"allowed; write the number into the format (at most {MAX_BUILT_LENGTH:,})")
        if any(int(number) > MAX_BUILT_LENGTH for number in re.findall(r"\d+", spec)):
            raise QueryRefused(f"{shown} with the width {spec}… is not allowed (at most {MAX_BUILT_LENGTH:,}): it "
                               "builds a huge value that no deadline can interrupt")


def _statement_name(node) -> str:
    if type(node).__name__ == "Command":
        return str(node.this).upper() or "this command"
    return type(node).__name__.upper()


_DIALECT_NAMES = {"sqlite": "SQLite SQL", "postgres": "PostgreSQL SQL", "mysql": "MySQL/MariaDB SQL"}
