"""The chunk messages of a table: built once by the scheduler, again for a heal round or a resume."""

from __future__ import annotations

from collections.abc import Iterable

from aurora_replication.ledger.keys import Bounds
from aurora_replication.models import ChunkMessage, TablePlan
from aurora_replication.pipeline import modes


def chunk_messages(
    run_id: str,
    plan: TablePlan,
    bounds: list[Bounds],
    window: tuple[str | None, str | None] | None,
    ids: Iterable[int] | None = None,
    round: int = 0,
    audit_from: int | None = None,
) -> list[ChunkMessage]:
    """One message per chunk id in ``ids`` (every chunk by default); ``round`` is the heal round the
    copies belong to. The window travels only where the table's mode reads one, and not to the chunks
    of the rolling audit's slice (ids from ``audit_from`` on: every row of their range)."""
    wanted = range(len(bounds)) if ids is None else sorted(set(ids))
    carried = modes.get(plan.mode).message_window(window)
    messages = []
    for i in wanted:
        w = None if audit_from is not None and i >= audit_from else carried
        messages.append(
            ChunkMessage(
                kind="chunk",
                run_id=run_id,
                chunk_id=i,
                chunk_count=len(bounds),
                plan=plan,
                lower=bounds[i][0],
                upper=bounds[i][1],
                window_from=w[0] if w else None,
                window_to=w[1] if w else None,
                round=round,
            )
        )
    return messages


def finalise_message(run_id: str, plan: TablePlan, chunk_count: int, round: int = 0) -> ChunkMessage:
    return ChunkMessage(kind="finalise", run_id=run_id, chunk_id=0, chunk_count=chunk_count, plan=plan, round=round)


def adaptive_chunk_rows(avg_row_bytes: int, target_bytes: int, fallback: int) -> int:
    """Rows per chunk so that a chunk holds about ``target_bytes`` of table data: wide rows get
    fewer rows per chunk, narrow rows more (1,000 to 10,000,000); ``fallback`` when the row size is
    unknown or the target is 0 (off)."""
    if avg_row_bytes <= 0 or target_bytes <= 0:
        return fallback
    return max(1_000, min(10_000_000, target_bytes // avg_row_bytes))
