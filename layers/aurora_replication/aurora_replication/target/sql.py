"""Pure builders of the Snowflake statements, from a table plan. No connection here.

Identifiers are quoted by ``snowflake_ident``; values are bound (``%s``), never pasted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aurora_replication import typemap
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.keyset import range_predicate
from aurora_replication.models import Column, TablePlan

CHUNK_COLUMN = "_ASR_CHUNK"
HASH_COLUMN = "_ASR_HASH"
ATTEMPT_COLUMN = "_ASR_ATTEMPT"
DELETED_COLUMN = "_ASR_DELETED_AT"
TOKEN_COLUMN = "_ASR_TOKEN"
# key kinds that MySQL and Snowflake order alike, so a key range selects the same rows in both
# (text keys do not: MySQL's default collations ignore case, Snowflake compares bytes)
ORDER_SAFE_KINDS = frozenset({typemap.INTEGER, typemap.DECIMAL, typemap.DATE, typemap.DATETIME, typemap.YEAR})
CSV_FILE_FORMAT = (
    "FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
    "ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = ('\\\\N') EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = GZIP)"
)


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def staging_type(c: Column) -> str:
    """Staging tables hold JSON as text; PARSE_JSON turns it into VARIANT on the way to the target."""
    return "VARCHAR" if c.kind == typemap.JSON else c.snowflake_type


def load_table_name(plan: TablePlan, run_id: str) -> str:
    prefix = {"full": "_ASR_FULL_", "incremental": "_ASR_INC_", "reconcile": "_ASR_KEYS_"}[plan.mode]
    return f"{prefix}{run_id}_{plan.target_table}"


def create_stage(stage: str) -> str:
    return f"CREATE STAGE IF NOT EXISTS {q(stage.upper())}"


def attempts_table_name(plan: TablePlan, run_id: str) -> str:
    """The run's table of validated attempts: which (chunk, attempt) pairs a finaliser checked."""
    return f"_ASR_OK_{run_id}_{plan.target_table}"


def create_attempts_table(name: str) -> str:
    return (
        f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(name)} "
        f"({q(TOKEN_COLUMN)} VARCHAR, {q(CHUNK_COLUMN)} NUMBER(10,0), {q(ATTEMPT_COLUMN)} VARCHAR)"
    )


def insert_attempts(name: str, nrows: int) -> str:
    """Rows of (token, chunk, attempt), bound: one finaliser's view of the ledger, written once and
    only read afterwards (INSERT only, so concurrent finalisers never lock each other out)."""
    rows = ", ".join(["(%s, %s, %s)"] * nrows)
    return (
        f"INSERT INTO {q(name)} ({q(TOKEN_COLUMN)}, {q(CHUNK_COLUMN)}, {q(ATTEMPT_COLUMN)}) "
        f"SELECT column1, column2, column3 FROM VALUES {rows}"
    )


def validated(load_table: str, attempts_table: str) -> str:
    """The load table's rows of exactly the (chunk, attempt) pairs recorded under one finaliser's
    token (bound as the one parameter). Whatever else the load table holds (earlier attempts, a late
    duplicate's rows) is invisible to validation, publish, merge and reconcile alike."""
    rows = q(load_table)
    return (
        f"EXISTS (SELECT 1 FROM {q(attempts_table)} a WHERE a.{q(TOKEN_COLUMN)} = %s "
        f"AND a.{q(CHUNK_COLUMN)} = {rows}.{q(CHUNK_COLUMN)} AND a.{q(ATTEMPT_COLUMN)} = {rows}.{q(ATTEMPT_COLUMN)})"
    )


def create_load_table(plan: TablePlan, name: str) -> str:
    cols = ", ".join(f"{q(c.target)} {staging_type(c)}" for c in plan.columns)
    return (
        f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(name)} "
        f"({cols}, {q(CHUNK_COLUMN)} NUMBER(10,0), {q(ATTEMPT_COLUMN)} VARCHAR)"
    )


def create_target_table(plan: TablePlan) -> str:
    cols = ", ".join(f"{q(c.target)} {c.snowflake_type}" for c in plan.columns)
    return f"CREATE TABLE IF NOT EXISTS {q(plan.target_table)} ({cols})"


def stage_location(stage: str, path: str, file: str = "") -> str:
    """``@STAGE/path/``: the stage name is validated as a plain identifier (``STAGE_NAME``) and the path
    is built from safe characters only (``source.stage_path_component``, run ids, chunk ids)."""
    if (
        not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", stage)
        or not re.fullmatch(r"[A-Za-z0-9_/-]+", path)
        or not re.fullmatch(r"[A-Za-z0-9_.-]*", file)
    ):
        raise ValueError(f"unsafe stage location {stage!r}/{path!r}/{file!r}")
    return f"@{stage.upper()}/{path}/{file}"


def put_file(local_path: str, stage: str, path: str) -> str:
    return f"PUT {_lit('file://' + local_path)} {stage_location(stage, path)} AUTO_COMPRESS = FALSE OVERWRITE = TRUE"


def _load_columns(plan: TablePlan) -> str:
    return ", ".join([q(c.target) for c in plan.columns] + [q(CHUNK_COLUMN), q(ATTEMPT_COLUMN)])


# Every attempt at a chunk tags its rows with its attempt id. The pipeline reads a load table
# through ``validated`` (the pairs its ledger names); this clause (the latest attempt of each chunk)
# remains for reading a load table by hand, without the ledger.
ONE_ATTEMPT_PER_CHUNK = f"QUALIFY {q(ATTEMPT_COLUMN)} = MAX({q(ATTEMPT_COLUMN)}) OVER (PARTITION BY {q(CHUNK_COLUMN)})"


def copy_into(plan: TablePlan, table: str, stage: str, path: str, file: str) -> str:
    """COPY one attempt's file of a chunk, alone: no DELETE beside it, so the chunks of a table load
    concurrently (COPY and INSERT write new partitions and do not wait for each other; DELETE,
    UPDATE and MERGE lock the table). Each attempt has its own file name, so the load history never
    skips a new attempt and never loads one file twice; PURGE removes the loaded file."""
    return (
        f"COPY INTO {q(table)} ({_load_columns(plan)}) FROM {stage_location(stage, path, file)} "
        f"{CSV_FILE_FORMAT} PURGE = TRUE"
    )


def insert_values(plan: TablePlan, table: str, nrows: int) -> str:
    """One multi-row INSERT of bound values (the small-chunk path); binary values travel as hex."""
    exprs = [
        f"TO_BINARY(column{i}, 'HEX')" if c.kind == typemap.BINARY else f"column{i}"
        for i, c in enumerate(plan.columns, start=1)
    ]
    n = len(plan.columns)
    exprs += [f"column{n + 1}", f"column{n + 2}"]
    row = "(" + ", ".join(["%s"] * (n + 2)) + ")"
    return f"INSERT INTO {q(table)} ({_load_columns(plan)}) SELECT {', '.join(exprs)} FROM VALUES " + ", ".join(
        [row] * nrows
    )


def _typed(c: Column, alias: str = "") -> str:
    ref = f"{alias}{q(c.target)}"
    if c.kind == typemap.JSON:
        return f"PARSE_JSON({ref})"
    return ref


def _published_columns(plan: TablePlan) -> str:
    return ", ".join(f"CAST({_typed(c)} AS {c.snowflake_type}) AS {q(c.target)}" for c in plan.columns)


def overwrite(plan: TablePlan, load_table: str, attempts_table: str) -> str:
    """Replace the target's rows with the validated attempts of the load table (param: the finaliser's
    token). The table object stays: its grants, comment, clustering key, tags, policies, streams and
    time travel (Snowflake: "OVERWRITE ... does not affect the access control privileges on the table"
    and "can be processed within the scope of the current transaction"). Columns the plan does not
    name (dropped in MySQL, or a hidden ``_ASR_`` column) are NULL in every row."""
    cols = ", ".join(q(c.target) for c in plan.columns)
    return (
        f"INSERT OVERWRITE INTO {q(plan.target_table)} ({cols}) SELECT {_published_columns(plan)} "
        f"FROM {q(load_table)} WHERE {validated(load_table, attempts_table)}"
    )


def publish(plan: TablePlan, load_table: str, attempts_table: str) -> str:
    """Recreate the target from the validated attempts of the load table, keeping only its grants
    (param: the finaliser's token): for a column type Snowflake cannot change in place; otherwise
    ``overwrite``, which keeps the table object."""
    return (
        f"CREATE OR REPLACE TABLE {q(plan.target_table)} COPY GRANTS AS SELECT {_published_columns(plan)} "
        f"FROM {q(load_table)} WHERE {validated(load_table, attempts_table)}"
    )


def merge_validated(plan: TablePlan, load_table: str, attempts_table: str) -> str:
    """MERGE the validated attempts of every chunk into the target on the key, in one statement
    (param: the finaliser's token): applying it twice gives the same result."""
    cols = ", ".join(f"{_typed(c)} AS {q(c.target)}" for c in plan.columns)
    keys = {plan.column(k).target for k in plan.key}
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in sorted(keys))
    non_key = [c for c in plan.columns if c.target not in keys]
    sql = (
        f"MERGE INTO {q(plan.target_table)} t USING (SELECT {cols} FROM {q(load_table)} "
        f"WHERE {validated(load_table, attempts_table)}) s ON {on}"
    )
    if non_key:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{q(c.target)} = s.{q(c.target)}" for c in non_key)
    all_cols = [q(c.target) for c in plan.columns]
    sql += f" WHEN NOT MATCHED THEN INSERT ({', '.join(all_cols)}) VALUES ({', '.join('s.' + c for c in all_cols)})"
    return sql


def drop_table(name: str) -> str:
    return f"DROP TABLE IF EXISTS {q(name)}"


def table_exists() -> str:
    return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s"


def _canonical(c: Column) -> str:
    ref = q(c.target)
    if c.kind == typemap.DATE:
        return f"TO_CHAR({ref}, 'YYYY-MM-DD')"
    if c.kind == typemap.DATETIME:
        return f"CAST(DATE_PART(EPOCH_MICROSECOND, {ref}) AS VARCHAR)"
    if c.kind in (typemap.TEXT, typemap.TIME):
        return ref
    return f"CAST({ref} AS VARCHAR)"


def _row_md5(checksum_columns: list[Column]) -> str:
    parts = [f"COALESCE({_canonical(c)}, CHR(30))" for c in checksum_columns] or ["''"]
    return f"MD5(CONCAT_WS(CHR(31), {', '.join(parts)}))"


def checksum_query(
    plan: TablePlan, table: str, checksum_columns: list[Column], load_table: bool = False, where: str = ""
) -> str:
    """Per-row MD5 (as ``_ASR_HASH``) of the same canonical text ``source.checksum_query`` builds in
    MySQL; a load table gives one attempt per chunk."""
    return _hashed_rows(table, checksum_columns, load_table, where)


def _hashed_rows(
    table: str, checksum_columns: list[Column], load_table: bool, where: str = "", extra_columns: tuple[str, ...] = ()
) -> str:
    select = ", ".join([*(q(c) for c in extra_columns), f"{_row_md5(checksum_columns)} AS {q(HASH_COLUMN)}"])
    sql = f"SELECT {select} FROM {q(table)}"
    if where:
        sql += f" WHERE {where}"
    return f"{sql} {ONE_ATTEMPT_PER_CHUNK}" if load_table else sql


# the two 32-bit halves of the first 64 bits of a row's MD5, summed (fits NUMBER(38,0) exactly)
_FOLD = (
    f"COUNT(*), SUM(TO_NUMBER(SUBSTR({q(HASH_COLUMN)}, 1, 8), 'XXXXXXXX')), "
    f"SUM(TO_NUMBER(SUBSTR({q(HASH_COLUMN)}, 9, 8), 'XXXXXXXX'))"
)


def checksum_aggregate_query(
    plan: TablePlan, table: str, checksum_columns: list[Column], load_table: bool = False, where: str = ""
) -> str:
    """Count and checksum folded inside Snowflake (one row), as ``source.checksum_aggregate_query``
    folds them inside MySQL."""
    return f"SELECT {_FOLD} FROM ({checksum_query(plan, table, checksum_columns, load_table, where)})"


def checksum_by_chunk_query(table: str, checksum_columns: list[Column], where: str = "") -> str:
    """Count and checksum of each chunk's rows in a load table, folded inside Snowflake: one row per
    chunk. ``where`` (``validated``) picks the rows; without it, the latest attempt of each chunk."""
    inner = _hashed_rows(table, checksum_columns, load_table=not where, where=where, extra_columns=(CHUNK_COLUMN,))
    return f"SELECT {q(CHUNK_COLUMN)}, {_FOLD} FROM ({inner}) GROUP BY {q(CHUNK_COLUMN)}"


def order_safe(plan: TablePlan) -> bool:
    """Whether a key range means the same rows in Snowflake as in MySQL."""
    return bool(plan.key) and all(plan.column(k).kind in ORDER_SAFE_KINDS for k in plan.key)


def target_range(
    plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None, alias: str = ""
) -> tuple[str, list[object]]:
    """``lower < key <= upper`` on the target's key columns (only for ``order_safe`` plans)."""
    if not order_safe(plan) and (lower is not None or upper is not None):
        raise ValueError(f"table {plan.table!r}: its key does not order alike in both engines")
    keys = [plan.column(k).target for k in plan.key]
    return range_predicate(keys, lower, upper, lambda k: alias + q(k))


def in_keys(plan: TablePlan, source: str, source_filter: str = "") -> str:
    """``EXISTS`` a row with the same key in ``source`` (for the target aliased ``t``)."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in keys)
    inner = f"SELECT {', '.join(q(k) for k in keys)} FROM {q(source)}"
    inner += f" WHERE {source_filter}" if source_filter else f" {ONE_ATTEMPT_PER_CHUNK}"
    return f"EXISTS (SELECT 1 FROM ({inner}) s WHERE {match})"


def not_in_keys(plan: TablePlan, source: str, source_filter: str = "") -> str:
    return "NOT " + in_keys(plan, source, source_filter)


def merged_rows(plan: TablePlan, load_table: str, attempts_table: str) -> str:
    """The target's rows whose key is among the validated rows of the load table (params: the
    token), for checking a MERGE: a filter on the target table, referenced by its own name."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"s.{q(k)} = {q(plan.target_table)}.{q(k)}" for k in keys)
    inner = f"SELECT {', '.join(q(k) for k in keys)} FROM {q(load_table)} WHERE {validated(load_table, attempts_table)}"
    return f"EXISTS (SELECT 1 FROM ({inner}) s WHERE {match})"


def reconcile_delete(plan: TablePlan, keys_table: str, attempts_table: str) -> str:
    """Delete the target's rows whose key is not among the validated keys read from MySQL (params:
    the token). The keys table holds every source key of the chunks' snapshots."""
    gone = not_in_keys(plan, keys_table, validated(keys_table, attempts_table))
    return f"DELETE FROM {q(plan.target_table)} t WHERE {gone}"


def add_deleted_column(plan: TablePlan) -> str:
    return f"ALTER TABLE {q(plan.target_table)} ADD COLUMN IF NOT EXISTS {q(DELETED_COLUMN)} TIMESTAMP_NTZ"


def reconcile_mark(plan: TablePlan, keys_table: str, attempts_table: str) -> str:
    """Mark (instead of delete) the target's rows whose key MySQL no longer has (params: the token)."""
    gone = not_in_keys(plan, keys_table, validated(keys_table, attempts_table))
    return (
        f"UPDATE {q(plan.target_table)} t SET {q(DELETED_COLUMN)} = SYSDATE() "
        f"WHERE t.{q(DELETED_COLUMN)} IS NULL AND {gone}"
    )


def reconcile_unmark(plan: TablePlan, keys_table: str, attempts_table: str) -> str:
    """Clear the mark of rows that exist in MySQL again (params: the token)."""
    back = in_keys(plan, keys_table, validated(keys_table, attempts_table))
    return (
        f"UPDATE {q(plan.target_table)} t SET {q(DELETED_COLUMN)} = NULL "
        f"WHERE t.{q(DELETED_COLUMN)} IS NOT NULL AND {back}"
    )


def keys_missing_in_target(plan: TablePlan, keys_table: str, attempts_table: str) -> str:
    """How many validated source keys the target lacks (params: the token): rows inserted in MySQL
    since the last copy (lag, carried by the next incremental run), or rows lost."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"t.{q(k)} = {q(keys_table)}.{q(k)}" for k in keys)
    return (
        f"SELECT COUNT(*) FROM {q(keys_table)} WHERE {validated(keys_table, attempts_table)} "
        f"AND NOT EXISTS (SELECT 1 FROM {q(plan.target_table)} t WHERE {match})"
    )


def target_columns() -> str:
    """A table's columns as ``(name, data_type, precision, scale)`` in order (bind the table name);
    what ``evolution.diff`` compares the plan with."""
    return (
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s ORDER BY ordinal_position"
    )


def column_exists() -> str:
    return (
        "SELECT COUNT(*) FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s AND column_name = %s"
    )


def unmarked() -> str:
    """The target's rows that reconcile has not marked as deleted in MySQL."""
    return f"{q(DELETED_COLUMN)} IS NULL"
