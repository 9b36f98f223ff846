"""Schema evolution of an incrementally loaded target: add new columns, widen numbers, keep dropped ones.

A full copy recreates the target from the plan, so this only matters before MERGEs into an
existing table. Changes that cannot be applied in place (a text column becoming a number, a
different DECIMAL scale) are conflicts: the table stops with a clear error, or in ``auto`` mode
is copied in full instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan

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

# the kinds of schema change recorded in the table's catalog item (``schema_changes``)
DROPPED = "column dropped"
TRUNCATED = "truncated"  # cdc: a TRUNCATE in the binlog, followed by emptying the target at its position


@dataclass
class SchemaChange:
    add: list[Column] = field(default_factory=list)
    widen: list[tuple[Column, str]] = field(default_factory=list)  # (column, old type)
    kept_in_target: list[str] = field(default_factory=list)  # dropped in MySQL, kept (NULL for new rows)
    conflicts: list[str] = field(default_factory=list)

    def describe(self, table: str) -> list[str]:
        notes = [
            f"table {table!r}: column {c.name!r} added in MySQL; adding {c.target!r} {c.snowflake_type}"
            for c in self.add
        ]
        notes += [
            f"table {table!r}: column {c.name!r} widened from {old} to {c.snowflake_type}" for c, old in self.widen
        ]
        notes += [
            f"table {table!r}: column {name!r} no longer exists in MySQL; kept in Snowflake, NULL for new rows"
            for name in self.kept_in_target
        ]
        return notes


def family(snowflake_type: str) -> str:
    return _FAMILY[snowflake_type.split("(")[0]]


def diff(plan: TablePlan, target_columns: list[tuple[Any, ...]]) -> SchemaChange:
    """Compare the plan with the target's ``(name, data_type, precision, scale)`` rows."""
    existing = {str(r[0]): r for r in target_columns}
    change = SchemaChange()
    for c in plan.columns:
        row = existing.get(c.target)
        if row is None:
            change.add.append(c)
            continue
        data_type = str(row[1]).upper()
        want = family(c.snowflake_type)
        if data_type != want:
            change.conflicts.append(
                f"column {c.name!r} is {data_type} in Snowflake but MySQL now has a type that maps to "
                f"{c.snowflake_type}; this cannot be changed in place: copy the table in full (mode 'full')"
            )
            continue
        m = _NUMBER.fullmatch(c.snowflake_type)
        if m and row[2] is not None:
            p, s = int(m.group(1)), int(m.group(2))
            p0, s0 = int(row[2]), int(row[3] or 0)
            if s != s0:
                change.conflicts.append(
                    f"column {c.name!r} changed scale from {s0} to {s}, which Snowflake cannot alter in place; "
                    "copy the table in full (mode 'full')"
                )
            elif p > p0:
                change.widen.append((c, f"NUMBER({p0},{s0})"))
    planned = {c.target for c in plan.columns}
    # the pipeline's own columns (``_ASR_POS``, history mode's ``_ASR_VALID_FROM``...) are not MySQL's
    change.kept_in_target = [name for name in existing if name not in planned and not name.startswith("_ASR_")]
    return change


def alter_statements(plan: TablePlan, change: SchemaChange) -> list[str]:
    table = q(plan.target_table)
    stmts = [f"ALTER TABLE {table} ADD COLUMN {q(c.target)} {c.snowflake_type}" for c in change.add]
    stmts += [
        f"ALTER TABLE {table} ALTER COLUMN {q(c.target)} SET DATA TYPE {c.snowflake_type}" for c, _ in change.widen
    ]
    return stmts


def unrecorded_drops(change: SchemaChange, entry: dict[str, Any]) -> list[str]:
    """The target columns kept after a drop in MySQL that the table's catalog ``entry`` has not recorded
    yet: each drop is recorded once, by the run that first saw it."""
    seen = {str(r.get("column")) for r in entry.get("schema_changes") or [] if r.get("change") == DROPPED}
    return [name for name in change.kept_in_target if name not in seen]


def drop_records(columns: list[str], run_id: str, at: int) -> list[dict[str, Any]]:
    """What is recorded of columns dropped in MySQL and kept in the target: what, when, which run."""
    return [
        {
            "change": DROPPED,
            "column": name,
            "at": at,
            "run": run_id,
            "detail": "dropped in MySQL; kept in the target, NULL for rows written after the drop",
        }
        for name in columns
    ]
