"""Full refresh: every row of every chunk, each chunk read in its own snapshot, published at once.

Commit: ``CREATE OR REPLACE TABLE target COPY GRANTS AS SELECT`` the validated attempts, one
atomic step (readers never see a half-loaded table). Watermark: the ``MAX(watermark)`` read at
planning, before any chunk's snapshot: every row changed after a chunk's snapshot was changed after
planning, so (with ``WATERMARK_OVERLAP_SECONDS`` for transactions that commit late) the next
incremental window, which starts at that watermark less the overlap, sees it.
"""

from __future__ import annotations

from typing import Any

from aurora_replication.pipeline.modes.base import Commit, SyncMode


class Full(SyncMode):
    commit_step = "publish"
    name = "full"

    def commit(self, c: Commit) -> dict[str, Any]:
        c.target.publish(c.plan, c.load_table, c.attempts_table, c.token)
        c.fault("published", c.message)
        return {}

    def watermark(self, table_state: dict[str, Any]) -> str | None:
        if not table_state.get("plan", {}).get("watermark"):
            return None
        value = table_state.get("window_to")
        return None if value is None else str(value)
