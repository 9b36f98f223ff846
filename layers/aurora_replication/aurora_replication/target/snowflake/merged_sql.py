"""Pure builders of the statements of ``database_mapping: merge`` (docs/run-requests.md#merged-into-one-table):
several source databases' rows in one shared Snowflake table, each row carrying its database's name in
``_ASR_SOURCE_DATABASE``, the table's key being that column and the source key. No connection here.

Every statement touches one database's rows only: a full copy of one database replaces its rows and no
other's (one MERGE, never an ``INSERT OVERWRITE`` of the shared table), an incremental run merges on the
extended key, and every read of the target for a comparison is filtered to the database
(``database_filter``). Each is one statement, so that it can run asynchronously (a transaction does not
outlive its session, which a Lambda invocation does not keep), and a MERGE takes the table's lock, so
two databases' statements on the shared table run one after the other (docs/architecture.md, the
assumptions table).

The database's name is put in the statement as a quoted literal (``_lit``): it is a database name the
request validated (``identifiers.validate_identifier``) and the server listed, never other input.
"""

from __future__ import annotations

from collections.abc import Sequence

from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.identifiers import validate_identifier
from aurora_replication.models import TablePlan
from aurora_replication.target.snowflake.sql import (
    _lit,
    _published_columns,
    _typed,
    guard_rows,
    not_in_keys,
    validated,
)
from aurora_replication.target.snowflake.types import column_type
from aurora_replication.target.warehouse import Attempts

SOURCE_DATABASE_COLUMN = "_ASR_SOURCE_DATABASE"
# the width of the column: MySQL's database names are at most 64 characters
SOURCE_DATABASE_TYPE = "VARCHAR(64)"
# which of a replacing MERGE's source rows is a row of the load ('U') or a row to delete ('D')
_OP = "_ASR_MERGE_OP"


def _database(database: str) -> str:
    return _lit(validate_identifier(database, "source database name"))


def _keys(plan: TablePlan) -> list[str]:
    if not plan.key:
        raise ValueError(
            f"table {plan.table!r} has no primary or unique key: its rows cannot be told apart from another "
            "database's in a merged table; give it a key in MySQL, or use database_mapping 'schema' or 'prefix'"
        )
    return sorted({plan.column(k).target for k in plan.key})


def create_shared_table(plan: TablePlan) -> str:
    """The shared table: ``_ASR_SOURCE_DATABASE`` first, then the plan's columns."""
    cols = ", ".join(f"{q(c.target)} {column_type(c)}" for c in plan.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {q(plan.target_table)} "
        f"({q(SOURCE_DATABASE_COLUMN)} {SOURCE_DATABASE_TYPE} NOT NULL, {cols})"
    )


def shape_mismatch(plan: TablePlan, columns: Sequence[Sequence[object]]) -> str | None:
    """Why ``plan`` cannot write into an existing target with ``columns`` (``(name, ...)`` rows; None: it
    can): a merged plan into a table without ``_ASR_SOURCE_DATABASE`` (a whole copy), or a whole copy into
    a merged table, would each mix rows of two kinds or replace other databases' rows."""
    if not columns:
        return None
    shared = any(str(c[0]) == SOURCE_DATABASE_COLUMN for c in columns)
    if plan.merged and not shared:
        return (
            f"table {plan.table!r}: database_mapping 'merge', but its target {plan.target_table!r} exists without "
            f"{SOURCE_DATABASE_COLUMN} (a whole copy of one database): rename or drop it in Snowflake, or choose "
            "database_mapping 'schema' or 'prefix'"
        )
    if shared and not plan.merged:
        return (
            f"table {plan.table!r}: its target {plan.target_table!r} holds several databases' rows merged "
            f"({SOURCE_DATABASE_COLUMN}): a whole copy would replace them all; copy it with database_mapping "
            "'merge' and the databases merged into it, or rename the merged table in Snowflake"
        )
    return None


def database_filter(database: str, alias: str = "") -> str:
    """The rows of ``database`` in the shared table (``alias``: the table's, with its dot)."""
    return f"{alias}{q(SOURCE_DATABASE_COLUMN)} = {_database(database)}"


def replace_database_rows(
    plan: TablePlan, load_table: str, attempts: Attempts, database: str, dropped: Sequence[str] = ()
) -> str:
    """A full copy of ``database``: its rows of the shared table become exactly the validated attempts of
    the load table, and no other database's row is touched, in one MERGE (params: the attempts' three
    times, then their number of rows). Snowflake's MERGE has no ``WHEN NOT MATCHED BY SOURCE``, so the
    database's rows whose key the load lacks are part of the source, marked 'D', and deleted when matched;
    the load's rows, marked 'U', update or insert. A load table that no longer holds exactly the validated
    rows fails the statement (``guard_rows``) and leaves every row as it was. ``dropped``: the shared
    table's columns MySQL no longer has (``schema_changes.SchemaChange.kept_in_target``), set NULL in the
    database's updated rows as ``sql.overwrite`` sets them NULL in every row."""
    keys = _keys(plan)
    db = _database(database)
    dbcol = q(SOURCE_DATABASE_COLUMN)
    op = q(_OP)
    loaded = (
        f"SELECT {_published_columns(plan)}, {db} AS {dbcol}, 'U' AS {op} "
        f"FROM {q(load_table)} WHERE {validated(load_table, attempts)}"
    )
    # the database's rows whose key the load lacks: reconcile's pattern (``sql.not_in_keys``, the target
    # aliased ``t`` inside this subquery), its keys read from the validated rows in a derived table
    gone = (
        f"SELECT {', '.join(f't.{q(c.target)}' for c in plan.columns)}, t.{dbcol}, 'D' AS {op} "
        f"FROM {q(plan.target_table)} t WHERE t.{dbcol} = {db} "
        f"AND {not_in_keys(plan, load_table, validated(load_table, attempts))}"
    )
    guard = (
        f"SELECT x.*, CAST(NULL AS {SOURCE_DATABASE_TYPE}) AS {dbcol}, CAST(NULL AS VARCHAR(1)) AS {op} "
        f"FROM ({guard_rows(plan, load_table, attempts)}) x"
    )
    on = " AND ".join([f"t.{dbcol} = s.{dbcol}", *(f"t.{q(k)} = s.{q(k)}" for k in keys)])
    sql = (
        f"MERGE INTO {q(plan.target_table)} t USING ({loaded} UNION ALL {gone} UNION ALL {guard}) s ON {on} "
        f"WHEN MATCHED AND s.{op} = 'D' THEN DELETE"
    )
    non_key = [c for c in plan.columns if c.target not in keys]
    sets = [f"t.{q(c.target)} = s.{q(c.target)}" for c in non_key] + [f"t.{q(name)} = NULL" for name in dropped]
    if sets:
        sql += f" WHEN MATCHED AND s.{op} = 'U' THEN UPDATE SET {', '.join(sets)}"
    cols = [dbcol, *(q(c.target) for c in plan.columns)]
    return (
        sql + f" WHEN NOT MATCHED AND s.{op} = 'U' THEN INSERT ({', '.join(cols)}) "
        f"VALUES ({', '.join('s.' + c for c in cols)})"
    )


def merge_database_rows(plan: TablePlan, load_table: str, attempts: Attempts, database: str) -> str:
    """An incremental run of ``database``: MERGE the validated attempts into the shared table on the
    extended key (``_ASR_SOURCE_DATABASE`` and the source key), as ``sql.merge_validated`` does on the
    source key (params: the attempts'). Another database's row with the same source key is never matched."""
    keys = _keys(plan)
    db = _database(database)
    dbcol = q(SOURCE_DATABASE_COLUMN)
    cols = ", ".join(f"{_typed(c)} AS {q(c.target)}" for c in plan.columns)
    on = " AND ".join([f"t.{dbcol} = {db}", *(f"t.{q(k)} = s.{q(k)}" for k in keys)])
    sql = (
        f"MERGE INTO {q(plan.target_table)} t USING (SELECT {cols} FROM {q(load_table)} "
        f"WHERE {validated(load_table, attempts)}) s ON {on}"
    )
    non_key = [c for c in plan.columns if c.target not in keys]
    if non_key:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{q(c.target)} = s.{q(c.target)}" for c in non_key)
    names = [q(c.target) for c in plan.columns]
    return (
        sql + f" WHEN NOT MATCHED THEN INSERT ({dbcol}, {', '.join(names)}) "
        f"VALUES ({db}, {', '.join('s.' + c for c in names)})"
    )


def database_row_count(table: str, database: str) -> str:
    """How many rows of ``database`` the shared ``table`` holds (a scan of the filter, not the table's
    metadata count, which counts every database's rows)."""
    return f"SELECT COUNT(*) FROM {q(table)} WHERE {database_filter(database)}"
