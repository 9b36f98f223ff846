"""Pure builders of the Snowflake statements that apply binlog changes (cdc mode). No connection here.

A batch of changes is loaded into a run-scoped transient table (one row per changed key: the row
image, ``_ASR_OP`` U or D and ``_ASR_POS``, the binlog position of the change) and MERGEd into the
target. Every target row keeps the position of the change that wrote it in the hidden column
``_ASR_POS`` (fixed-width text that sorts as the binlog does); a change is applied only when it is
newer than the row, so a batch applied twice, or an older batch after a newer one, changes nothing.

A deleted row leaves a tombstone (its key and position) so that an older upsert delivered late cannot
bring it back: with RECONCILE_ACTION=delete in ``_ASR_TOMB_<target>``, with ``mark`` in the target
itself (the row stays, with ``_ASR_DELETED_AT`` set).
"""

from __future__ import annotations

from aurora_replication import typemap
from aurora_replication.identifiers import bounded_name
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan
from aurora_replication.target.snowflake.merged_sql import database_filter
from aurora_replication.target.snowflake.sql import (
    ATTEMPT_COLUMN,
    CHUNK_COLUMN,
    CSV_FILE_FORMAT,
    DELETED_COLUMN,
    TERM_COLUMN,
    hashed_rows,
    stage_location,
    staging_type,
)
from aurora_replication.target.snowflake.types import column_type

OP_COLUMN = "_ASR_OP"
POS_COLUMN = "_ASR_POS"
# the binlog event's time, epoch seconds (history mode's _ASR_VALID_FROM, ``target.history_sql``)
AT_COLUMN = "_ASR_AT"
UPSERT = "U"
DELETE = "D"


def tombstone_table_name(plan: TablePlan) -> str:
    return bounded_name(f"_ASR_TOMB_{plan.target_table}")


def create_load_table(plan: TablePlan, name: str) -> str:
    cols = ", ".join(f"{q(c.target)} {staging_type(c)}" for c in plan.columns)
    return (
        f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(name)} ({cols}, {q(OP_COLUMN)} VARCHAR(1), {q(POS_COLUMN)} VARCHAR, "
        f"{q(AT_COLUMN)} NUMBER(19,0), {q(CHUNK_COLUMN)} NUMBER(10,0), {q(ATTEMPT_COLUMN)} VARCHAR)"
    )


def _load_columns(plan: TablePlan) -> str:
    names = [*(c.target for c in plan.columns), OP_COLUMN, POS_COLUMN, AT_COLUMN, CHUNK_COLUMN, ATTEMPT_COLUMN]
    return ", ".join(q(n) for n in names)


def copy_batch(plan: TablePlan, table: str, stage: str, path: str, file: str) -> str:
    """COPY one staged batch, on its own (it commits by itself). The reader wrote the file once: a
    repeat finds it loaded (the load history skips it, FORCE = FALSE) or gone (PURGE removes it once
    loaded), and a copy loaded twice only repeats identical rows, which the MERGE reads as one."""
    return (
        f"COPY INTO {q(table)} ({_load_columns(plan)}) FROM {stage_location(stage, path, file)} "
        f"{CSV_FILE_FORMAT} FORCE = FALSE PURGE = TRUE"
    )


def count_batch(plan: TablePlan, table: str) -> str:
    """How many changes a batch holds (params: its chunk id): one per key and position (a key change deletes
    the old key at the new one's position; a ``where`` the new image fails deletes the new key there too)."""
    keys = ", ".join(q(c.target) for c in _key_columns(plan))
    distinct = f"{keys}, {q(POS_COLUMN)}, {q(OP_COLUMN)}"
    return f"SELECT COUNT(*) FROM (SELECT DISTINCT {distinct} FROM {q(table)} WHERE {q(CHUNK_COLUMN)} = %s)"


def count_audit_batch(plan: TablePlan, table: str) -> str:
    """How many keys the rolling audit's batch holds (its rows share one position; params: its chunk id)."""
    keys = ", ".join(q(c.target) for c in _key_columns(plan))
    return f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {q(table)} WHERE {q(CHUNK_COLUMN)} = %s)"


def add_position_column(plan: TablePlan) -> str:
    return f"ALTER TABLE {q(plan.target_table)} ADD COLUMN IF NOT EXISTS {q(POS_COLUMN)} VARCHAR"


def add_deleted_column(plan: TablePlan) -> str:
    return f"ALTER TABLE {q(plan.target_table)} ADD COLUMN IF NOT EXISTS {q(DELETED_COLUMN)} TIMESTAMP_NTZ"


def _key_columns(plan: TablePlan) -> list[Column]:
    keys = {plan.column(k).target for k in plan.key}
    return sorted((c for c in plan.columns if c.target in keys), key=lambda c: c.target)


def create_tombstone_table(plan: TablePlan) -> str:
    cols = ", ".join(f"{q(c.target)} {column_type(c)}" for c in _key_columns(plan))
    return (
        f"CREATE TABLE IF NOT EXISTS {q(tombstone_table_name(plan))} "
        f"({cols}, {q(POS_COLUMN)} VARCHAR, {q(DELETED_COLUMN)} TIMESTAMP_NTZ)"
    )


def _typed(c: Column, alias: str) -> str:
    ref = f"{alias}.{q(c.target)}"
    # 'd': a duplicate key keeps its last value, as in the chunk path (``target.sql._typed``)
    return f"PARSE_JSON({ref}, 'd')" if c.kind == typemap.JSON else ref


def _match(alias_a: str, alias_b: str, plan: TablePlan) -> str:
    return " AND ".join(f"{alias_a}.{q(c.target)} = {alias_b}.{q(c.target)}" for c in _key_columns(plan))


def merge_tombstones(plan: TablePlan, load_table: str) -> str:
    """Record the batch's deletes as tombstones (newer ones win); params: the batch's chunk id."""
    keys = _key_columns(plan)
    cols = ", ".join(q(c.target) for c in keys)
    tomb = q(tombstone_table_name(plan))
    pos, deleted = q(POS_COLUMN), q(DELETED_COLUMN)
    return (
        f"MERGE INTO {tomb} d USING (SELECT DISTINCT {cols}, {pos} FROM {q(load_table)} "
        f"WHERE {q(CHUNK_COLUMN)} = %s AND {q(OP_COLUMN)} = '{DELETE}') s ON {_match('d', 's', plan)} "
        f"WHEN MATCHED AND d.{pos} < s.{pos} THEN UPDATE SET d.{pos} = s.{pos}, d.{deleted} = SYSDATE() "
        f"WHEN NOT MATCHED THEN INSERT ({cols}, {pos}, {deleted}) "
        f"VALUES ({', '.join('s.' + q(c.target) for c in keys)}, s.{pos}, SYSDATE())"
    )


def range_key(plan: TablePlan) -> Column | None:
    """The key column a batch's MERGE may bound by the batch's own smallest and largest key: the table's one
    key column, an integer loaded as a number (no cast, no mask). None: the MERGE is not bounded."""
    keys = _key_columns(plan)
    if len(keys) != 1:
        return None
    key = keys[0]
    if key.kind != typemap.INTEGER or key.warehouse_type or key.source_expr:
        return None
    return key


def merge_changes(plan: TablePlan, load_table: str, action: str, bounded: bool = False) -> str:
    """MERGE one batch into the target, each change only where it is newer than the row; params: the
    batch's chunk id (then, ``bounded``, the batch's smallest and largest key). ``action`` is RECONCILE_ACTION:
    ``delete`` removes deleted rows (an upsert older than the key's tombstone is left out), ``mark`` keeps them
    with ``_ASR_DELETED_AT`` set.

    ``bounded`` (``range_key``'s table only): the target's key is also held between the batch's smallest and
    largest key. Every row of the batch is inside those bounds, so the statement matches exactly what it
    matches without them; the bounds are constants Snowflake compares with each micro-partition's range of
    the key (its metadata), so a target whose rows arrived in key order is read only where the batch's keys
    are, not whole (docs/architecture.md, assumptions)."""
    pos, op, deleted = q(POS_COLUMN), q(OP_COLUMN), q(DELETED_COLUMN)
    select = ", ".join(
        [
            *(f"{_typed(c, 'l')} AS {q(c.target)}" for c in plan.columns),
            f"l.{op} AS {op}",
            f"l.{pos} AS {pos}",
            f"CASE WHEN l.{op} = '{DELETE}' THEN SYSDATE() END AS {deleted}",
        ]
    )
    source = f"SELECT DISTINCT {select} FROM {q(load_table)} l WHERE l.{q(CHUNK_COLUMN)} = %s"
    if action == "delete":
        tomb = q(tombstone_table_name(plan))
        source += (
            f" AND (l.{op} = '{DELETE}' OR NOT EXISTS (SELECT 1 FROM {tomb} d "
            f"WHERE {_match('d', 'l', plan)} AND d.{pos} > l.{pos}))"
        )
    newer = f"(t.{pos} IS NULL OR t.{pos} < s.{pos})"
    keys = {c.target for c in _key_columns(plan)}
    assign = [f"t.{q(c.target)} = s.{q(c.target)}" for c in plan.columns if c.target not in keys]
    all_cols = [q(c.target) for c in plan.columns]
    values = [f"s.{c}" for c in all_cols]
    on = _match("t", "s", plan)
    key = range_key(plan) if bounded else None
    if bounded and key is None:
        raise ValueError(f"table {plan.table!r}: its key is not one integer column; its MERGE cannot be bounded")
    if key is not None:
        on += f" AND t.{q(key.target)} BETWEEN %s AND %s"
    sql = f"MERGE INTO {q(plan.target_table)} t USING ({source}) s ON {on} "
    if action == "delete":
        sql += f"WHEN MATCHED AND s.{op} = '{DELETE}' AND {newer} THEN DELETE "
        upsert = ", ".join([*assign, f"t.{pos} = s.{pos}"])
        sql += f"WHEN MATCHED AND s.{op} = '{UPSERT}' AND {newer} THEN UPDATE SET {upsert} "
        sql += f"WHEN NOT MATCHED AND s.{op} = '{UPSERT}' THEN INSERT ({', '.join([*all_cols, pos])}) "
        sql += f"VALUES ({', '.join([*values, f's.{pos}'])})"
        return sql
    mark = f"s.{deleted}"
    sets = [*assign, f"t.{pos} = s.{pos}", f"t.{deleted} = {mark}"]
    sql += f"WHEN MATCHED AND {newer} THEN UPDATE SET {', '.join(sets)} "
    sql += f"WHEN NOT MATCHED THEN INSERT ({', '.join([*all_cols, pos, deleted])}) "
    sql += f"VALUES ({', '.join([*values, f's.{pos}', mark])})"
    return sql


def truncate_before(plan: TablePlan, action: str) -> tuple[str, int]:
    """A ``TRUNCATE`` in the binlog at a position: the target's rows written by older changes (or by the
    initial copy, which leaves no position) are removed (``delete``) or marked deleted at that position
    (``mark``); rows written by a change after it stay, so the statement can run before or after the
    window's batches and again. Returns the statement and how many times it binds the position."""
    pos, deleted, table = q(POS_COLUMN), q(DELETED_COLUMN), q(plan.target_table)
    older = f"({pos} IS NULL OR {pos} < %s)"
    if action == "delete":
        return f"DELETE FROM {table} WHERE {older}", 1
    return f"UPDATE {table} SET {deleted} = SYSDATE(), {pos} = %s WHERE {deleted} IS NULL AND {older}", 2


def null_rows(plan: TablePlan, column: str, action: str) -> str:
    """How many live target rows hold NULL in ``column`` (a target name): rows marked deleted (``mark``)
    and, in history mode, closed versions are not the source's rows now, so they do not count."""
    where = [f"{q(column)} IS NULL"]
    if plan.history:
        where.append(f"{q('_ASR_IS_CURRENT')} = TRUE")
    elif action == "mark":
        where.append(f"{q(DELETED_COLUMN)} IS NULL")
    if plan.merged and plan.source_database:  # a merged table: the plan's database's rows only
        where.append(database_filter(plan.source_database))
    return f"SELECT COUNT(*) FROM {q(plan.target_table)} WHERE {' AND '.join(where)}"


def audit_differences(plan: TablePlan, load_table: str, checksum_columns: list[Column], action: str) -> str:
    """How many rows of the rolling audit's batch (params: its chunk id) the target does not hold as they
    are: no row with the key, a row with other values (compared by checksum term, JSON left out as in
    ``target.sql.audit_differences``), or, with ``mark``, a row marked deleted."""
    keys = [c.target for c in _key_columns(plan)]
    alive = f" AND t.{q(DELETED_COLUMN)} IS NULL" if action == "mark" else ""
    extra = tuple(keys) + ((DELETED_COLUMN,) if action == "mark" else ())
    loaded = hashed_rows(load_table, checksum_columns, where=f"{q(CHUNK_COLUMN)} = %s", extra_columns=tuple(keys))
    target = hashed_rows(plan.target_table, checksum_columns, extra_columns=extra)
    match = " AND ".join(f"t.{q(k)} = l.{q(k)}" for k in keys)
    return (
        f"SELECT COUNT(*) FROM (SELECT DISTINCT * FROM ({loaded})) l WHERE NOT EXISTS "
        f"(SELECT 1 FROM ({target}) t WHERE {match} AND t.{q(TERM_COLUMN)} = l.{q(TERM_COLUMN)}{alive})"
    )


def prune_tombstones(plan: TablePlan) -> str:
    """Tombstones older than the given seconds (negative, bound): no batch that could be older than
    them is still being applied (a worker lives at most 15 minutes, and a window's batches are stale
    once the window is committed). Params: minus the age in seconds."""
    return f"DELETE FROM {q(tombstone_table_name(plan))} WHERE {q(DELETED_COLUMN)} < DATEADD(second, %s, SYSDATE())"


def fill_version(plan: TablePlan, load_table: str, column: Column) -> str:
    """Fill a column version (``schema_changes.VERSION_ADDED``) from one page read from MySQL:
    ``plan`` holds the key columns and ``column``, loaded into ``load_table`` (params: the page's chunk
    id). Snowflake's ``UPDATE <t> SET ... FROM <source> WHERE <join>`` (docs/architecture.md, assumptions):
    each target row whose key the page holds gets the page's value; a row the page lacks is left alone
    (deleted in MySQL, its delete an event of a window). One row per key (the page is read by key, and
    DISTINCT folds a copy loaded twice), so no target row is multi-joined (whose value Snowflake would pick
    nondeterministically); run again, it writes the same values. The column is named without the table,
    as the syntax requires."""
    keys = _key_columns(plan)
    cols = ", ".join([*(q(c.target) for c in keys), f"{_typed(column, 'l')} AS {q(column.target)}"])
    source = f"SELECT DISTINCT {cols} FROM {q(load_table)} l WHERE l.{q(CHUNK_COLUMN)} = %s"
    table = q(plan.target_table)  # the syntax names no alias for the target: its columns by the table's name
    match = " AND ".join(f"{table}.{q(c.target)} = s.{q(c.target)}" for c in keys)
    return f"UPDATE {table} SET {q(column.target)} = s.{q(column.target)} FROM ({source}) s WHERE {match}"
