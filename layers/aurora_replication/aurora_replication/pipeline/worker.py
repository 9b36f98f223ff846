"""The worker's work: copy one chunk (extract, stage, load, merge, mark done) or finalise a table.

Every step is safe to repeat: a chunk's rows in the load table are deleted and reloaded in one
transaction, tagged with the chunk id; MERGE on the key is idempotent; marking done adds to a
set; publishing replaces the target from the complete load table; the finalise step is sent by
whichever worker sees the set complete, as often as that happens, and does nothing once done.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from pydantic import ValidationError

from aurora_replication.config import Settings
from aurora_replication.errors import BadInputError
from aurora_replication.models import ChunkMessage, TablePlan, describe_validation_error
from aurora_replication.pipeline import diagnose, staging, transforms, validate
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.services import Services
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.state import Bounds
from aurora_replication.target.client import Target
from aurora_replication.target.sql import load_table_name, order_safe

logger = Logger(child=True)
tracer = Tracer()


def parse_message(body: str) -> ChunkMessage:
    try:
        return ChunkMessage.model_validate(json.loads(body))
    except json.JSONDecodeError as e:
        raise BadInputError(f"chunk message is not JSON: {e}") from None
    except ValidationError as e:
        raise BadInputError(describe_validation_error("chunk message", e)) from None


def record_final_failure(body: str, receive_count: int, error: BaseException, services: Services) -> bool:
    """Called when a message failed: on its last receive (the queue's maxReceiveCount) it moves to the
    DLQ, so its table is marked dead-lettered, which the run summary and the health check report as
    failed. Returns whether it was marked. A message that does not parse names no table."""
    if receive_count < services.settings.max_receive_count:
        return False
    try:
        msg = parse_message(body)
    except BadInputError:
        return False
    what = f"{msg.kind} {msg.chunk_id}" if msg.kind == "chunk" else "finalise"
    reason = f"{what} moved to the dead-letter queue after {receive_count} receives: {type(error).__name__}: {error}"
    try:
        services.state.mark_dead_lettered(msg.run_id, msg.plan.table, msg.chunk_id, reason)
    except Exception:  # noqa: BLE001 - the message still fails; marking is a report, not a step
        logger.exception("could not mark the table dead-lettered", extra={"run_id": msg.run_id})
        return False
    logger.error(reason, extra={"run_id": msg.run_id, "table": msg.plan.table, "chunk": msg.chunk_id})
    return True


def new_attempt_id() -> str:
    """Sortable and unique: the time of the attempt, then randomness."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


def handle(message: ChunkMessage, services: Services) -> dict[str, Any]:
    """One message, retried in place on transient errors (every step is safe to repeat)."""
    if message.kind == "finalise":
        return services.with_retries(lambda: finalise(message, services), "finalise")
    return services.with_retries(lambda: copy_chunk(message, services), "chunk")


class _Steps:
    """Each step of a chunk is an X-Ray subsegment (``## extract``, ``## stage``, ...) and a duration
    (the ChunkSeconds metric, one per step)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        with tracer.provider.in_subsegment(name=f"## {step}"):
            yield
        self.laps[step] = self.laps.get(step, 0.0) + time.perf_counter() - started


def _extract(
    mysql: Any,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    s: Settings,
) -> tuple[list[list[Any]] | None, staging.StagedFile | None]:
    """The chunk's rows as bound values (at most SMALL_CHUNK_ROWS rows: the INSERT path), or the
    staged file written to ``local``. With EXTRACT_FORMAT=server MySQL formats every row as a line of
    the file; a small chunk, a Python transform, ZERO_DATE_POLICY=fail or a row longer than
    max_allowed_packet take the per-value path instead."""
    if s.extract_format == "server" and not plan.transform and plan.zero_dates == "null":
        query, params = source_sql.line_query(plan, msg.lower, msg.upper, window)
        lines = source_read.stream_rows(mysql, query, params)
        head = list(itertools.islice(lines, s.small_chunk_rows + 1))
        if len(head) > s.small_chunk_rows:
            try:
                return None, staging.write_lines_gz(local, itertools.chain(head, lines), msg.chunk_id, attempt)
            except staging.LineTooLongError as e:
                lines.close()
                if os.path.exists(local):
                    os.remove(local)
                logger.warning(f"{e}; encoding the chunk value by value", extra={"chunk": msg.chunk_id})
    query, params = source_sql.chunk_query(plan, msg.lower, msg.upper, window)
    rows_iter: Iterator[tuple[Any, ...]] = source_read.stream_rows(mysql, query, params)
    if plan.transform:
        rows_iter = iter(transforms.registered(plan.transform, s.transform_modules)(rows_iter, plan))
    head = list(itertools.islice(rows_iter, s.small_chunk_rows + 1))
    if len(head) <= s.small_chunk_rows:
        return staging.bound_rows(plan, head), None  # (fidelity) names a value longer than Snowflake holds
    return None, staging.write_csv_gz(local, plan, itertools.chain(head, rows_iter), msg.chunk_id, attempt)


def copy_chunk(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    started = time.perf_counter()
    plan = msg.plan
    s = services.settings
    table_state = services.state.get_table(msg.run_id, plan.table)
    if not table_state:
        raise BadInputError(f"run {msg.run_id} has no record of table {plan.table!r}; the message is stale or forged")
    if table_state.get("status") in ("published", "failed"):
        logger.info("table already finalised; chunk ignored", extra={"run_id": msg.run_id, "table": plan.table})
        return {"rows": 0, "skipped": True}

    if plan.mode == "reconcile":  # only the keys: the finaliser matches them against the target's
        plan = plan.keys_only()
    window = (msg.window_from, msg.window_to) if plan.mode == "incremental" and not msg.whole_range else None
    mysql = services.mysql()
    sf = services.snowflake()
    try:
        tgt = Target(sf, s.stage_name)
        load_table = tgt.ensure_load_table(plan, msg.run_id)
        attempt = new_attempt_id()
        path_key = f"{staging.stage_path_component(plan.table)}/{msg.run_id}/{msg.chunk_id}"
        file = f"data-{attempt}.csv.gz"
        local = os.path.join(s.work_dir, "aurora-replication", path_key, file)
        step = _Steps()
        with step("extract"):
            rows, staged = _extract(mysql, plan, msg, window, attempt, local, s)
        services.fault("extracted", msg)
        if rows is not None:
            with step("copy"):
                tgt.load_rows(plan, load_table, msg.chunk_id, attempt, rows)
            nrows, nbytes = len(rows), 0
            services.fault("copied", msg)
        else:
            try:
                with step("stage"):
                    tgt.put(local, path_key)
                services.fault("staged", msg)
                with step("copy"):
                    tgt.load_file(plan, load_table, msg.chunk_id, path_key, file)
                services.fault("copied", msg)
            finally:
                os.remove(local)
            assert staged is not None
            nrows, nbytes = staged.rows, staged.bytes
        if plan.mode == "incremental":
            with step("merge"):
                tgt.ensure_target_table(plan)
                tgt.merge_chunk(plan, load_table, msg.chunk_id, attempt)
                if msg.whole_range and order_safe(plan) and s.reconcile_action == "delete":
                    tgt.delete_missing_in_range(plan, load_table, msg.chunk_id, attempt, msg.lower, msg.upper)
            services.fault("merged", msg)
    finally:
        mysql.close()
        sf.close()

    seconds = time.perf_counter() - started
    for name, step_seconds in step.laps.items():
        services.metric("ChunkSeconds", step_seconds, "Seconds", name)
    services.metric("RowsCopied", nrows)
    services.metric("BytesStaged", nbytes, "Bytes")
    services.metric("ChunksCopied", 1)
    done, count, heal_round = services.state.mark_chunk_done(msg.run_id, plan.table, msg.chunk_id, nrows, seconds)
    services.fault("marked_done", msg)
    logger.info(
        "chunk copied",
        extra={
            "run_id": msg.run_id,
            "table": plan.table,
            "chunk": msg.chunk_id,
            "rows": nrows,
            "bytes": nbytes,
            "seconds": round(seconds, 3),
            "done": done,
            "of": count,
        },
    )
    if done >= count:
        final = finalise_message(msg.run_id, msg.plan, count, heal_round)
        services.send_messages([final.model_dump_json()])
    return {"rows": nrows, "bytes": nbytes, "done": done, "of": count}


def finalise(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    """Validate the table against the source range by range; re-copy the ranges that differ (bounded
    rounds), then publish it (full) or commit the watermark (incremental). Reconcile mode first
    deletes (or marks) the target's rows whose key MySQL no longer has."""
    plan = msg.plan
    s = services.settings
    state = services.state.get_table(msg.run_id, plan.table)
    if not state:
        raise BadInputError(f"run {msg.run_id} has no record of table {plan.table!r}")
    if state.get("status") in ("published", "failed"):
        return {"status": state["status"], "repeat": True}
    heal_round = int(state.get("heal_round", 0))
    if msg.round < heal_round:
        return {"status": "stale", "round": msg.round, "current_round": heal_round}
    done = len(state.get("done", set()))
    if done < int(state.get("chunk_count", 0)):
        raise RuntimeError(
            f"finalise of {plan.table!r} arrived with {done}/{state['chunk_count']} chunks done; retrying"
        )

    mysql = services.mysql()
    sf = services.snowflake()
    try:
        tgt = Target(sf, s.stage_name)
        # never re-create a load table a concurrent finaliser already published and dropped
        load_table = (
            tgt.ensure_load_table(plan.keys_only() if plan.mode == "reconcile" else plan, msg.run_id)
            if msg.chunk_count == 0
            else load_table_name(plan, msg.run_id)
        )
        removed = None
        step = _Steps()
        if plan.mode == "reconcile":
            with step("reconcile"):
                removed = tgt.reconcile(plan, load_table, s.reconcile_action)
            services.fault("reconciled", msg)
        bounds = services.state.get_bounds(msg.run_id, plan.table) if msg.chunk_count else []
        with step("validate"):
            check = validate.compare(mysql, tgt, plan, load_table, bounds)
        result: dict[str, Any] = check.summary()
        if removed is not None:
            result["reconciled_rows"] = removed
            result["reconcile_action"] = s.reconcile_action
        if plan.transform:
            check.differing = []
            result["validation"] = "not compared (python transform)"
        if check.differing and heal_round < s.heal_attempts and plan.mode != "reconcile" and bounds:
            return _heal(msg, services, plan, bounds, check, heal_round, result)
        valid = not check.differing
        if not valid:
            hint = (
                " (rows deleted in MySQL are not seen by incremental runs; run a reconcile or a full copy)"
                if plan.mode == "incremental" and check.target_rows > check.source_rows
                else f" (still different after {heal_round} re-copies: the source changes faster than it is copied, "
                "or rows were lost; rerun the table)"
            )
            # (fidelity) name the rows and columns that differ, for the ledger and the log
            result["differences"] = diagnose.name_chunk_differences(
                mysql, tgt, plan, load_table, bounds, check.differing
            )
            logger.error("validation failed" + hint, extra={"run_id": msg.run_id, "table": plan.table, **result})
            services.state.set_table_status(
                msg.run_id, plan.table, "failed", reason="validation mismatch" + hint, **result
            )
            services.metric("ValidationFailures", 1)
        else:
            if plan.mode == "full":
                with step("publish"):
                    tgt.publish(plan, load_table)
                services.fault("published", msg)
            window_to = state.get("window_to")
            if plan.mode in ("full", "incremental") and plan.watermark and window_to is not None:
                services.state.set_watermark(plan.table, str(window_to), msg.run_id)
            services.state.set_table_status(msg.run_id, plan.table, "published", finished_at=time.time(), **result)
            tgt.drop(load_table)  # a failed table keeps its load table for inspection
    finally:
        mysql.close()
        sf.close()
    services.state.release_lease(plan.table, msg.run_id, s.min_interval_seconds)
    services.state.set_last_run(plan.table, msg.run_id, {"status": "published" if valid else "failed", **result})
    services.state.finish_run_if_complete(msg.run_id)
    for name, step_seconds in step.laps.items():
        services.metric("ChunkSeconds", step_seconds, "Seconds", name)
    logger.info("table finalised", extra={"run_id": msg.run_id, "table": plan.table, **result})
    return result


def _heal(
    msg: ChunkMessage,
    services: Services,
    plan: TablePlan,
    bounds: list[Bounds],
    check: validate.Comparison,
    heal_round: int,
    result: dict[str, Any],
) -> dict[str, Any]:
    """Copy again exactly the chunks whose ranges differ (incremental: their whole ranges)."""
    ranges = [{"chunk": c, "lower": bounds[c][0], "upper": bounds[c][1]} for c in check.differing]
    whole_range = plan.mode == "incremental"
    won = services.state.reopen_chunks(
        msg.run_id,
        plan.table,
        check.differing,
        heal_round,
        whole_range=whole_range,
        last_mismatch=json.dumps(ranges[:50], default=str)[:20000],
    )
    if won:  # one finaliser of the round re-enqueues; a duplicate of it does nothing
        messages = chunk_messages(
            msg.run_id, plan, bounds, None, ids=check.differing, round=heal_round + 1, whole_range=whole_range
        )
        services.send_messages([m.model_dump_json() for m in messages])
    logger.warning(
        "validation found differing ranges; copying them again",
        extra={
            "run_id": msg.run_id,
            "table": plan.table,
            "round": heal_round + 1,
            "ranges": ranges[:20],
            "differing_chunks": len(check.differing),
            **result,
        },
    )
    return {"status": "healing", "round": heal_round + 1, "chunks": check.differing, **result}
