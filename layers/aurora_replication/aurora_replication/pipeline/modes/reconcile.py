"""Reconcile: remove from the target the rows whose key MySQL no longer has.

Selection: the key columns of every row, each chunk in its own snapshot. Validation: the keys in
the load table against the count and checksum of the keys in that snapshot. Commit: delete (or
mark, ``RECONCILE_ACTION=mark``) the target's rows whose key is not among the validated keys.

On a live table this deletes only what was deleted: the table's lease keeps every other run out
while this one runs, so every row in the target was copied by an earlier run, from a snapshot older
than this run's planning and so older than every chunk's snapshot. A target key absent from the
snapshot of the chunk whose range holds it was therefore deleted in MySQL before that snapshot.
A row inserted after a chunk's snapshot is in neither the snapshot nor the target, and is not
touched; keys in the snapshot that the target lacks are counted (``keys_missing_in_target``) as lag.
Keys are matched by equality in Snowflake (bytes), so a text key whose spelling changed only in
case or trailing spaces (one key to MySQL's collation) is replaced, not duplicated.
"""

from __future__ import annotations

from typing import Any

from aurora_replication.models import TablePlan
from aurora_replication.pipeline.modes.base import Commit, SyncMode


class Reconcile(SyncMode):
    commit_step = "reconcile"
    name = "reconcile"
    needs_target = True

    def unit_plan(self, plan: TablePlan) -> TablePlan:
        return plan.keys_only()

    def commit(self, c: Commit) -> dict[str, Any]:
        action = c.settings.reconcile_action
        removed = c.target.reconcile(c.plan, c.load_table, c.attempts, action, c.loaded_rows)
        c.fault("reconciled", c.message)
        missing = c.target.keys_missing(c.plan, c.load_table, c.attempts)
        return {
            "reconciled_rows": removed,
            "reconcile_action": action,
            "keys_missing_in_target": missing,
            "table_rows": c.target.table_rows(c.plan),
        }
