"""The rolling audit: each incremental run re-verifies a slice of the already-published table, so the
whole target is compared with the source within ``AUDIT_PERIOD_SECONDS`` and drift made behind the
pipeline's back (rows deleted or values edited in Snowflake) is found and healed.

A slice is a contiguous key range after the table's audit cursor (its catalog item), cut into chunks
that read *every* row of their range (no watermark window) in their own snapshot, as any chunk does:
they load, are validated against their snapshots, and are merged with the window's chunks. Before the
MERGE the finaliser counts the audited rows the target does not hold as they are
(``target.sql.audit_differences``: rows changed since the last run, whose watermark is above the
window's start, are lag and not counted); the MERGE then puts them right, and the run's summary, the
catalog and the ``AuditDifferences`` metric say how many there were. When the table is published the
cursor moves to the slice's end (conditionally: a stale or duplicate finaliser cannot move it twice),
and a slice that reached the end of the table completes a cycle: ``verified_at`` becomes the time the
cycle started. A full copy verifies the whole table at once and starts a new cycle.

How much a run audits: the share of the table's rows (the ledger's count) that the time since the last
slice is of the period, taken once it is at least ``AUDIT_MIN_ROWS`` (or the period has passed: small
tables are audited whole, once a period) and at most ``AUDIT_MAX_ROWS``. The slice's key range is
found by one index walk from the cursor (``LIMIT 1 OFFSET rows``), so the source reads the slice's
rows twice (walk and chunks); docs/cost.md states the cost per run.

The slice joins the run's window chunks without overlapping them (the MERGE needs one row per key): a
window of one chunk over the whole key space (the usual scheduled run, a few changed rows) is cut around
the slice; a window of several chunks (many rows changed) is planned again as two ranges, before and
after the slice, each cut by MySQL as chunks are (``source.bounds.split_range``). Where those ranges
cannot be cut into chunks of about the window's size, the run takes no slice and the time counts
towards the next run's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aurora_replication.config import Settings
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.keys import Bounds
from aurora_replication.models import TablePlan
from aurora_replication.source import bounds as source_bounds


@dataclass(frozen=True)
class AuditSlice:
    """The key range ``cursor_from < key <= cursor_to`` a run audits, as chunks (``ranges``)."""

    cursor_from: str | None  # JSON text of the key the slice starts after (None: the table's start)
    cursor_to: str | None  # JSON text of the slice's last key (None: to the table's end: a cycle ends)
    ranges: list[Bounds]
    rows: int  # rows the slice was planned to hold
    cycle_started_at: float

    def fields(self, first_chunk: int) -> dict[str, Any]:
        """What the run's TABLE item records of the slice, for the finaliser."""
        return {
            "audit_from": first_chunk,
            "audit_cursor_from": self.cursor_from,
            "audit_cursor_to": self.cursor_to,
            "audit_planned_rows": self.rows,
            "audit_cycle_at": str(round(self.cycle_started_at, 3)),
        }


def due_rows(table_rows: int, elapsed: float, period: int, min_rows: int, max_rows: int) -> int:
    """How many rows a run audits now (0: none yet). ``elapsed``: seconds since the last slice."""
    if period <= 0 or table_rows <= 0 or elapsed <= 0:
        return 0
    share = math.ceil(table_rows * min(elapsed, period) / period)
    if elapsed >= period:
        rows = max(share, min_rows)
    elif share >= min_rows:
        rows = share
    else:
        return 0
    return min(rows, max_rows)


def last_audit(entry: CatalogNote) -> float | None:
    """When the table was last audited or verified whole (epoch seconds), from its catalog item."""
    for key in ("audit_at", "verified_at", "table_rows_at"):
        if entry.get(key) is not None:
            return float(entry[key])
    return None


def plan_slice(
    conn: Any, plan: TablePlan, entry: CatalogNote, settings: Settings, chunk_rows: int, now: float | None = None
) -> AuditSlice | None:
    """The slice this run audits, or None (no key, no ledger count, the audit off, or not due)."""
    now = time.time() if now is None else now
    if not plan.key or entry.get("table_rows") is None:
        return None
    last = last_audit(entry)
    elapsed = float(settings.audit_period_seconds) if last is None else now - last
    rows = due_rows(
        int(entry["table_rows"]),
        elapsed,
        settings.audit_period_seconds,
        settings.audit_min_rows,
        settings.audit_max_rows,
    )
    if rows <= 0:
        return None
    cursor_from = entry.get("audit_cursor")
    lower = json.loads(cursor_from) if cursor_from else None
    upper = source_bounds.key_after(conn, plan.table, plan.key, lower, rows)
    pieces = max(1, math.ceil(rows / max(chunk_rows, 1)))
    ranges = source_bounds.split_range(conn, plan.table, plan.key, lower, upper, pieces, max(1, chunk_rows // 2))
    cycle = entry.get("audit_cycle_at") if cursor_from else None
    return AuditSlice(
        cursor_from=cursor_from if cursor_from else None,
        cursor_to=json.dumps(upper) if upper is not None else None,
        ranges=ranges,
        rows=rows,
        cycle_started_at=float(cycle) if cycle is not None else now,
    )


Recut = Callable[[Any, Any, int], list[Bounds]]


def with_slice(bounds: list[Bounds], audit: AuditSlice, recut: Recut | None = None) -> tuple[list[Bounds], int] | None:
    """The run's chunks with the slice's: the window's chunks kept out of the slice's range, then the
    slice's chunks (ids from the returned first audited id on). A window of one chunk over the whole key
    space is cut around the slice; a window of several chunks is planned again before and after the slice
    by ``recut(lower, upper, pieces)`` (MySQL's cuts). None: no slice this run (an empty table, no
    ``recut`` for several chunks, or a side that ``recut`` could not cut into chunks)."""
    lower = json.loads(audit.cursor_from) if audit.cursor_from else None
    upper = json.loads(audit.cursor_to) if audit.cursor_to else None
    if bounds == [(None, None)]:
        window: list[Bounds] = []
        if lower is not None:
            window.append((None, lower))
        if upper is not None:
            window.append((upper, None))
        return [*window, *audit.ranges], len(window)
    if len(bounds) < 2 or recut is None:
        return None
    before = recut(None, lower, len(bounds)) if lower is not None else []
    after = recut(upper, None, len(bounds)) if upper is not None else []
    if len(bounds) > 2 and any(len(side) == 1 for side in (before, after)):
        return None  # a side left whole would be one chunk the size of many of the window's
    return [*before, *after, *audit.ranges], len(before) + len(after)
