"""The whole-target check every run makes first: does each target table still hold what the ledger
says the pipeline left in it?

After each commit the finaliser notes in the table's catalog item how many rows the target held
(``table_rows``, with the run that left them). Before a run plans a table it compares that with the
target now: whether the table exists, and its row count (Snowflake answers ``COUNT(*)`` of a whole
table from metadata, so the check costs no warehouse scan; a hundred tables go in one statement).
A merged table (``database_mapping: merge``) is counted by its database's rows, a scan of the filter.
A table dropped, truncated, or with rows deleted or inserted by something else is *drift*: the
scheduler re-copies it (``auto``: a full copy; cdc: a new initial copy) or, where the request named a
mode that cannot heal it (``incremental``, ``reconcile``), fails the table naming what differs. It is
never merged into and reported OK.

What the count cannot see (values edited in place, as many rows deleted as inserted) the rolling audit
(``pipeline/audit.py``) finds within ``AUDIT_PERIOD_SECONDS``. docs/exactness.md has the guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.keys import Scope


@dataclass(frozen=True)
class Drift:
    """A target table that does not hold what the ledger says it should."""

    table: str
    target_table: str
    expected_rows: int
    found_rows: int | None  # None: the table is missing
    since_run: str

    def describe(self) -> str:
        found = "is missing" if self.found_rows is None else f"has {self.found_rows:,} rows"
        return (
            f"target table {self.target_table!r} {found} where the ledger expects {self.expected_rows:,} "
            f"(left by run {self.since_run}): it was changed outside the pipeline"
        )


def compare(table: str, target_table: str, entry: CatalogNote | None, found: int | None) -> Drift | None:
    """The drift of one table from its catalog ``entry`` and the rows ``found`` in its target (None:
    missing). No ledger count (never published, or published by a version that did not note it):
    nothing to compare, no drift."""
    if not entry or entry.get("table_rows") is None:
        return None
    expected = int(entry["table_rows"])
    if found == expected:
        return None
    return Drift(table, target_table, expected, found, str(entry.get("table_rows_run", "?")))


class TargetFacts:
    """The catalog items and target row counts of a run's tables, read in groups as planning reaches
    them (``GROUP`` tables at a time: one BatchGetItem, one ``information_schema`` query and one count
    statement per group), so a run of 10,000 tables does not wait for all of them before planning the
    first, nor pay a statement per table."""

    GROUP = 100

    def __init__(self, state: Any, target: Any, names: list[str], scope: Scope) -> None:
        self.state = state
        self.target = target  # a callable returning the run's ``target.client.Target`` (opened lazily)
        self.names = names
        self.scope = scope
        self.entries: dict[str, CatalogNote] = {}
        self.rows: dict[str, int | None] = {}
        self.read: set[str] = set()

    def _read_from(self, table: str) -> None:
        start = self.names.index(table) if table in self.names else 0
        group = [t for t in self.names[start : start + self.GROUP] if t not in self.read] or [table]
        self.read.update(group)
        entries = self.state.catalog_entries([self.scope.key(t) for t in group])
        self.entries.update(entries)
        counted = [t for t in group if entries.get(t, {}).get("table_rows") is not None]
        if not counted:
            return
        targets = {t: self._target_table(t) for t in counted}
        tgt = self.target()
        existing = tgt.existing_tables(list(targets.values()))
        there = [targets[t] for t in counted if targets[t] in existing]
        if self.scope.mapping == "merge":  # a merged table: the scope's database's rows (a scan of the filter)
            counts = tgt.database_row_counts(there, self.scope.source_database)
        else:
            counts = tgt.row_counts(there)
        for t in counted:
            self.rows[t] = counts.get(targets[t])

    def entry(self, table: str) -> CatalogNote:
        """The table's catalog item (empty: never catalogued)."""
        if table not in self.read:
            self._read_from(table)
        return self.entries.get(table, {})

    def _target_table(self, table: str) -> str:
        return str(self.scope.key(table).target_table)

    def drift(self, table: str) -> Drift | None:
        entry = self.entry(table)
        return compare(table, self._target_table(table), entry, self.rows.get(table))
