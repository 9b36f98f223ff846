"""The worker's work: copy one chunk (snapshot, extract, checksum, stage, load, mark done), or
finalise a table (``finalise.py``).

Every step is safe to repeat: each attempt at a chunk tags its rows in the load table with a new
attempt id and deletes nothing, so the chunks of a table load concurrently; the ledger names the
one attempt per chunk that validation, publish and merge read; marking done is first-writer-wins
per heal round; the finalise step is sent by whichever worker counts the table complete, as often
as that happens, and does nothing once the table is finished.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from pydantic import ValidationError

from aurora_replication.config import Settings
from aurora_replication.errors import BadInputError
from aurora_replication.models import ChunkMessage, ChunkRef, TablePlan, describe_validation_error, parse_chunk_message
from aurora_replication.pipeline import extract_parts, modes, rowcodec, scheduler, staging, timeline, transforms
from aurora_replication.pipeline import finalise as finaliser
from aurora_replication.pipeline.chunks import finalise_message
from aurora_replication.pipeline.steps import Steps
from aurora_replication.services import Services
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.state import CHUNK_FIELDS, FINAL, Bounds, TableKey, run_order
from aurora_replication.target.client import Target
from aurora_replication.target.sql import load_table_name

logger = Logger(child=True)
tracer = Tracer()


def parse_message(body: str | dict[str, Any]) -> ChunkMessage | ChunkRef:
    """A message body: a reference to a chunk (``ChunkRef``, what the pipeline sends), or a whole
    message with its plan (``ChunkMessage``: the sample events, and messages of earlier versions)."""
    return parse_chunk_message(body)


# the plan of a run's table never changes: read once per container
_PLANS: dict[tuple[str, str], dict[str, Any]] = {}


def hydrate(message: ChunkMessage | ChunkRef, services: Services, read: dict[str, Any] | None = None) -> ChunkMessage:
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


# A table's one chunk copied within this many seconds is finalised in the same invocation: its
# finalise (one chunk's checksum and publish or MERGE) then fits in the worker's 900 s many times over.
INLINE_FINALISE_AFTER_SECONDS = 60.0


def new_attempt_id() -> str:
    """Sortable and unique: the time of the attempt, then randomness."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


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
    services.locate(None, None)  # nothing of an earlier message's place carries over
    if received.kind == "plan":  # the run's tables the scheduler left: planned here, within this budget
        return scheduler.continue_planning(received, services)
    read: dict[str, Any] = {}
    message = services.with_retries(lambda: hydrate(received, services, read), "read the plan")
    # a run of one of several databases reads and writes where its plan says (pipeline/databases.py)
    services.locate(message.plan.source_database, message.plan.target_schema)
    mode = modes.get(message.plan.mode)
    if mode.applies_units:  # cdc: a batch of binlog changes, or its window's commit (pipeline/modes/cdc.py)
        return services.with_retries(lambda: mode.handle(message, services), mode.name)
    # each attempt (in-place retries too) is recorded with its worker and steps for the run report
    if message.kind == "finalise":  # the finaliser reads the TABLE item itself, fresh, when it starts
        return services.with_retries(lambda: timeline.timed(finaliser.finalise, message, services), "finalise")

    def attempt() -> dict[str, Any]:
        # the TABLE item hydrate read a moment ago serves the first attempt; an in-place retry reads it anew
        return timeline.timed(functools.partial(copy_chunk, table_state=read.pop("table", None)), message, services)

    return services.with_retries(attempt, "chunk")


def _extract(
    mysql: Any,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    s: Settings,
    compared: bool,
) -> tuple[list[list[Any]] | None, staging.StagedFile | None, tuple[int, str] | None]:
    """(EXTRACT_FORMAT=server or python, or a Python transform.) The chunk's rows as bound values (at
    most SMALL_CHUNK_ROWS rows: the INSERT path), or the
    staged file written to ``local``; and, when the chunk is ``compared`` and MySQL formatted its
    lines, the chunk's source count and checksum from the same scan (None: ask ``chunk_checksum``;
    a small chunk takes its values from a second query, and its checksum from the lines' scan).
    With EXTRACT_FORMAT=server MySQL formats every row as a line of the file; a small chunk, a Python
    transform, ZERO_DATE_POLICY=fail or a row longer than max_allowed_packet take the per-value path
    instead."""
    source: tuple[int, str] | None = None
    if s.extract_format == "server" and not plan.transform and plan.zero_dates == "null":
        query, params = source_sql.line_query(plan, msg.lower, msg.upper, window, hashed=compared)
        lines = source_read.stream_rows(mysql, query, params)
        hashes = source_read.RowHashes(plan) if compared else None
        rows = hashes.feed(lines) if hashes else lines
        try:
            head = list(itertools.islice(rows, s.small_chunk_rows + 1))
            if len(head) > s.small_chunk_rows:
                staged = staging.write_lines_gz(local, itertools.chain(head, rows), msg.chunk_id, attempt)
                return None, staged, hashes.checksum() if hashes else None
            if hashes is not None and hashes.complete:  # every row of the small chunk was read and hashed
                source = hashes.checksum()
        except BaseException as e:
            if os.path.exists(local):
                os.remove(local)
            if not isinstance(e, staging.LineTooLongError):
                raise
            logger.warning(f"{e}; encoding the chunk value by value", extra={"chunk": msg.chunk_id})
        finally:
            rows.close()
            lines.close()  # the connection is free for the next query in the same snapshot
    query, params = source_sql.chunk_query(plan, msg.lower, msg.upper, window)
    stream = source_read.stream_rows(mysql, query, params)
    rows_iter: Iterator[tuple[Any, ...]] = stream
    if plan.transform:
        rows_iter = iter(transforms.registered(plan.transform, s.transform_modules)(rows_iter, plan))
    try:
        head = list(itertools.islice(rows_iter, s.small_chunk_rows + 1))
        if len(head) <= s.small_chunk_rows:
            return staging.bound_rows(plan, head), None, source  # names a value longer than Snowflake holds
        return None, staging.write_csv_gz(local, plan, itertools.chain(head, rows_iter), msg.chunk_id, attempt), None
    finally:
        stream.close()  # the connection is free for the checksum in the same snapshot


def reads_on_worker(plan: TablePlan, s: Settings) -> bool:
    """Whether the chunk's rows come as MySQL sent them to the bulk reader (``source.bulk``) and are
    encoded and checksummed on the worker (``pipeline.rowcodec``): EXTRACT_FORMAT=worker, except for a
    table with a Python transform (its rows go through the transform as pymysql's values)."""
    return s.extract_format == "worker" and not plan.transform


def _extract_on_worker(
    conn: Any,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    s: Settings,
    compared: bool,
) -> tuple[list[list[Any]] | None, staging.StagedFile | None, tuple[int, str] | None]:
    """``_extract`` for EXTRACT_FORMAT=worker: a plain SELECT of the chunk's columns
    (``source.sql.chunk_query``) on the bulk reader's connection, inside the chunk's snapshot; the rows'
    lines and checksum terms made on the worker from the same bytes (``pipeline.rowcodec``). A chunk
    of at most SMALL_CHUNK_ROWS rows goes as bound values (its checksum from the same rows); a larger
    one as a zstd staging file. MySQL computes no checksum: the worker's is of the values it sent."""
    query, params = source_sql.chunk_query(plan, msg.lower, msg.upper, window)
    codec = rowcodec.RowCodec(plan, hashed=compared)
    batches = source_bulk.batches(conn, query, params)
    try:
        head: list[Any] = []
        for batch in batches:
            head.extend(batch)
            if len(head) > s.small_chunk_rows:
                break
        if len(head) <= s.small_chunk_rows:
            rows = staging.bound_rows(plan, head)  # names a value longer than Snowflake holds
            codec.encode(head, b"\n")  # the checksum of exactly these rows
            return rows, None, codec.checksum() if compared else None
        tail = msg.chunk_id, attempt
        staged = staging.write_encoded(local, itertools.chain([head], batches), codec, *tail)
        return None, staged, codec.checksum() if compared else None
    except BaseException:
        if os.path.exists(local):
            os.remove(local)
        raise
    finally:
        batches.close()  # the rest of the result read off: the connection is free for the next statement


def _reads_in_parts(plan: TablePlan, window: tuple[str | None, str | None] | None, s: Settings) -> bool:
    """Whether a chunk may be read in parts (``pipeline.extract_parts``): a whole key range (not an
    incremental window, which is small by design) of MySQL-formatted lines (``server``, where
    ZERO_DATE_POLICY=fail takes the value path) or of rows encoded on the worker (``worker``), with more
    than one process allowed."""
    return (
        s.extract_processes > 1
        and bool(plan.key)
        and window is None
        and not plan.transform
        and (s.extract_format == "worker" or (s.extract_format == "server" and plan.zero_dates == "null"))
    )


def renew_lease(run_id: str, table: str, table_state: dict[str, Any], services: Services) -> None:
    """The run made progress on the table: its lease is renewed (``StateStore.renew_lease``: conditional on
    the run holding it, at most every quarter of LEASE_SECONDS from one container), so a long run keeps its
    table and a run that stops making progress loses it LEASE_SECONDS after its last progress. A run that
    no longer holds it carries on harmlessly: its finaliser ends the table superseded."""
    key = TableKey.of_run_table(table_state, table)
    if not services.state.renew_lease(key, run_id, services.settings.lease_seconds, run_order(table_state)):
        logger.warning(
            "the run no longer holds the table's lease (another run took it, or the run finished the table); "
            "its finaliser will not publish",
            extra={"run_id": run_id, "table": table, "holder": services.state.lease_holder(key)},
        )


def _entry(table: str, info: dict[str, Any]) -> dict[str, Any]:
    """A chunk's ledger entry as ``StateStore.mark_chunk_done`` wrote it in round 0 (what the finaliser reads)."""
    fields = {k: v for k, v in info.items() if k in CHUNK_FIELDS and v is not None}
    return {"table": table, "chunk": 0, "round": 0, **fields}


def copy_chunk(msg: ChunkMessage, services: Services, table_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read the chunk in one consistent snapshot with its source count and checksum from that same
    snapshot, load it as a new attempt, have Snowflake count and checksum the rows that attempt loaded,
    and record the attempt with both sides' counts and checksums in the chunk's ledger entry (what the
    finaliser validates, without reading the load table again). ``table_state``: the TABLE item as
    read in this invocation a moment ago (None: read it here)."""
    started = time.perf_counter()
    s = services.settings
    table = msg.plan.table
    if table_state is None:
        table_state = services.state.get_table(msg.run_id, table)
    if not table_state:
        raise BadInputError(f"run {msg.run_id} has no record of table {table!r}; the message is stale or forged")
    if table_state.get("status") in FINAL:
        logger.info("table already finalised; chunk ignored", extra={"run_id": msg.run_id, "table": table})
        # the finaliser in this chunk's invocation may have died after the status: count the table
        services.state.finish_run_if_complete(msg.run_id, table)
        return {"rows": 0, "skipped": True}

    mode = modes.get(msg.plan.mode)
    plan = mode.unit_plan(msg.plan)
    salted = [c.name for c in plan.columns if c.source_expr and "@asr_mask_salt" in c.source_expr]
    if salted and not services.mysql_settings().mask_salt:  # MySQL would mask every value as NULL
        raise BadInputError(
            f"table {table!r}: column {salted[0]!r} is masked with a salt and the source secret has no mask_salt; "
            "add it to the secret (the same one the run was planned with)"
        )
    window = mode.selection(msg)
    step = Steps(tracer)
    on_worker = reads_on_worker(plan, s)
    # the container's warm connections (services.py); a block that raises closes them. The chunk's
    # snapshot and rows are on the bulk reader's connection (EXTRACT_FORMAT=worker), else pymysql's
    reader = services.bulk_source() if on_worker else services.source()
    with reader as mysql, services.target() as sf:
        tgt = Target(sf, s.stage_name, services.ddl_done)
        try:
            load_table = load_table_name(plan, msg.run_id)  # made by the load (``Target.load_rows``, ``load_file``)
            attempt = new_attempt_id()
            path_key = f"{staging.stage_path_component(table)}/{msg.run_id}/{msg.chunk_id}"
            file = f"data-{attempt}.csv.zst" if on_worker else f"data-{attempt}.csv.gz"
            local = os.path.join(s.work_dir, "aurora-replication", path_key, file)
            compared = mode.compared(plan)
            parts: extract_parts.PartsRead | None = None
            with source_bulk.translated(), source_read.snapshot(mysql) as snap:
                with step("extract"):
                    if _reads_in_parts(plan, window, s):
                        # worker parts: the chunk is cut on pymysql's connection (key values as text)
                        with services.source() if on_worker else nullcontext(mysql) as planner:
                            parts = extract_parts.read_in_parts(
                                mysql,
                                services.located_mysql_settings,
                                plan,
                                msg,
                                attempt,
                                local,
                                s.extract_processes,
                                s.extract_part_min_rows,
                                compared,
                                reader="worker" if on_worker else "server",
                                planner=planner,
                            )
                    if parts is not None:
                        rows, staged, source = None, None, parts.source
                    elif on_worker:
                        rows, staged, source = _extract_on_worker(mysql, plan, msg, window, attempt, local, s, compared)
                    else:
                        rows, staged, source = _extract(mysql, plan, msg, window, attempt, local, s, compared)
                if compared and source is None:
                    with step("checksum"):
                        source = source_read.chunk_checksum(mysql, plan, msg.lower, msg.upper, window)
            services.fault("extracted", msg)
            if rows is not None:
                with step("copy"):
                    mode.load(tgt, plan, load_table, msg.chunk_id, attempt, rows, None)
                nrows, nbytes = len(rows), 0
                services.fault("copied", msg)
            else:
                put, files = (extract_parts.part_pattern(local), parts.files) if parts else (local, [file])
                try:
                    with step("stage"):
                        tgt.put(put, path_key)
                    services.fault("staged", msg)
                    with step("copy"):
                        mode.load(tgt, plan, load_table, msg.chunk_id, attempt, None, (path_key, files))
                    services.fault("copied", msg)
                finally:
                    for name in files:
                        os.remove(os.path.join(os.path.dirname(local), name))
                if parts:
                    nrows, nbytes = parts.rows, parts.bytes
                else:
                    assert staged is not None
                    nrows, nbytes = staged.rows, staged.bytes
            with step("verify"):  # Snowflake's count and checksum of what this attempt loaded, for validation
                loaded = tgt.attempt_sums(plan, load_table, msg.chunk_id, attempt)
        except BaseException:
            services.ddl_done.clear()  # what failed may be a load table that is gone: create it again
            raise

    seconds = time.perf_counter() - started
    for name, step_seconds in step.laps.items():
        services.metric("ChunkSeconds", step_seconds, "Seconds", name)
    services.metric("RowsCopied", nrows)
    services.metric("BytesStaged", nbytes, "Bytes")
    services.metric("ChunksCopied", 1)
    info = {
        "attempt": attempt,
        "rows": nrows,
        "bytes": nbytes,
        "seconds": round(seconds, 3),
        "snapshot_at": round(snap.taken_at, 6),
        "source_position": snap.position,
        "source_rows": source[0] if source else None,
        "source_checksum": source[1] if source else None,
        **loaded,
    }
    recorded, done = services.state.mark_chunk_done(msg.run_id, table, msg.chunk_id, msg.round, info)
    services.fault("marked_done", msg)
    # the table's finaliser runs next in this invocation (a small chunk, or a table's one chunk copied
    # quickly, that completed its table): its publish guard renews the lease (``hold_lease``), so the
    # chunk does not renew it a moment before
    inline = done >= msg.chunk_count and (
        rows is not None or (msg.chunk_count == 1 and seconds <= INLINE_FINALISE_AFTER_SECONDS)
    )
    if not inline:
        renew_lease(msg.run_id, table, table_state, services)
    logger.info(
        "chunk copied",
        extra={
            "run_id": msg.run_id,
            "table": table,
            "chunk": msg.chunk_id,
            "round": msg.round,
            "attempt": attempt if recorded else f"{attempt} (not recorded: an earlier attempt of the round was)",
            "rows": nrows,
            "bytes": nbytes,
            "seconds": round(seconds, 3),
            "parts": parts.part_seconds if parts else None,  # each part's read, when read in parts
            "snapshot_at": snap.taken_at,
            "done": done,
            "of": msg.chunk_count,
        },
    )
    result: dict[str, Any] = {
        "rows": nrows,
        "bytes": nbytes,
        "parts": len(parts.files) if parts else 1,
        "done": done,
        "of": msg.chunk_count,
        "recorded": recorded,
    }
    if done >= msg.chunk_count:
        final = finalise_message(msg.run_id, msg.plan, msg.chunk_count, msg.round)
        # the one chunk's entry as this attempt recorded it (round 0): the finaliser need not read it back
        entry = {0: _entry(table, info)} if recorded and msg.chunk_count == 1 and msg.round == 0 else None
        finalise_inline = functools.partial(finaliser.finalise, recorded=entry)
        if inline and rows is not None:
            # a small chunk (the INSERT path) completed its table: finalise here, on the warm connection,
            # instead of one more message and invocation. If it fails, this chunk's message fails and
            # comes back: copying a small chunk again is cheap, and the finaliser is safe to repeat
            result["finalise"] = timeline.timed(finalise_inline, final, services).get("status")
        elif inline:
            # the one chunk of its table (a small incremental window is one), copied quickly: finalise
            # here too, well inside the invocation's time (a long copy, a large keyless table, leaves
            # it to the finalise message). If it fails, the finalise message takes over, and the
            # chunk, recorded, is not copied again
            try:
                result["finalise"] = timeline.timed(finalise_inline, final, services).get("status")
            except Exception as e:  # noqa: BLE001 - handed to the finalise message and its retries
                logger.warning(
                    f"finalising in the chunk's invocation failed ({type(e).__name__}: {e}); sent as its own message",
                    extra={"run_id": msg.run_id, "table": table},
                )
                services.send_messages([final.body()])
        else:
            services.send_messages([final.body()])
    return result
