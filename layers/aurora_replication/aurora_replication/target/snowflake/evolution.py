"""Schema evolution of an incrementally loaded target: add new columns, widen numbers, keep dropped ones.

A full copy recreates the target from the plan, so this only matters before MERGEs into an
existing table. Changes that cannot be applied in place (a text column becoming a number, a
different DECIMAL scale) are conflicts: the table stops with a clear error, or in ``auto`` mode
is copied in full instead.

This is Snowflake's half: comparing the plan's types with Snowflake's columns and the ``ALTER TABLE``
statements that follow; the pipeline reaches it through ``Warehouse`` (``schema_diff``, ``evolve``,
``renamed_column``, ``rename_column``, ``add_version``, ``widens_losslessly``). The change found
(``SchemaChange``) and what is recorded of it are the same for every warehouse: ``schema_changes``.
"""

from __future__ import annotations

import re
from typing import Any

from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan
from aurora_replication.schema_changes import SchemaChange
from aurora_replication.target.snowflake.types import column_type

# Snowflake's information_schema data_type for each type family we create
_FAMILY = {
    "NUMBER": "NUMBER",
    "VARCHAR": "TEXT",
    "FLOAT": "FLOAT",
    "DATE": "DATE",
    "TIMESTAMP_NTZ": "TIMESTAMP_NTZ",
    "BINARY": "BINARY",
    "VARIANT": "VARIANT",
    "BOOLEAN": "BOOLEAN",
}
_NUMBER = re.compile(r"NUMBER\((\d+),(\d+)\)")


def family(snowflake_type: str) -> str:
    return _FAMILY[snowflake_type.split("(")[0]]


def diff(plan: TablePlan, target_columns: list[tuple[Any, ...]]) -> SchemaChange:
    """Compare the plan with the target's ``(name, data_type, precision, scale)`` rows."""
    existing = {str(r[0]): r for r in target_columns}
    change = SchemaChange(types={c.name: column_type(c) for c in plan.columns})
    for c in plan.columns:
        row = existing.get(c.target)
        if row is None:
            change.add.append(c)
            continue
        data_type = str(row[1]).upper()
        want = family(column_type(c))
        if data_type != want:
            change.conflicts.append(
                f"column {c.name!r} is {data_type} in Snowflake but MySQL now has a type that maps to "
                f"{column_type(c)}; this cannot be changed in place: copy the table in full (mode 'full')"
            )
            change.conflicting.append((c.name, data_type))
            continue
        m = _NUMBER.fullmatch(column_type(c))
        if m and row[2] is not None:
            p, s = int(m.group(1)), int(m.group(2))
            p0, s0 = int(row[2]), int(row[3] or 0)
            if s != s0:
                change.conflicts.append(
                    f"column {c.name!r} changed scale from {s0} to {s}, which Snowflake cannot alter in place; "
                    "copy the table in full (mode 'full')"
                )
                change.conflicting.append((c.name, f"NUMBER({p0},{s0})"))
            elif p > p0:
                change.widen.append((c, f"NUMBER({p0},{s0})"))
    # the pipeline's own columns (``_ASR_POS``, history mode's ``_ASR_VALID_FROM``...) are not MySQL's, nor
    # are columns MySQL still has that the options exclude or rename
    planned = {c.target for c in plan.columns} | set(plan.kept_by_options)
    gone = [name for name in existing if name not in planned and not name.startswith("_ASR_")]
    if plan.on_column_drop == "drop":
        change.dropped_from_target = gone
    else:
        change.kept_in_target = gone
    return change


def alter_statements(plan: TablePlan, change: SchemaChange) -> list[str]:
    table = q(plan.target_table)
    stmts = [f"ALTER TABLE {table} ADD COLUMN {q(c.target)} {column_type(c)}" for c in change.add]
    stmts += [f"ALTER TABLE {table} ALTER COLUMN {q(c.target)} SET DATA TYPE {column_type(c)}" for c, _ in change.widen]
    # Snowflake: ALTER TABLE ... DROP [COLUMN] [IF EXISTS] <col> (docs/architecture.md, assumptions): IF EXISTS
    # makes a statement repeated after a crash a no-op
    stmts += [f"ALTER TABLE {table} DROP COLUMN IF EXISTS {q(name)}" for name in change.dropped_from_target]
    return stmts


def renamed_in_target(plan: TablePlan, existing: list[tuple[Any, ...]], change: SchemaChange) -> tuple[str, str] | None:
    """``(old, new)`` target names when the target's columns are the plan's but for one, at the same
    place and of the same type family, whose name differs: a rename, or a column dropped and another
    added in its place, which ``information_schema`` alone cannot tell apart."""
    if len(change.add) != 1 or len(change.gone) != 1:
        return None
    new, old = change.add[0], change.gone[0]
    mine = [str(r[0]) for r in existing if not str(r[0]).startswith("_ASR_")]
    if mine != [old if c.target == new.target else c.target for c in plan.columns]:
        return None
    row = next(r for r in existing if str(r[0]) == old)
    return (old, new.target) if str(row[1]).upper() == family(column_type(new)) else None


def rename_statement(table: str, old: str, new: str) -> str:
    """Snowflake's ``ALTER TABLE <t> RENAME COLUMN <old> TO <new>`` (docs/architecture.md, assumptions)."""
    return f"ALTER TABLE {q(table)} RENAME COLUMN {q(old)} TO {q(new)}"


_INT_RANK = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "bigint": 5}
_TEXT_RANK = {"tinytext": 1, "text": 2, "mediumtext": 3}  # all a VARCHAR without a length in Snowflake
_BLOB_RANK = {"tinyblob": 1, "blob": 2}  # both a BINARY without a length
_SIZED = ("varchar", "char", "varbinary")
_COLUMN_TYPE = re.compile(r"^(?P<base>[a-z]+)(?:\((?P<args>[^)]*)\))?(?P<flags>( [a-z]+)*)$")


def widens_losslessly(old: str, new: str) -> bool:
    """Whether MySQL's ``COLUMN_TYPE`` ``old`` changing to ``new`` keeps every value as it was (its text
    and its Snowflake column, which evolution widens where needed): a bigger integer of the same
    signedness (or a signed one strictly bigger than an unsigned one), a longer VARCHAR, CHAR or
    VARBINARY, a bigger TEXT or BLOB (or a VARCHAR/VARBINARY becoming one), a DECIMAL with more digits
    and the same scale, an ENUM or SET with members added at the end. Anything else may have changed
    the rows MySQL rewrote, which no binlog event carries."""
    old, new = old.lower().strip(), new.lower().strip()
    if old == new:
        return True
    for kind in ("enum(", "set("):  # members appended: each old value keeps its name (and its number)
        if old.startswith(kind) and new.startswith(kind):
            return new.startswith(old[:-1] + ",") and old.endswith(")") and new.endswith(")")
    a, b = _COLUMN_TYPE.match(old), _COLUMN_TYPE.match(new)
    if a is None or b is None:
        return False
    base_a, base_b = a.group("base"), b.group("base")
    flags_a, flags_b = set(a.group("flags").split()), set(b.group("flags").split())
    if "zerofill" in flags_a | flags_b:
        return False  # the padded text depends on the display width
    if base_a in _INT_RANK and base_b in _INT_RANK:
        ra, rb = _INT_RANK[base_a], _INT_RANK[base_b]
        if ("unsigned" in flags_a) == ("unsigned" in flags_b):
            return rb >= ra
        return "unsigned" in flags_a and rb > ra
    if flags_a != flags_b:
        return False
    args_a, args_b = a.group("args") or "", b.group("args") or ""
    if base_a in ("decimal", "numeric") and base_b in ("decimal", "numeric"):
        (pa, _, sa), (pb, _, sb) = args_a.partition(","), args_b.partition(",")
        return sa.strip() == sb.strip() and int(pb) >= int(pa)
    if base_a == base_b and base_a in _SIZED:
        return int(args_b) >= int(args_a)
    if base_b in _TEXT_RANK:
        return (base_a in _TEXT_RANK and _TEXT_RANK[base_b] >= _TEXT_RANK[base_a]) or (
            base_a == "varchar" and _TEXT_RANK[base_b] >= _TEXT_RANK["text"]
        )
    if base_b in _BLOB_RANK:
        return (base_a in _BLOB_RANK and _BLOB_RANK[base_b] >= _BLOB_RANK[base_a]) or (
            base_a == "varbinary" and _BLOB_RANK[base_b] >= _BLOB_RANK["blob"]
        )
    return False


def add_version_statement(table: str, column: Column) -> str:
    """Snowflake's ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` (docs/architecture.md, assumptions): the
    new version's column, NULL in every existing row until it is filled; a repeat is a no-op."""
    return f"ALTER TABLE {q(table)} ADD COLUMN IF NOT EXISTS {q(column.target)} {column_type(column)}"
