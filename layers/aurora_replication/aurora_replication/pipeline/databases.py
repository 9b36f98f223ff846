"""Several source databases of one server in one request (``databases``, ``database_mapping``): which
databases a request names, where each one's tables go in Snowflake, and the run each one is copied in.

A request naming several databases is one run per database (``child_run_id``), each with the scope its
database maps to (``scope_for``), so that every piece after planning (chunks, leases, watermarks, the
finaliser, the catalog, cost and the report) is per source database and table as it is for one database.
Everything here is checked before anything is written: a database that does not exist, a pattern that
matches none, two tables that would land on one Snowflake name (docs/run-requests.md#several-databases).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any

from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import MAX_IDENTIFIER_LENGTH, target_name
from aurora_replication.ledger.keys import Scope
from aurora_replication.models import RUN_ID_PATTERN
from aurora_replication.source.statements import query

# the server's own schemas: never replicated, never matched by a pattern
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})
# what separates a database's name from a table's in a prefixed target name (``shop_eu__orders``): two
# underscores, which a name of either side rarely holds, so that ``a_b``.``c`` and ``a``.``b_c`` differ
PREFIX_SEPARATOR = "__"


def is_pattern(name: str) -> bool:
    return "*" in name or "?" in name


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*``: any run of characters (none included); ``?``: one character; everything else itself (exact
    case, as MySQL on Linux names databases). No other character is special."""
    parts = ("." if ch == "?" else ".*" if ch == "*" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def list_databases(conn: Any) -> list[str]:
    """The server's databases the user can see, but its own schemas."""
    rows = query(conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME", [])
    return [str(r[0]) for r in rows if str(r[0]).lower() not in SYSTEM_DATABASES]


def match_databases(requested: list[str], available: list[str]) -> list[str]:
    """The databases ``requested`` names (names and patterns), in the server's order, each once. A name
    the server does not have, or a pattern that matches none, refuses the request, naming it."""
    system = [n for n in requested if n.lower() in SYSTEM_DATABASES]
    if system:
        raise BadInputError(f"database(s) {', '.join(repr(n) for n in system)} are the server's own: not replicated")
    unknown = [n for n in requested if not is_pattern(n) and n not in available]
    if unknown:
        raise BadInputError(
            f"unknown database(s) {', '.join(repr(n) for n in unknown)} on the source server; "
            f"available: {', '.join(available[:20]) or '(none the user can see)'}"
        )
    empty = [p for p in requested if is_pattern(p) and not any(pattern_regex(p).fullmatch(d) for d in available)]
    if empty:
        raise BadInputError(
            f"database pattern(s) {', '.join(repr(p) for p in empty)} match no database on the source server; "
            f"available: {', '.join(available[:20]) or '(none the user can see)'}"
        )
    patterns = [pattern_regex(n) for n in requested if is_pattern(n)]
    return [d for d in available if d in requested or any(p.fullmatch(d) for p in patterns)]


def scope_for(base: Scope, database: str, mapping: str) -> Scope:
    """Where ``database``'s tables go: ``schema``, the schema named after it (the naming rule of
    TARGET_IDENTIFIER_CASE) in the target database; ``prefix``, the target secret's schema, each table's
    name after ``<database>__``."""
    if mapping == "schema":
        schema = target_name(database, base.identifier_case)
        return Scope(database, base.target_database, schema, base.identifier_case, mapping=mapping)
    if mapping == "prefix":
        prefix = database + PREFIX_SEPARATOR
        return Scope(database, base.target_database, base.target_schema, base.identifier_case, prefix, mapping)
    if mapping == "merge":  # the target secret's schema, each table under its own name, shared
        return Scope(database, base.target_database, base.target_schema, base.identifier_case, "", mapping)
    raise BadInputError(f"database_mapping {mapping!r} is not one of 'schema', 'prefix', 'merge'")


def target_names(scopes: dict[str, Scope], tables: dict[str, list[str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """Each (database, table) to its Snowflake (schema, table); refused when two land on one, or when a
    prefixed name is longer than the pipeline's names may be."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for database, names in tables.items():
        scope = scopes[database]
        for table in names:
            joined = scope.table_prefix + table
            if len(joined) > MAX_IDENTIFIER_LENGTH:
                raise BadInputError(
                    f"table {database}.{table}: its prefixed target name {joined[:30]!r}... is {len(joined)} "
                    f"characters, more than {MAX_IDENTIFIER_LENGTH}; use database_mapping 'schema'"
                )
            where = (scope.target_schema, scope.target_table(table))
            other = seen.setdefault(where, (database, table))
            # merged: one table of each database into one shared table, the same name in each
            if other != (database, table) and not (scope.mapping == "merge" and other[1] == table):
                raise BadInputError(
                    f"tables {other[0]}.{other[1]} and {database}.{table} both map to {where[0]}.{where[1]} in "
                    "Snowflake; name the databases apart, or use TARGET_IDENTIFIER_CASE=preserve"
                )
            out[(database, table)] = where
    return out


def child_run_id(run_id: str, database: str) -> str:
    """The run of ``database`` in a request of several: ``<run id>-<database>`` when the database's name is
    made of letters, digits, ``_`` and ``-`` and the whole fits 64 characters; else ``<run id>-<8 hex>``
    (the SHA-1 of the name), the run id cut to fit."""
    plain = f"{run_id}-{database}"
    if RUN_ID_PATTERN.match(plain):
        return plain
    digest = hashlib.sha1(database.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return f"{run_id[: 64 - 9]}-{digest}"


def where_copied(scope: Scope, table: str) -> tuple[str, str, str]:
    """The Snowflake table (database, schema, table) ``table`` lands on in ``scope``: the catalog's owners' key."""
    return (scope.target_database, scope.target_schema, scope.target_table(table))


def not_another_databases(
    state: Any, scope: Scope, names: list[str], owners: dict[tuple[str, str, str], dict[str, str]] | None = None
) -> None:
    """Refuse a run whose tables land on Snowflake tables another source database was copied into (a request
    of several databases whose schema or prefixed name meets the stack's own tables, or another's): a full
    copy of one would replace the other's rows. A merged run (``database_mapping: merge``) shares its tables
    with the other merged databases only, and a whole copy never lands on a merged table. ``owners``: the
    catalog's (``StateStore.target_owner_mappings``), by default read here, which reads nothing until a
    request of several databases has run."""
    owners = state.target_owner_mappings() if owners is None else owners
    for table in names:
        where = where_copied(scope, table)
        found = owners.get(where, {})
        if scope.mapping == "merge":
            whole = sorted(d for d, m in found.items() if m != "merge")
            if whole:
                raise BadInputError(
                    f"table {scope.source_database}.{table} would be merged into {'.'.join(where)}, which holds a "
                    f"whole copy of database {whole[0]!r}'s table (not merged): its rows carry no "
                    "_ASR_SOURCE_DATABASE; rename or drop that table in Snowflake, or choose database_mapping "
                    "'schema' or 'prefix'"
                )
            continue
        merged = sorted(d for d, m in found.items() if m == "merge")
        if merged:
            raise BadInputError(
                f"table {scope.source_database}.{table} would be copied into {'.'.join(where)}, which holds the "
                f"rows of databases merged into it ({', '.join(repr(d) for d in merged[:5])}): a whole copy would "
                "replace all of them; copy it with database_mapping 'merge', or choose another mapping"
            )
        others = sorted(set(found) - {scope.source_database})
        if others:
            raise BadInputError(
                f"table {scope.source_database}.{table} would be copied into {'.'.join(where)}, which holds the "
                f"copy of database {others[0]!r}'s table: one would overwrite the other; choose another "
                "database_mapping, or rename the target schema (the target secret's) or the old table"
            )


# ---- database_mapping: merge (docs/run-requests.md#merged-into-one-table) ----
# one column of a table as the merged table's agreement compares it: (name, MySQL column type, nullable)
ColumnShape = tuple[str, str, str]
# a table's columns in order, then its primary key's columns in order ("" without one)
TableShape = tuple[list[ColumnShape], str]


def table_shapes(conn: Any, names: list[str], tables: list[str]) -> dict[str, dict[str, TableShape]]:
    """Each database's tables' columns in order (``COLUMN_TYPE`` as MySQL writes it, ``IS_NULLABLE``) and
    primary key: two queries for the whole request, from ``information_schema``."""
    if not names or not tables:
        return {}
    dbs = ", ".join(["%s"] * len(names))
    tbls = ", ".join(["%s"] * len(tables))
    columns = query(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "  # noqa: S608 (placeholders only)
        f"WHERE TABLE_SCHEMA IN ({dbs}) AND TABLE_NAME IN ({tbls}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        [*names, *tables],
    )
    keys = query(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ',') "  # noqa: S608 (placeholders only)
        f"FROM information_schema.STATISTICS WHERE INDEX_NAME = 'PRIMARY' AND TABLE_SCHEMA IN ({dbs}) "
        f"AND TABLE_NAME IN ({tbls}) GROUP BY TABLE_SCHEMA, TABLE_NAME",
        [*names, *tables],
    )
    cols: dict[tuple[str, str], list[ColumnShape]] = {}
    for db, table, column, type_, nullable in columns:
        cols.setdefault((str(db), str(table)), []).append((str(column), str(type_).lower(), str(nullable)))
    key = {(str(db), str(table)): str(k) for db, table, k in keys}
    out: dict[str, dict[str, TableShape]] = {d: {} for d in names}
    for (db, table), c in cols.items():
        out[db][table] = (c, key.get((db, table), ""))
    return out


def shapes_agree(shapes: dict[str, dict[str, TableShape]], tables: list[str]) -> None:
    """Refuse a merge of databases whose tables differ: each table must have the same columns, in the same
    order, of the same types and nullability, and the same primary key, in every database (the first
    database is the reference). One shared table cannot hold two shapes, and evolving it to one
    database's shape would change the others' rows; the message names the table, the databases and the
    first difference, and the fix."""
    names = list(shapes)
    for table in tables:
        having = [d for d in names if table in shapes[d]]  # with ``*``, a database may lack a table
        if not having:
            continue
        first = having[0]
        ref_cols, ref_key = shapes[first][table]
        for other in having[1:]:
            cols, key = shapes[other][table]
            if cols != ref_cols:
                a, b = next((a, b) for a, b in itertools.zip_longest(ref_cols, cols) if a != b)
                what = f"{_column_text(a)} in {first!r}, {_column_text(b)} in {other!r}"
            elif key != ref_key:
                what = f"primary key ({ref_key or 'none'}) in {first!r}, ({key or 'none'}) in {other!r}"
            else:
                continue
            raise BadInputError(
                f"database_mapping 'merge': table {table!r} differs between databases {first!r} and {other!r} "
                f"({what}); one shared table holds one shape: make the tables alike in MySQL, or use "
                "database_mapping 'schema' or 'prefix'"
            )


def _column_text(shape: ColumnShape | None) -> str:
    if shape is None:
        return "no such column"
    name, type_, nullable = shape
    return f"column {name!r} {type_}{' NULL' if nullable == 'YES' else ' NOT NULL'}"
