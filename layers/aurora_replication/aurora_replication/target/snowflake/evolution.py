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
