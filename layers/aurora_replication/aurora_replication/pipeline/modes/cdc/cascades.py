"""Foreign keys that change a table's rows inside MySQL, which the binlog does not show.

A foreign key whose ``ON DELETE`` or ``ON UPDATE`` action is ``CASCADE``, ``SET NULL`` or ``SET DEFAULT``
changes the child table's rows when a parent row is deleted or its referenced key is updated. InnoDB
carries that out itself, below the layer that writes the binlog, so only the parent's change is in it:
the child's rows change with no row event of their own (MySQL 8.0 and 8.4, so Aurora MySQL 3; MariaDB;
docs/cdc.md#foreign-keys-that-cascade has the references). Applying the binlog would leave the child's
target with rows MySQL deleted or changed, and report it published.

So a cdc window watches the parents of every such child it reads (``TableSpec.watch_from``): when a parent
deleted a row (for an ``ON DELETE`` action) or changed a referenced key (for an ``ON UPDATE`` action:
an update of the parent's key, or any update where the foreign key is on other columns) after the child's
position, the child's window is not applied. It is declined with the reason, its position stays, and its
next run copies it again (a new initial copy: ``recopy`` in its cdc state). A child whose parent is not
read in the same window (not named in the request, or not streaming this window) is declined too:
nothing could show that no cascade happened.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aurora_replication.source.binlog import Position, TableSpec, Window
from aurora_replication.source.statements import query

# the referential actions that change the child's rows in MySQL (RESTRICT and NO ACTION refuse instead)
CHANGING = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


@dataclass(frozen=True)
class Cascade:
    """A foreign key of a child table whose action changes the child's rows when the parent changes."""

    name: str
    parent_database: str
    parent: str
    parent_columns: tuple[str, ...]
    on_delete: str
    on_update: str

    def describe(self, child: str) -> str:
        actions = [f"ON DELETE {self.on_delete}"] if self.on_delete in CHANGING else []
        actions += [f"ON UPDATE {self.on_update}"] if self.on_update in CHANGING else []
        return f"the foreign key {self.name!r} of {child!r} on {self.parent!r} ({', '.join(actions)})"


def cascades_in(conn: Any, database: str, table: str | None = None) -> dict[str, list[Cascade]]:
    """The foreign keys of ``database``'s tables (of ``table`` alone, given one) whose action changes their
    rows (``CHANGING``), by child table: one ``information_schema`` query, once per window."""
    rows = query(
        conn,
        "SELECT rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, "
        "k.REFERENCED_COLUMN_NAME, rc.DELETE_RULE, rc.UPDATE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS rc "
        "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA "
        "AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME "
        "WHERE rc.CONSTRAINT_SCHEMA = %s AND (%s IS NULL OR rc.TABLE_NAME = %s) "
        "AND (rc.DELETE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT') "
        "OR rc.UPDATE_RULE IN ('CASCADE', 'SET NULL', 'SET DEFAULT')) "
        "ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        [database, table, table],
    )
    found: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    columns: dict[tuple[str, str], list[str]] = {}
    for child, name, parent_database, parent, column, on_delete, on_update in rows:
        fk = (str(child), str(name))
        found.setdefault(fk, (str(parent_database), str(parent), str(on_delete).upper(), str(on_update).upper()))
        columns.setdefault(fk, []).append(str(column))
    out: dict[str, list[Cascade]] = {}
    for (child, name), (db, parent, d, u) in found.items():
        out.setdefault(child, []).append(Cascade(name, db, parent, tuple(columns[(child, name)]), d, u))
    return out


@dataclass(frozen=True)
class Child:
    """A table of the window with cascades: its label, its start, and its foreign keys' parents' labels."""

    label: str
    table: str
    start: Position
    cascades: list[tuple[Cascade, str]]  # each foreign key, with its parent's label in the window


def watch(specs: dict[str, TableSpec], children: list[Child]) -> tuple[dict[str, TableSpec], dict[str, str]]:
    """``specs`` with each parent of ``children`` watched from its earliest child's start, and the children
    whose parent the window does not read (label: the reason they are declined)."""
    watch_from: dict[str, Position] = {}
    unread: dict[str, str] = {}
    for child in children:
        for cascade, parent in child.cascades:
            if parent not in specs:
                unread.setdefault(
                    child.label,
                    f"table {child.table!r}: {cascade.describe(child.table)} changes its rows inside MySQL, which "
                    f"the binlog does not show, and {cascade.parent!r} is not read in this window to tell whether "
                    f"it did; its position stays: name {cascade.parent!r} in the same cdc request (a table that "
                    "waits for its initial copy or for the next window holds it back until then)",
                )
                continue
            known = watch_from.get(parent)
            if known is None or child.start.key() < known.key():
                watch_from[parent] = child.start
    watched = {
        label: dataclasses.replace(spec, watch_from=watch_from[label]) if label in watch_from else spec
        for label, spec in specs.items()
    }
    return watched, unread


def changed_by_cascade(child: Child, specs: dict[str, TableSpec], window: Window) -> str | None:
    """Why the window may hold changes to ``child``'s rows that MySQL made by a cascade (None: it holds none):
    after the child's start, a parent deleted a row (an ``ON DELETE`` action) or changed a referenced key (an
    ``ON UPDATE`` action: its key changed, or, for a foreign key on other columns, any update)."""
    start = child.start.key()
    for cascade, parent in child.cascades:
        deleted, rekeyed = window.deleted.get(parent, ""), window.rekeyed.get(parent, "")
        on_key = set(cascade.parent_columns) <= set(specs[parent].key)
        deletes = cascade.on_delete in CHANGING and deleted > start
        # an update of the referenced columns: of the parent's key, a key change; of other columns, any update
        updated = rekeyed if on_key else window.updated.get(parent, "")
        updates = cascade.on_update in CHANGING and updated > start
        if deletes or updates:
            what = "deleted rows or changed their key" if on_key else "deleted or updated rows"
            return (
                f"table {child.table!r}: {cascade.describe(child.table)} changes its rows inside MySQL, and "
                f"{cascade.parent!r} {what} in this window: MySQL does not write such cascaded changes to the binlog, "
                f"so this window cannot bring {child.table!r} up to date. It is not applied (its position stays), "
                f"and the next cdc run copies {child.table!r} again. If {cascade.parent!r} changes so every window, "
                f"replicate {child.table!r} with mode full or incremental (and reconcile), or make the foreign key "
                "RESTRICT or NO ACTION and delete or update the child rows in the statements (then they are in the "
                "binlog)"
            )
    return None
