"""The worker's work: one message, parsed and hydrated, handed to its job: a chunk's
(``chunk_job.py``: extract, stage, load, record, next), a table's finalise (``finalise.py``), a cdc
batch (the cdc mode), or the rest of a run's planning (``scheduler.continue_planning``).

Every step is safe to repeat: each attempt at a chunk tags its rows in the load table with a new
attempt id and deletes nothing, so the chunks of a table load concurrently; the ledger names the
one attempt per chunk that validation, publish and merge read; marking done is first-writer-wins
per heal round; the finalise step is sent by whichever worker counts the table complete, as often
as that happens, and does nothing once the table is finished.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from pydantic import ValidationError

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Bounds
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import ChunkMessage, ChunkRef, describe_validation_error, parse_chunk_message
from aurora_replication.pipeline import chunk_job, modes, scheduler, timeline
from aurora_replication.pipeline import finalise as finaliser
from aurora_replication.services import Services

logger = Logger(child=True)
tracer = Tracer()


def parse_message(body: str | dict[str, Any]) -> ChunkMessage | ChunkRef:
    """A message body: a reference to a chunk (``ChunkRef``, what the pipeline sends), or a whole
    message with its plan (``ChunkMessage``: the sample events, and messages of earlier versions)."""
    return parse_chunk_message(body)


# the plan of a run's table never changes: read once per container
_PLANS: dict[tuple[str, str], dict[str, Any]] = {}


def hydrate(
    message: ChunkMessage | ChunkRef, services: Services, read: dict[str, TableItem] | None = None
) -> ChunkMessage:
    """The whole message of a reference: the table's plan from the run's ledger (read once per
    container) and, for a chunk, its key range from the page of bounds that holds it. ``read``, when
    given, receives the TABLE item if it was read here (``read['table']``): the chunk or the finaliser
    that follows in the same invocation takes it instead of reading the item again."""
    if isinstance(message, ChunkMessage):
        return message
    key = (message.run_id, message.table)
    plan = _PLANS.get(key)
    if plan is None:
        item = services.state.get_table(message.run_id, message.table)
        if read is not None and item:
            read["table"] = item
        plan = item.get("plan")
        if not plan:
            raise BadInputError(
                f"run {message.run_id} has no plan of table {message.table!r} in the state table (never "
                "scheduled, or its ledger expired: RUN_RETENTION_DAYS); start a new run of the table"
            )
        if len(_PLANS) > 256:
            _PLANS.clear()
        _PLANS[key] = plan
    bounds: Bounds | None = None
    if message.kind == "chunk" and message.batch is None and message.chunk_count == 1:
        bounds = (None, None)  # a table's one chunk covers its whole key space (``source/bounds.plan_bounds``)
    elif message.kind == "chunk" and message.batch is None:
        bounds = services.state.get_chunk_bounds(message.run_id, message.table, message.chunk_id)
        if bounds is None:
            raise BadInputError(
                f"run {message.run_id} has no key range for chunk {message.chunk_id} of table {message.table!r}; "
                "start a new run of the table"
            )
    try:
        return message.resolve(plan, bounds)
    except ValidationError as e:
        raise BadInputError(describe_validation_error("chunk message", e)) from None


def record_final_failure(
    msg: ChunkMessage | ChunkRef | None, receive_count: int, error: BaseException, services: Services
) -> bool:
    """Called when a message failed: on its last receive (the queue's maxReceiveCount) it moves to the
    DLQ, so its table is marked dead-lettered, which the run summary and the health check report as
    failed. Returns whether it was marked. A message that did not parse (None) names no table."""
    if receive_count < services.settings.max_receive_count or msg is None:
        return False
    what = f"{msg.kind} {msg.chunk_id}" if msg.kind == "chunk" else msg.kind
    reason = f"{what} moved to the dead-letter queue after {receive_count} receives: {type(error).__name__}: {error}"
    try:
        if msg.kind == "plan":  # the tables it was to plan end failed, so the run ends
            scheduler.fail_unplanned(msg.run_id, services, reason)
            return True
        services.state.mark_dead_lettered(msg.run_id, msg.table, msg.chunk_id, reason)
    except Exception:  # noqa: BLE001 - the message still fails; marking is a report, not a step
        logger.exception("could not mark the table dead-lettered", extra={"run_id": msg.run_id})
        return False
    logger.error(reason, extra={"run_id": msg.run_id, "table": msg.table, "chunk": msg.chunk_id})
    return True


class Unsettled(Exception):  # noqa: N818 - not an error: an answer that must not be kept
    """Raised around ``handle`` inside the idempotency guard (``functions/worker/app.py``) when its
    result is not the last word for the message's key (``settled``): Powertools deletes the key's
    record when the guarded function raises, instead of keeping the result for 24 h as the answer to
    every later delivery of the key. The message itself is done: the caller returns ``result``."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(f"result not kept for its idempotency key: {result}")
        self.result = result


def settled(result: dict[str, Any]) -> bool:
    """Whether ``handle``'s result may answer any later delivery of the same key (run, table, kind,
    chunk, round) for 24 h. Every result but one is final for its key: a chunk copied (its ledger
    entry written and counted) or skipped (its table finished, or its round stale), a finalise that
    published, failed, started the next heal round (whose messages have keys of their own) or found
    its round stale, a cdc batch applied or skipped. The exceptions are a finalise that came before
    every chunk was done (``waiting``): the finalise the last chunk sends, and a resume's, have the
    same key and must do the work (docs/exactness.md, idempotency); and one whose long statement still
    runs in Snowflake (``polling``): it sent itself again, with the same key, to come back for it; and a
    ``plan`` message's, whose delayed copy (the watchdog of a planner that may be killed) has its key and
    must look again (a claim on the run keeps two planners apart)."""
    if result.get("kind") == "plan":
        return False
    return result.get("status") not in (finaliser.WAITING, finaliser.POLLING)


def handle(received: ChunkMessage | ChunkRef, services: Services) -> dict[str, Any]:
    """One message, retried in place on transient errors (every step is safe to repeat)."""
    services.endpoints.locate(None, None)  # nothing of an earlier message's place carries over
    if received.kind == "plan":  # the run's tables the scheduler left: planned here, within this budget
        return scheduler.continue_planning(received, services)
    read: dict[str, TableItem] = {}
    message = services.connections.with_retries(lambda: hydrate(received, services, read), "read the plan")
    # a run of one of several databases reads and writes where its plan says (pipeline/databases.py)
    services.endpoints.locate(message.plan.source_database, message.plan.target_schema)
    mode = modes.get(message.plan.mode)
    if mode.applies_units:  # cdc: a batch of binlog changes, or its window's commit (pipeline/modes/cdc/mode.py)
        return services.connections.with_retries(lambda: mode.handle(message, services), mode.name)
    # each attempt (in-place retries too) is recorded with its worker and steps for the run report
    if message.kind == "finalise":  # the finaliser reads the TABLE item itself, fresh, when it starts
        return services.connections.with_retries(
            lambda: timeline.timed(finaliser.finalise, message, services), "finalise"
        )

    def attempt() -> dict[str, Any]:
        # the TABLE item hydrate read a moment ago serves the first attempt; an in-place retry reads it anew
        job = functools.partial(chunk_job.copy_chunk, table_state=read.pop("table", None))
        return timeline.timed(job, message, services)

    return services.connections.with_retries(attempt, "chunk")
