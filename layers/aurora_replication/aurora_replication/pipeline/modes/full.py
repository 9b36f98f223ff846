"""Full refresh: every row of every chunk, each chunk read in its own snapshot, published at once.

Commit: the target's rows are replaced by the validated attempts with ``INSERT OVERWRITE`` in one
transaction, so readers see the old rows or the new ones, a failure leaves the old ones, and the
table object survives with its grants, comment, clustering key, tags, masking and row-access
policies, streams and time travel. A missing target is created first (from the plan); columns
added in MySQL are added and widened numbers widened first (``Warehouse.schema_diff``); a column
dropped in MySQL stays, NULL in every row. Only a type Snowflake cannot change in place (text
becoming a number, another DECIMAL scale) makes the commit recreate the table
(``CREATE OR REPLACE ... COPY GRANTS``: grants kept, the rest not), and the run's summary says so.

Watermark: the ``MAX(watermark)`` read at planning, before any chunk's snapshot: every row changed
after a chunk's snapshot was changed after planning, so (with ``WATERMARK_OVERLAP_SECONDS`` for
transactions that commit late) the next incremental window, which starts at that watermark less the
overlap, sees it.
"""

from __future__ import annotations

from typing import Any

from aurora_replication import schema_changes
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import TablePlan
from aurora_replication.pipeline.modes.base import Commit, CommitMismatch, SyncMode, history_commit


class Full(SyncMode):
    commit_step = "publish"
    name = "full"
    verifies_whole_table = True
    commit_bounded_by_load = True  # INSERT OVERWRITE (or the copy of a recreate) of the validated rows
    replaces_target = True

    def kept_detail(self, plan: TablePlan) -> str:
        # a copy writes every row again: a kept column is NULL in all of them (a history table keeps its versions)
        return schema_changes.KEPT_DETAIL if plan.history else schema_changes.KEPT_BY_COPY

    def commit(self, c: Commit) -> dict[str, Any]:
        if c.plan.history:
            return history_commit(c, whole_table=True)
        existing = c.target.columns(c.plan.target_table)
        mismatch = c.target.shape_mismatch(c.plan, existing)
        if mismatch:  # an overwrite would drop every version, or other databases' rows
            raise CommitMismatch(mismatch)
        if not existing:
            c.target.ensure_target_table(c.plan)
            change = schema_changes.SchemaChange()
        else:
            change = c.target.schema_diff(c.plan, existing)
        result: dict[str, Any] = {}
        if change.conflicts and c.plan.merged:  # recreating the shared table would drop the other databases' rows
            raise CommitMismatch(
                f"table {c.plan.table!r}: its merged target {c.plan.target_table!r} would have to be recreated ("
                + "; ".join(change.conflicts)
                + "), which would drop the other databases' rows: change the column in Snowflake by hand (every "
                "database's table alike), or rename the merged table and copy every database again"
            )
        if change.conflicts:
            c.target.publish(c.plan, c.load_table, c.attempts, c.loaded_rows)
            result["publish"] = (
                "target recreated (CREATE OR REPLACE ... COPY GRANTS: grants kept; comment, clustering key, tags, "
                "policies and streams not): " + "; ".join(change.conflicts)
            )
        else:
            c.target.alter(c.target.alter_statements(c.plan, change))  # DDL: before the transaction
            if c.plan.merged:  # the database's rows only, in one MERGE (``Warehouse.replace_database_rows``)
                dropped = change.kept_in_target  # NULL in the database's rows, as an overwrite leaves them
                c.target.replace_database_rows(c.plan, c.load_table, c.attempts, c.loaded_rows, dropped)
                result["publish"] = f"rows of database {c.plan.source_database!r} replaced in the merged table"
                own = c.target.table_rows(c.plan)  # no overwrite counted them: count the database's rows
                if own != c.loaded_rows:
                    raise CommitMismatch(
                        f"after replacing database {c.plan.source_database!r}'s rows the merged table "
                        f"{c.plan.target_table!r} holds {own:,} of them where the validated chunks hold "
                        f"{c.loaded_rows:,}: it was changed by something else; compare it with `replicate validate`"
                    )
            else:
                c.target.overwrite(c.plan, c.load_table, c.attempts, c.loaded_rows)
                result["publish"] = "rows overwritten in place"
            notes = change.describe(c.plan.target_table)
            if notes:
                result["schema_notes"] = notes
            if change.gone:  # recorded by the finaliser, once per column (``schema_changes.unrecorded_drops``)
                result[schema_changes.DROPPED_FIELD] = change.gone_fields()
        c.fault("published", c.message)
        result["table_rows"] = c.loaded_rows  # what overwrite and publish counted in the target
        return result

    def watermark(self, table_state: TableItem) -> str | None:
        if not table_state.get("plan", {}).get("watermark"):
            return None
        value = table_state.get("window_to")
        return None if value is None else str(value)
