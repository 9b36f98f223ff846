"""Schema evolution of an incrementally loaded target: add new columns, widen numbers, keep dropped ones.

A full copy recreates the target from the plan, so this only matters before MERGEs into an
existing table. Changes that cannot be applied in place (a text column becoming a number, a
different DECIMAL scale) are conflicts: the table stops with a clear error, or in ``auto`` mode
is copied in full instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan
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

# the kinds of schema change recorded in the table's catalog item (``schema_changes``)
DROPPED = "column dropped"
TRUNCATED = "truncated"  # cdc: a TRUNCATE in the binlog, followed by emptying the target at its position
# a column MySQL declares NOT NULL now; the target column stays nullable, and no live row may hold NULL
NOT_NULL = "not null added"
NOT_NULL_DETAIL = (
    "MySQL declares the column NOT NULL now; the Snowflake column stays nullable (rows of older versions and "
    "deleted rows may hold NULL); checked: no live row of the target holds NULL in it"
)
RENAMED = "column renamed"
# cdc: a non-key column's type changed in a way that is not a lossless widening: a new target column
# ``<COL>__V<n>`` of the new type, filled from MySQL; the old one kept, frozen (``version_name``)
VERSION_ADDED = "column version added"
# cdc: a column added NOT NULL, with a default, or beside a drop: its values filled from MySQL by key
ADDED_FILLED = "column added, filled"
_VERSION = re.compile(r"^(?P<base>.+)__V(?P<n>[0-9]+)$")
# an incremental table whose largest key fell (a TRUNCATE, or its newest rows deleted): copied in full
SHRUNK = "rows gone"
# a commit's result field naming the target columns MySQL no longer has (the finaliser records them)
DROPPED_FIELD = "columns_dropped_in_source"
KEPT_DETAIL = "dropped in MySQL; kept in the target, NULL for rows written after the drop"
KEPT_BY_COPY = "dropped in MySQL; kept in the target, NULL in every row after this full copy"


@dataclass
class SchemaChange:
    add: list[Column] = field(default_factory=list)
    widen: list[tuple[Column, str]] = field(default_factory=list)  # (column, old type)
    kept_in_target: list[str] = field(default_factory=list)  # dropped in MySQL, kept (NULL for new rows)
    dropped_from_target: list[str] = field(default_factory=list)  # dropped in MySQL and, by option, in Snowflake
    conflicts: list[str] = field(default_factory=list)
    # (MySQL column, the Snowflake type it has there) of each conflict: a type that cannot change in place
    conflicting: list[tuple[str, str]] = field(default_factory=list)
    # the warehouse's type of each planned column (by MySQL name): what the records and notes name
    types: dict[str, str] = field(default_factory=dict)

    def describe(self, table: str) -> list[str]:
        notes = [
            f"table {table!r}: column {c.name!r} added in MySQL; adding {c.target!r} {self.types.get(c.name, '')}"
            for c in self.add
        ]
        notes += [
            f"table {table!r}: column {c.name!r} widened from {old} to {self.types.get(c.name, '')}"
            for c, old in self.widen
        ]
        notes += [
            f"table {table!r}: column {name!r} no longer exists in MySQL; kept in Snowflake, NULL for new rows"
            for name in self.kept_in_target
        ]
        notes += [
            f"table {table!r}: column {name!r} no longer exists in MySQL; dropped from Snowflake too "
            '("on_column_drop": "drop")'
            for name in self.dropped_from_target
        ]
        return notes

    @property
    def gone(self) -> list[str]:
        """The target columns MySQL no longer has, kept or dropped."""
        return [*self.kept_in_target, *self.dropped_from_target]

    def gone_fields(self) -> dict[str, list[str]]:
        """The columns MySQL no longer has, as a commit's result carries them to the finaliser."""
        return {"kept": list(self.kept_in_target), "dropped": list(self.dropped_from_target)}

    @classmethod
    def of_gone(cls, fields: dict[str, Any]) -> SchemaChange:
        return cls(
            kept_in_target=[str(c) for c in fields.get("kept") or []],
            dropped_from_target=[str(c) for c in fields.get("dropped") or []],
        )


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


def unrecorded_drops(change: SchemaChange, entry: Mapping[str, Any]) -> list[str]:
    """The target columns MySQL no longer has (kept, or dropped by option) that the table's catalog
    ``entry`` has not recorded yet: each drop is recorded once, by the run that first saw it."""
    seen = {str(r.get("column")) for r in entry.get("schema_changes") or [] if r.get("change") == DROPPED}
    return [name for name in change.gone if name not in seen]


DROPPED_DETAIL = 'dropped in MySQL; dropped from the target too ("on_column_drop": "drop")'


def drop_records_of(
    change: SchemaChange, entry: Mapping[str, Any], run_id: str, at: int, kept: str = KEPT_DETAIL
) -> list[dict[str, Any]]:
    """The records of ``change``'s drops not recorded yet: ``kept`` is the detail of a column kept."""
    names = unrecorded_drops(change, entry)
    return [
        *drop_records([n for n in names if n in change.kept_in_target], run_id, at, kept),
        *drop_records([n for n in names if n in change.dropped_from_target], run_id, at, DROPPED_DETAIL),
    ]


def not_null_records(columns: list[str], entry: Mapping[str, Any], at: int) -> list[dict[str, Any]]:
    """What is recorded of columns MySQL declares NOT NULL now (they were nullable where the position
    started), each once per column (``entry``: the table's catalog item)."""
    seen = {str(r.get("column")) for r in entry.get("schema_changes") or [] if r.get("change") == NOT_NULL}
    return [
        {"change": NOT_NULL, "column": name, "at": at, "run": "", "detail": NOT_NULL_DETAIL}
        for name in columns
        if name not in seen
    ]


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


def rename_record(
    old: str, new: str, old_target: str, new_target: str, at: str, when: int, run_id: str
) -> dict[str, Any]:
    """What is recorded of a column renamed in MySQL and followed in the target."""
    return {
        "change": RENAMED,
        "column": new_target,
        "at": when,
        "run": run_id,
        "detail": f"renamed in MySQL from {old!r} to {new!r} (ALTER at binlog position {at}); the Snowflake column "
        f"{old_target!r} renamed to {new_target!r}, its values kept",
    }


def guessed_rename_record(old: str, new: str, why: str, at: int) -> dict[str, Any]:
    """What is recorded of an incremental table's column renamed in the target before a full copy."""
    return {
        "change": RENAMED,
        "column": new,
        "at": at,
        "run": "",
        "detail": f"{why}: the Snowflake column {old!r} renamed to {new!r} and the table copied in full",
    }


def shrunk_record(why: str, at: int) -> dict[str, Any]:
    """What is recorded when an incremental table's rows went in a way no watermark shows (``SHRUNK``)."""
    return {"change": SHRUNK, "column": "", "at": at, "run": "", "detail": f"{why}; copied in full"}


def drop_records(columns: list[str], run_id: str, at: int, detail: str = KEPT_DETAIL) -> list[dict[str, Any]]:
    """What is recorded of columns dropped in MySQL and kept in the target: what, when, which run."""
    return [{"change": DROPPED, "column": name, "at": at, "run": run_id, "detail": detail} for name in columns]


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


def version_name(target: str, existing: set[str]) -> str:
    """The target column a new version of ``target`` gets: ``<base>__V<n>``, ``<base>`` the column's name
    without a version suffix, ``n`` the first from 2 that neither ``existing`` (the target's columns, in
    any case) nor an older version uses; the name keeps the case of ``target``."""
    m = _VERSION.match(target)
    base, n = (m.group("base"), int(m.group("n")) + 1) if m else (target, 2)
    suffix = "__v" if base.islower() else "__V"
    taken = {e.upper() for e in existing}
    while f"{base}__V{n}".upper() in taken:
        n += 1
    return f"{base}{suffix}{n}"


def version_record(
    column: str, old_type: str, new_type: str, old_target: str, new_target: str, at: int
) -> dict[str, Any]:
    """What is recorded, once, of a column given a new version (``run``: stamped when it is recorded)."""
    return {
        "change": VERSION_ADDED,
        "column": new_target,
        "at": at,
        "run": "",
        "old_type": old_type,
        "new_type": new_type,
        "detail": f"MySQL changed {column!r} from {old_type} to {new_type}, which is not a lossless widening: "
        f"its values now go to the new Snowflake column {new_target!r}, filled from MySQL by key without a "
        f"re-copy; {old_target!r} is kept, frozen with the values of the old type",
    }


def added_fill_record(column: str, definition: str, at: int) -> dict[str, Any]:
    """What is recorded, once, of a cdc column added NOT NULL, with a default or beside a drop, filled from
    MySQL (``pipeline/cdc_reader.py``, ``to_fill``)."""
    return {
        "change": ADDED_FILLED,
        "column": column,
        "at": at,
        "run": "",
        "new_type": definition,
        "detail": f"added in MySQL as {definition}: the rows no binlog event touched hold their value in MySQL "
        "only, so the new Snowflake column is filled from MySQL by key without a re-copy",
    }


def unrecorded_addition(entry: Mapping[str, Any], column: str) -> bool:
    """Whether the table's catalog ``entry`` has not recorded ``column`` added and filled yet."""
    return not any(
        r.get("change") == ADDED_FILLED and r.get("column") == column for r in entry.get("schema_changes") or []
    )


def unrecorded_version(entry: Mapping[str, Any], new_target: str) -> bool:
    """Whether the table's catalog ``entry`` has not recorded the version ``new_target`` yet."""
    return not any(
        r.get("change") == VERSION_ADDED and r.get("column") == new_target for r in entry.get("schema_changes") or []
    )


def add_version_statement(table: str, column: Column) -> str:
    """Snowflake's ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` (docs/architecture.md, assumptions): the
    new version's column, NULL in every existing row until it is filled; a repeat is a no-op."""
    return f"ALTER TABLE {q(table)} ADD COLUMN IF NOT EXISTS {q(column.target)} {column_type(column)}"


def compared_plan(plan: TablePlan, versions: dict[str, Any]) -> tuple[TablePlan, list[str]]:
    """The plan a comparison with MySQL uses (``replicate validate``): each versioned column read from its
    version's target once it is filled; a version still filling left out (its rows hold NULL until their
    page is applied), named in the returned list so that the report says it is not compared yet."""
    filling = [n for n, v in versions.items() if not v.get("filled") and any(c.name == n for c in plan.columns)]
    columns = [
        c.model_copy(update={"target": str(versions[c.name]["target"])}) if c.name in versions else c
        for c in plan.columns
        if c.name not in filling
    ]
    return plan.model_copy(update={"columns": columns}), filling
