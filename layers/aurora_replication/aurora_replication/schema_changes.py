"""Schema changes, whatever the warehouse: what a comparison of the plan with the target found
(``SchemaChange``: columns to add, to widen, gone from MySQL, conflicting), and the records of each
change kept in the table's catalog item (``schema_changes``), with the names a column's new version gets.

A warehouse compares the plan with its table and says how to change it (``Warehouse.schema_diff``,
``Warehouse.evolve``: Snowflake's in ``target/snowflake/evolution.py``); what is recorded of a change,
and when it counts as recorded, is the pipeline's, the same for every warehouse. This module sits low
(beside ``models``) so that both the warehouse's folder, whose comparison returns a ``SchemaChange``, and
the pipeline, which records the changes, use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aurora_replication.models import Column, TablePlan

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
    MySQL (``pipeline/modes/cdc/reader.py``, ``to_fill``)."""
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
