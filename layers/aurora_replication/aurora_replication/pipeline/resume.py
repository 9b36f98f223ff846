"""Resume a stalled run: send again what is missing, never what is done.

A run stalls when messages are lost for good (a queue purged, messages expired, a DLQ emptied by
hand) or a table's finalise step never came. For every table of the run that is still running,
the chunks without a completed copy in the round they are due (their ledger entries) are sent
again, from the key ranges the scheduler stored;
a table whose chunks are all done gets its finalise step. Chunks already done are not copied
again. Sending a chunk that is in fact still in flight is harmless: every step is idempotent.

A run that a newer run has superseded is not resumed (``superseded_by``): another run has taken the
table's lease since, or committed its watermark or finished it having started on it later. Resuming
it would publish the older run's rows over the newer ones and move the watermark back; the resume is
refused for that table with one line naming the newer run, and nothing is sent or written. A resume
renews only the run's own lease, or takes one nobody holds (``StateStore.hold_lease``), never an
expired lease of another run.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import TableKey, run_order
from aurora_replication.ledger.runs import TableItem, still_running
from aurora_replication.ledger.store import StateStore
from aurora_replication.models import RUN_ID_PATTERN, ChunkMessage, TablePlan
from aurora_replication.pipeline import modes
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.pipeline.modes.cdc import reader as cdc_reader
from aurora_replication.services import Services

logger = Logger(child=True)


def auto_resume(key: TableKey, services: Services) -> dict[str, Any] | None:
    """The scheduler found the table of ``key`` leased: if the holder is a run whose table has made no
    progress for STALL_SECONDS, resume that table once (its missing chunks, or its finalise) and say so;
    a table that stalls again after that is reported, not resumed again. None: the holder is not stalled
    (a run in progress, or the minimum interval), so the table is simply declined."""
    table = key.table
    holder = services.state.lease_holder(key)
    if holder is None:
        return None
    t = services.state.get_table(holder, table)
    if not still_running(t) or _owns_flow(t):  # cdc: its own windows (cdc_reader)
        return None
    idle = time.time() - float(t.get("progress_at") or t.get("created_at") or time.time())
    stall = services.settings.stall_seconds
    if idle <= stall:
        return None
    refused = _superseded(holder, table, t, services)  # read only: nothing is written for a superseded run
    if refused:
        return {"resumed_run": holder, "resumed": False, "reason": refused}
    if t.get("auto_resumed_at") is not None or not services.state.claim_auto_resume(holder, table):
        reason = (
            f"table {table!r} is leased by run {holder}, which stalled again ({int(idle)} s without progress) after "
            f"it was resumed automatically at {_when(t.get('auto_resumed_at'))}; not resumed again: find the cause "
            f'(docs/runbook.md#stalledrunsalarm), then resume it with {{"resume_run": "{holder}"}}'
        )
        logger.error("stalled run not resumed again", extra={"run_id": holder, "table": table, "idle": int(idle)})
        return {"resumed_run": holder, "resumed": False, "reason": reason}
    result = resume_table(holder, table, services.state.get_table(holder, table), services)
    if result.get("refused"):  # a newer run wrote the table (a local restart forgets leases): not resumed
        return {"resumed_run": holder, "resumed": False, "reason": result["refused"]}
    reason = (
        f"table {table!r} is leased by run {holder}, stalled for {int(idle)} s (STALL_SECONDS={stall}): "
        f"resumed it once automatically ({result.get('sent', 0)} message(s) sent); this run leaves the table to it"
    )
    logger.warning("stalled run resumed", extra={"run_id": holder, "table": table, **result})
    return {"resumed_run": holder, "resumed": True, "reason": reason, **result}


def _owns_flow(t: TableItem) -> bool:
    """Whether the run's table is in a mode that resumes its own work (``SyncMode.owns_flow``); a TABLE item
    without a mode (none of the modes) is not."""
    name = t.get("mode")
    return isinstance(name, str) and name in modes.MODES and modes.get(name).owns_flow


def superseded_by(state: StateStore, key: TableKey, run_id: str, order: Decimal) -> str | None:
    """What a newer run did to the table of ``run_id`` (started on it at ``order``) since: took its lease
    (whoever holds the lease took it after this run did), or committed a watermark or finished the table
    having started after it (what a local restart, which forgets leases, leaves to see). None: nothing."""
    for item in state.last_writes(key):
        writer = str(item.get("run_id") or "")
        if not writer or writer == run_id:
            continue
        if item["sk"] == "LEASE":
            return f"run {writer} took the table's lease after it"
        started = item.get("run_started_at")
        if started is None or Decimal(str(started)) <= order:
            continue
        if item["sk"] == "WATERMARK":
            return f"run {writer}, started after it, committed the watermark {item.get('value')!r}"
        return f"run {writer}, started after it, finished the table ({item.get('status')})"
    return None


def refusal(table: str, run_id: str, newer: str) -> str:
    """One line: the resume of ``run_id``'s table is refused, why, and what to do."""
    return (
        f"resume refused for table {table!r}: run {run_id} is superseded: {newer}; resuming it would put its "
        "older rows and watermark back over the newer ones, so nothing was sent or written; the newer run "
        "carries the table (start a new run of it if that one did not finish)"
    )


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
    for table, t in sorted(run.get("table_states", {}).items()):
        if not still_running(t):
            summary["tables"][table] = {"status": t.get("status"), "sent": 0}
            continue
        plan = TablePlan.model_validate(t["plan"])
        if modes.get(plan.mode).owns_flow:  # cdc: re-read an undefined window, or resend its batches (cdc_reader)
            refused = _take_back(run_id, table, t, services)
            if refused:
                summary["tables"][table] = {"status": "running", "sent": 0, "refused": refused}
                continue
            summary["tables"][table] = cdc_reader.resume_table(run_id, table, t, services)
            services.state.touch_table(run_id, table)
            continue
        summary["tables"][table] = resume_table(run_id, table, t, services)
    not_resumed = sorted(name for name, r in summary["tables"].items() if r.get("refused"))
    if not_resumed:  # ``resumed``: whether any table was
        summary["refused"] = not_resumed
        summary["resumed"] = any(r.get("sent") for r in summary["tables"].values())
    return summary


def _superseded(run_id: str, table: str, t: TableItem, services: Services) -> str:
    """The one-line refusal when a newer run superseded ``run_id`` on the table (read only), else ''."""
    newer = superseded_by(services.state, TableKey.of_run_table(t, table), run_id, run_order(t))
    return "" if newer is None else _refused(table, run_id, newer)


def _refused(table: str, run_id: str, newer: str) -> str:
    reason = refusal(table, run_id, newer)
    logger.warning(reason, extra={"run_id": run_id, "table": table})
    return reason


def _take_back(run_id: str, table: str, t: TableItem, services: Services) -> str:
    """Renew the run's lease on the table before its work is sent again; '' when done, else the one-line
    refusal (a newer run superseded it). Nothing is written when it is refused."""
    refused = _superseded(run_id, table, t, services)
    if refused:
        return refused
    key = TableKey.of_run_table(t, table)  # the scope the run was planned in
    if services.state.hold_lease(key, run_id, services.settings.lease_seconds, run_order(t)) is None:
        return _refused(table, run_id, f"run {services.state.lease_holder(key) or '?'} took the table's lease after it")
    return ""


def resume_table(run_id: str, table: str, t: TableItem, services: Services) -> dict[str, Any]:
    """Send again what one running table of a run misses: its chunks without a completed copy in the
    round they are due, or its finalise step; the lease is renewed for the run. Refused (``refused``:
    the reason; nothing sent or written) when a newer run has superseded it."""
    refused = _take_back(run_id, table, t, services)
    if refused:
        return {"status": "running", "sent": 0, "refused": refused}
    plan = TablePlan.model_validate(t["plan"])
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
    services.queue.send([m.body() for m in messages])
    services.state.touch_table(run_id, table)
    counts = {"sent": len(messages), "done": count - len(missing), "of": count}
    logger.info("table resumed", extra={"run_id": run_id, "table": table, **counts})
    return {"status": "running", "missing_chunks": missing, **counts}
