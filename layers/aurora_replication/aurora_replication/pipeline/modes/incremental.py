"""Incremental: the rows changed since the stored watermark, merged into the target on the key.

Selection: a chunk reads, in its own snapshot, the rows of its key range with
``watermark > window_from`` (the stored watermark less ``WATERMARK_OVERLAP_SECONDS``), with no
upper bound: whatever changed up to its snapshot. Validation: those rows in the load table against
the count and checksum of the same selection in the same snapshot. Commit: one MERGE of exactly the
validated attempts (a late duplicate's rows are not among them), then a check that the target's
rows with those keys equal what was merged. Watermark: ``window_to``, the ``MAX(watermark)`` read
at planning, before any chunk's snapshot, so a row changed after some chunk's snapshot has a
watermark above it (less the overlap for late commits) and the next run's window holds it.
Deletes are not seen here: a reconcile run removes them.
"""

from __future__ import annotations

from typing import Any

from aurora_replication import checksums
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import ChunkMessage
from aurora_replication.pipeline.modes.base import (
    Commit,
    CommitMismatch,
    SyncMode,
    Window,
    check_not_null,
    history_commit,
)


class Incremental(SyncMode):
    commit_step = "merge"
    name = "incremental"
    reads_window = True
    idle_when_unchanged = True

    def selection(self, message: ChunkMessage) -> Window | None:
        return (message.window_from, None)

    def message_window(self, window: Window | None) -> Window | None:
        return window

    def commit(self, c: Commit) -> dict[str, Any]:
        if c.plan.history:
            c.target.ensure_history_table(c.plan)
        else:
            c.target.ensure_target_table(c.plan)
        audited: dict[str, Any] = {}
        if c.audit_from is not None:  # the rolling audit's slice: what the target lacks, before the MERGE heals it
            differing = c.target.audit_differences(c.plan, c.load_table, c.attempts, c.audit_from, c.window_from)
            audited["audit_differences"] = differing
        if c.plan.history:  # versions, not a MERGE on the key (``base.history_commit``)
            versions = history_commit(c, whole_table=False)
            check_not_null(c)
            return {**versions, **audited}
        c.target.merge_validated(c.plan, c.load_table, c.attempts)
        c.fault("merged", c.message)
        check_not_null(c)
        audited["table_rows"] = c.target.table_rows(c.plan)
        if c.plan.transform:
            return audited
        merged = c.target.merged_checksum(c.plan, c.load_table, c.attempts)
        expected = c.expected
        if checksums.checksum_columns(c.plan, json_text=True) != checksums.checksum_columns(c.plan):
            # the target holds JSON as VARIANT, which the in-database checksum leaves out: compare it
            # with the validated rows without their JSON text (they equal their snapshots with it), as
            # Snowflake summed them when each attempt loaded (the ledger)
            if c.expected_no_json is not None:
                expected = c.expected_no_json
            else:
                by_chunk = c.target.checksums_of_attempts(c.plan, c.load_table, c.attempts, json_text=False)
                expected = checksums.add_checksums(list(by_chunk.values()))
        if merged != expected:
            raise CommitMismatch(
                f"after the MERGE the target's rows with the copied keys hold {merged[0]} rows, checksum "
                f"{merged[1]}, where the validated chunks hold {expected[0]} rows, checksum {expected[1]}: "
                f"the target table {c.plan.target_table!r} was changed by something else, or its column types "
                "no longer hold the values; compare it with `replicate validate`, or run a full copy"
            )
        return {"merged_rows": merged[0], **audited}

    def watermark(self, table_state: TableItem) -> str | None:
        value = table_state.get("window_to")
        return None if value is None else str(value)
