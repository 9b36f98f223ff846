"""Pure builders of the Snowflake statements, from a table plan. No connection here.

Identifiers are quoted by ``snowflake_ident``; values are bound (``%s``), never pasted.
"""

from __future__ import annotations

import re

from aurora_replication import typemap
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan

CHUNK_COLUMN = "_ASR_CHUNK"
ATTEMPT_COLUMN = "_ASR_ATTEMPT"
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
    prefix = "_ASR_FULL_" if plan.mode == "full" else "_ASR_INC_"
    return f"{prefix}{run_id}_{plan.target_table}"


def create_stage(stage: str) -> str:
    return f"CREATE STAGE IF NOT EXISTS {q(stage.upper())}"


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


# Every attempt at a chunk tags its rows with its attempt id. Readers of a load table take one
# attempt per chunk (the latest), so a chunk loaded twice by racing duplicates still counts once.
ONE_ATTEMPT_PER_CHUNK = f"QUALIFY {q(ATTEMPT_COLUMN)} = MAX({q(ATTEMPT_COLUMN)}) OVER (PARTITION BY {q(CHUNK_COLUMN)})"


def copy_into(plan: TablePlan, table: str, stage: str, path: str, file: str) -> str:
    """COPY one attempt's file of a chunk.

    FORCE, because the chunk's earlier rows were deleted in the same transaction (a retry must
    load again even if the load history has the file); PURGE removes the loaded file.
    """
    return (
        f"COPY INTO {q(table)} ({_load_columns(plan)}) FROM {stage_location(stage, path, file)} "
        f"{CSV_FILE_FORMAT} FORCE = TRUE PURGE = TRUE"
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
    return (
        f"INSERT INTO {q(table)} ({_load_columns(plan)}) SELECT {', '.join(exprs)} FROM VALUES "
        + ", ".join([row] * nrows)
    )


def delete_chunk(table: str) -> str:
    return f"DELETE FROM {q(table)} WHERE {q(CHUNK_COLUMN)} = %s"


def _typed(c: Column, alias: str = "") -> str:
    ref = f"{alias}{q(c.target)}"
    if c.kind == typemap.JSON:
        return f"PARSE_JSON({ref})"
    return ref


def publish(plan: TablePlan, load_table: str) -> str:
    """Replace the target in one atomic step with the fully loaded copy."""
    cols = ", ".join(f"CAST({_typed(c)} AS {c.snowflake_type}) AS {q(c.target)}" for c in plan.columns)
    return f"CREATE OR REPLACE TABLE {q(plan.target_table)} AS SELECT {cols} FROM {q(load_table)} {ONE_ATTEMPT_PER_CHUNK}"


def merge_chunk(plan: TablePlan, load_table: str) -> str:
    """MERGE one chunk's rows into the target on the key: applying it twice gives the same result."""
    cols = ", ".join(f"{_typed(c)} AS {q(c.target)}" for c in plan.columns)
    keys = {plan.column(k).target for k in plan.key}
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in sorted(keys))
    non_key = [c for c in plan.columns if c.target not in keys]
    sql = (
        f"MERGE INTO {q(plan.target_table)} t USING (SELECT {cols} FROM {q(load_table)} "
        f"WHERE {q(CHUNK_COLUMN)} = %s AND {q(ATTEMPT_COLUMN)} = %s) s ON {on}"
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


def checksum_query(plan: TablePlan, table: str, checksum_columns: list[Column], load_table: bool = False) -> str:
    """Per-row MD5 of the same canonical text ``source.checksum_query`` builds in MySQL."""
    parts = [f"COALESCE({_canonical(c)}, CHR(30))" for c in checksum_columns] or ["''"]
    sql = f"SELECT MD5(CONCAT_WS(CHR(31), {', '.join(parts)})) FROM {q(table)}"
    return f"{sql} {ONE_ATTEMPT_PER_CHUNK}" if load_table else sql
