"""One chunk job: extract, stage, load, record, next.

A chunk message names a key range (or an incremental window) of one table in one run. Its job, each
step safe to repeat:

1. **extract**: the rows, read in one consistent snapshot with the source's count and checksum from
   that same snapshot (``extract.extract_chunk``, the one extractor);
2. **stage** and **load**: a small chunk's rows as bound values, a larger one's file(s) PUT on the
   stage and copied, into the run's load table as a new attempt (the mode's ``load``);
3. **verify**: Snowflake counts and checksums the rows that attempt loaded;
4. **record**: the attempt, with both sides' counts and checksums, in the chunk's ledger entry
   (first writer wins per heal round) — what the finaliser validates without reading the load table;
5. **next**: the worker that counts its table complete finalises it, in this invocation (a small or
   quick one) or by a finalise message; otherwise the table's lease is renewed.

Every attempt tags its rows with a new attempt id and deletes nothing, so a table's chunks load
concurrently and a redelivered chunk adds an attempt the ledger does not name.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.chunks import ChunkItem
from aurora_replication.ledger.keys import CHUNK_FIELDS, TableKey, run_order
from aurora_replication.ledger.runs import TableItem, table_is_final
from aurora_replication.models import ChunkMessage
from aurora_replication.pipeline import extract, extract_parts, modes, staging, timeline
from aurora_replication.pipeline import finalise as finaliser
from aurora_replication.pipeline.chunks import finalise_message
from aurora_replication.pipeline.steps import Steps
from aurora_replication.services import Services
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import read as source_read
from aurora_replication.target.names import load_table_name

logger = Logger(child=True)
tracer = Tracer()

# A table's one chunk copied within this many seconds is finalised in the same invocation: its
# finalise (one chunk's checksum and publish or MERGE) then fits in the worker's 900 s many times over.
INLINE_FINALISE_AFTER_SECONDS = 60.0


def new_attempt_id() -> str:
    """Sortable and unique: the time of the attempt, then randomness."""
    return f"{time.time_ns():020d}-{secrets.token_hex(4)}"


def renew_lease(run_id: str, table: str, table_state: TableItem, services: Services) -> None:
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


def _entry(table: str, info: dict[str, Any]) -> ChunkItem:
    """A chunk's ledger entry as ``StateStore.mark_chunk_done`` wrote it in round 0 (what the finaliser reads)."""
    fields = {k: v for k, v in info.items() if k in CHUNK_FIELDS and v is not None}
    entry: ChunkItem = {"table": table, "chunk": 0, "round": 0, **fields}  # type: ignore[typeddict-item]
    return entry


@dataclass(frozen=True)
class Loaded:
    """What a chunk's attempt put into the load table: its rows and staged bytes (0 for bound values),
    the source's (count, checksum) from the snapshot, Snowflake's of the attempt, and the snapshot."""

    attempt: str
    rows: int
    bytes: int
    small: bool  # bound values (the INSERT path), not a staged file
    parts: extract_parts.PartsRead | None
    source: tuple[int, str] | None
    sums: dict[str, Any]
    snapshot_at: float
    position: str | None


def copy_chunk(msg: ChunkMessage, services: Services, table_state: TableItem | None = None) -> dict[str, Any]:
    """The chunk's job: extract, stage and load it as a new attempt, have Snowflake count and checksum
    what that attempt loaded, record both sides in the chunk's ledger entry, and go on to the table's
    finalise when the chunk completed it. ``table_state``: the TABLE item as read in this invocation a
    moment ago (None: read it here)."""
    started = time.perf_counter()
    table_state = _live_table(msg, services, table_state)
    if table_state is None:
        return {"rows": 0, "skipped": True}
    step = Steps(tracer)
    loaded = _extract_and_load(msg, services, step)
    seconds = time.perf_counter() - started
    info, recorded, done = _record(msg, services, loaded, step, seconds)
    # the table's finaliser runs next in this invocation (a small chunk, or a table's one chunk copied
    # quickly, that completed its table): its publish guard renews the lease (``hold_lease``), so the
    # chunk does not renew it a moment before
    inline = done >= msg.chunk_count and (
        loaded.small or (msg.chunk_count == 1 and seconds <= INLINE_FINALISE_AFTER_SECONDS)
    )
    if not inline:
        renew_lease(msg.run_id, msg.plan.table, table_state, services)
    _log(msg, loaded, recorded, done, seconds)
    result: dict[str, Any] = {
        "rows": loaded.rows,
        "bytes": loaded.bytes,
        "parts": len(loaded.parts.files) if loaded.parts else 1,
        "done": done,
        "of": msg.chunk_count,
        "recorded": recorded,
    }
    if done >= msg.chunk_count:
        _next(msg, services, info, recorded, inline, loaded.small, result)
    return result


def _live_table(msg: ChunkMessage, services: Services, table_state: TableItem | None) -> TableItem | None:
    """The run's TABLE item, or None when the table is finalised already (the chunk is ignored)."""
    table = msg.plan.table
    if table_state is None:
        table_state = services.state.get_table(msg.run_id, table)
    if not table_state:
        raise BadInputError(f"run {msg.run_id} has no record of table {table!r}; the message is stale or forged")
    if table_is_final(table_state):
        logger.info("table already finalised; chunk ignored", extra={"run_id": msg.run_id, "table": table})
        # the finaliser in this chunk's invocation may have died after the status: count the table
        services.state.finish_run_if_complete(msg.run_id, table)
        return None
    return table_state


def _extract_and_load(msg: ChunkMessage, services: Services, step: Steps) -> Loaded:
    """Extract (in one snapshot, with the source's checksum), stage, load and verify one attempt."""
    s = services.settings
    table = msg.plan.table
    mode = modes.get(msg.plan.mode)
    plan = mode.unit_plan(msg.plan)
    salted = [c.name for c in plan.columns if c.source_expr and "@asr_mask_salt" in c.source_expr]
    if salted and not services.endpoints.mysql_settings().mask_salt:  # MySQL would mask every value as NULL
        raise BadInputError(
            f"table {table!r}: column {salted[0]!r} is masked with a salt and the source secret has no mask_salt; "
            "add it to the secret (the same one the run was planned with)"
        )
    window = mode.selection(msg)
    on_worker = extract.reads_on_worker(plan, s)
    # the container's warm connections (services/connections.py); a block that raises closes them. The chunk's
    # snapshot and rows are on the bulk reader's connection (EXTRACT_FORMAT=worker), else pymysql's
    reader = services.connections.bulk_source() if on_worker else services.connections.source()
    with reader as mysql, services.connections.target() as sf:
        tgt = services.connections.warehouse(sf, shared_ddl=True)
        try:
            load_table = load_table_name(plan, msg.run_id)  # made by the load (``Target.load_rows``, ``load_file``)
            attempt = new_attempt_id()
            path_key = f"{staging.stage_path_component(table)}/{msg.run_id}/{msg.chunk_id}"
            file = f"data-{attempt}.csv.zst" if on_worker else f"data-{attempt}.csv.gz"
            local = os.path.join(s.work_dir, "aurora-replication", path_key, file)
            compared = mode.compared(plan)
            with source_bulk.translated(), source_read.snapshot(mysql) as snap:
                with step("extract"):
                    got = extract.extract_chunk(mysql, services, plan, msg, window, attempt, local, compared)
                source = got.source
                if compared and source is None:
                    with step("checksum"):
                        source = source_read.chunk_checksum(mysql, plan, msg.lower, msg.upper, window)
            services.hooks.fault("extracted", msg)
            if got.rows is not None:
                with step("copy"):
                    mode.load(tgt, plan, load_table, msg.chunk_id, attempt, got.rows, None)
                nrows, nbytes = len(got.rows), 0
                services.hooks.fault("copied", msg)
            else:
                parts = got.parts
                put, files = (extract_parts.part_pattern(local), parts.files) if parts else (local, [file])
                try:
                    with step("stage"):
                        tgt.put(put, path_key)
                    services.hooks.fault("staged", msg)
                    with step("copy"):
                        mode.load(tgt, plan, load_table, msg.chunk_id, attempt, None, (path_key, files))
                    services.hooks.fault("copied", msg)
                finally:
                    for name in files:
                        os.remove(os.path.join(os.path.dirname(local), name))
                if parts:
                    nrows, nbytes = parts.rows, parts.bytes
                else:
                    assert got.staged is not None
                    nrows, nbytes = got.staged.rows, got.staged.bytes
            with step("verify"):  # Snowflake's count and checksum of what this attempt loaded, for validation
                sums = tgt.attempt_sums(plan, load_table, msg.chunk_id, attempt)
        except BaseException:
            services.connections.ddl_done.clear()  # what failed may be a load table that is gone: create it again
            raise
    small = got.rows is not None
    return Loaded(attempt, nrows, nbytes, small, got.parts, source, sums, snap.taken_at, snap.position)


def _record(
    msg: ChunkMessage, services: Services, loaded: Loaded, step: Steps, seconds: float
) -> tuple[dict[str, Any], bool, int]:
    """The attempt's metrics, and its ledger entry (first writer of the round wins): (entry, recorded,
    chunks of the table done)."""
    for name, step_seconds in step.laps.items():
        services.hooks.metric("ChunkSeconds", step_seconds, "Seconds", name)
    services.hooks.metric("RowsCopied", loaded.rows)
    services.hooks.metric("BytesStaged", loaded.bytes, "Bytes")
    services.hooks.metric("ChunksCopied", 1)
    source = loaded.source
    info = {
        "attempt": loaded.attempt,
        "rows": loaded.rows,
        "bytes": loaded.bytes,
        "seconds": round(seconds, 3),
        "snapshot_at": round(loaded.snapshot_at, 6),
        "source_position": loaded.position,
        "source_rows": source[0] if source else None,
        "source_checksum": source[1] if source else None,
        **loaded.sums,
    }
    recorded, done = services.state.mark_chunk_done(msg.run_id, msg.plan.table, msg.chunk_id, msg.round, info)
    services.hooks.fault("marked_done", msg)
    return info, recorded, done


def _log(msg: ChunkMessage, loaded: Loaded, recorded: bool, done: int, seconds: float) -> None:
    attempt = loaded.attempt
    logger.info(
        "chunk copied",
        extra={
            "run_id": msg.run_id,
            "table": msg.plan.table,
            "chunk": msg.chunk_id,
            "round": msg.round,
            "attempt": attempt if recorded else f"{attempt} (not recorded: an earlier attempt of the round was)",
            "rows": loaded.rows,
            "bytes": loaded.bytes,
            "seconds": round(seconds, 3),
            "parts": loaded.parts.part_seconds if loaded.parts else None,  # each part's read, when read in parts
            "snapshot_at": loaded.snapshot_at,
            "done": done,
            "of": msg.chunk_count,
        },
    )


def _next(
    msg: ChunkMessage,
    services: Services,
    info: dict[str, Any],
    recorded: bool,
    inline: bool,
    small: bool,
    result: dict[str, Any],
) -> None:
    """The chunk completed its table: finalise it here (``inline``) or by a finalise message."""
    table = msg.plan.table
    final = finalise_message(msg.run_id, msg.plan, msg.chunk_count, msg.round)
    # the one chunk's entry as this attempt recorded it (round 0): the finaliser need not read it back
    entry = {0: _entry(table, info)} if recorded and msg.chunk_count == 1 and msg.round == 0 else None
    finalise_inline = functools.partial(finaliser.finalise, recorded=entry)
    if inline and small:
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
            services.queue.send([final.body()])
    else:
        services.queue.send([final.body()])
