"""Resume a stalled run: send again what is missing, never what is done.

A run stalls when messages are lost for good (a queue purged, messages expired, a DLQ emptied by
hand) or a table's finalise step never came. For every table of the run that is still running,
the chunks without a completed copy in the round they are due (their ledger entries) are sent
again, from the key ranges the scheduler stored;
a table whose chunks are all done gets its finalise step. Chunks already done are not copied
again. Sending a chunk that is in fact still in flight is harmless: every step is idempotent.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.errors import BadInputError
from aurora_replication.models import RUN_ID_PATTERN, ChunkMessage, TablePlan
from aurora_replication.pipeline import cdc_reader
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.services import Services

logger = Logger(child=True)


def auto_resume(table: str, services: Services) -> dict[str, Any] | None:
    """The scheduler found ``table`` leased: if the holder is a run whose table has made no progress for
    STALL_SECONDS, resume that table once (its missing chunks, or its finalise) and say so; a table
    that stalls again after that is reported, not resumed again. None: the holder is not stalled
    (a run in progress, or the minimum interval), so the table is simply declined."""
    holder = services.state.lease_holder(table)
    if holder is None:
        return None
    t = services.state.get_table(holder, table)
    if t.get("status") != "running" or t.get("mode") == "cdc":  # cdc: its own windows (cdc_reader)
        return None
    idle = time.time() - float(t.get("progress_at") or t.get("created_at") or time.time())
    stall = services.settings.stall_seconds
    if idle <= stall:
        return None
    if t.get("auto_resumed_at") is not None or not services.state.claim_auto_resume(holder, table):
        reason = (
            f"table {table!r} is leased by run {holder}, which stalled again ({int(idle)} s without progress) after "
            f"it was resumed automatically at {_when(t.get('auto_resumed_at'))}; not resumed again: find the cause "
            f'(docs/runbook.md#stalledrunsalarm), then resume it with {{"resume_run": "{holder}"}}'
        )
        logger.error("stalled run not resumed again", extra={"run_id": holder, "table": table, "idle": int(idle)})
        return {"resumed_run": holder, "resumed": False, "reason": reason}
    result = resume_table(holder, table, services.state.get_table(holder, table), services)
    reason = (
        f"table {table!r} is leased by run {holder}, stalled for {int(idle)} s (STALL_SECONDS={stall}): "
        f"resumed it once automatically ({result.get('sent', 0)} message(s) sent); this run leaves the table to it"
    )
    logger.warning("stalled run resumed", extra={"run_id": holder, "table": table, **result})
    return {"resumed_run": holder, "resumed": True, "reason": reason, **result}


def _when(epoch: Any) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(epoch)))


def resume(run_id: str, services: Services) -> dict[str, Any]:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise BadInputError("resume_run must be a run id (1-64 letters, digits, '-' or '_')")
    run = services.state.get_run(run_id)
    if not run.get("sk"):
        raise BadInputError(f"run {run_id!r} does not exist; `replicate status` lists recent runs")
    summary: dict[str, Any] = {"run_id": run_id, "resumed": True, "tables": {}}
    s = services.settings
    for table, t in sorted(run.get("table_states", {}).items()):
        if t.get("status") != "running":
            summary["tables"][table] = {"status": t.get("status"), "sent": 0}
            continue
        plan = TablePlan.model_validate(t["plan"])
        ok, reason = services.state.acquire_lease(table, run_id, s.lease_seconds)  # renews our own lease
        if not ok:
            summary["tables"][table] = {"status": "running", "sent": 0, "reason": reason}
            continue
        if plan.mode == "cdc":  # cdc integration point: re-read an undefined window, or resend its batches
            summary["tables"][table] = cdc_reader.resume_table(run_id, table, t, services)
            services.state.touch_table(run_id, table)
            continue
        summary["tables"][table] = resume_table(run_id, table, t, services)
    return summary


def resume_table(run_id: str, table: str, t: dict[str, Any], services: Services) -> dict[str, Any]:
    """Send again what one running table of a run misses: its chunks without a completed copy in the
    round they are due, or its finalise step; the lease is renewed for the run."""
    plan = TablePlan.model_validate(t["plan"])
    services.state.acquire_lease(table, run_id, services.settings.lease_seconds)  # renews the run's own lease
    count = int(t.get("chunk_count", 0))
    round_ = int(t.get("heal_round", 0))
    chunks = services.state.get_chunks(run_id, table) if count else {}
    missing = services.state.outstanding(chunks, count, round_)
    messages: list[ChunkMessage]
    if missing:
        bounds = services.state.get_bounds(run_id, table)
        if len(bounds) != count:
            raise BadInputError(
                f"run {run_id!r} table {table!r}: {len(bounds)} stored chunk ranges for {count} chunks; "
                "the run predates resumable runs: start a new run instead"
            )
        window = (t.get("window_from"), t.get("window_to"))
        audit_from = t.get("audit_from")
        messages = chunk_messages(run_id, plan, bounds, window, ids=missing, round=round_, audit_from=audit_from)
    else:  # every chunk done (or a finaliser died asking for re-copies: it decides again)
        messages = [finalise_message(run_id, plan, count, round_)]
    services.send_messages([m.body() for m in messages])
    services.state.touch_table(run_id, table)
    counts = {"sent": len(messages), "done": count - len(missing), "of": count}
    logger.info("table resumed", extra={"run_id": run_id, "table": table, **counts})
    return {"status": "running", "missing_chunks": missing, **counts}
