"""The finaliser of a table: validate each chunk against its own snapshot, then heal, fail or commit.

Validation reads neither MySQL nor the load table: it compares two columns of the run's ledger (one
small item per chunk). Each chunk's entry holds the attempt it validated, the count and checksum its
worker computed in the snapshot it read the rows from, and the count and checksum Snowflake computed of
exactly that attempt's rows right after they loaded (``Target.attempt_sums``): so writes to MySQL after
a chunk's snapshot are lag (the next run carries them), never a mismatch, and no statement of validation
grows with the table. The commit's statements that do grow with it (the publish, a MERGE and its check,
reconcile's delete) run asynchronously (``Warehouse.record_long_statements``; Snowflake's in
``target/snowflake/long_statements.py``): a statement still running when the invocation may wait no
longer is polled by this finalise message sent again, delayed (ASYNC_POLL_SECONDS), until it ends; its
query id is in the ledger, so nothing starts it twice. A mismatch is a real error: the chunk is copied
again (``HEAL_ATTEMPTS`` rounds), then the table fails, naming the chunks and their key ranges, and the
rows and columns that differ (``diagnose``): the one time a finaliser reads MySQL, bounded to a few
failing chunks' own key ranges. Once every chunk matches, the mode commits exactly those pairs (a late
duplicate that loads a new attempt afterwards changes nothing), and the watermark advances.

Only the run that holds the table's lease publishes, heals or records an outcome: the finaliser
renews the lease first (``StateStore.hold_lease``), and a run whose lease another run has taken since
(it made no progress for LEASE_SECONDS) ends ``superseded``: nothing of it is published, its watermark
and last run are not written. The watermark and last run move forward only (``state.FORWARD``).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools import Logger, Tracer

from aurora_replication import checksums, schema_changes
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.chunks import ChunkItem
from aurora_replication.ledger.keys import Bounds, TableKey, run_order
from aurora_replication.ledger.runs import TableItem, table_is_final
from aurora_replication.ledger.status import SUPERSEDED, is_final
from aurora_replication.models import ChunkMessage, TablePlan
from aurora_replication.pipeline import column_fill, column_versions, diagnose, modes, runs
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.pipeline.steps import Steps
from aurora_replication.services import Services
from aurora_replication.target.names import load_table_name
from aurora_replication.target.warehouse import (
    Pending,
    StatementInterrupted,
    StatementRecord,
    StatementTimedOut,
    Warehouse,
)

logger = Logger(child=True)
tracer = Tracer()
EMPTY = checksums.EMPTY
Sums = tuple[int, str]
# a finalise that came before every chunk was done: the one the last chunk sends (same idempotency key) does the work
WAITING = "waiting"
# a finalise whose long statement still runs in Snowflake: its message comes back, delayed (same idempotency key)
POLLING = "polling"
# a long statement's record in the TABLE item: this prefix and its name (``warehouse.StatementRecord``)
LONG_PREFIX = "long_"


class TableLedger:
    """The table's long statements, recorded as text attributes of the run's TABLE item."""

    def __init__(self, services: Services, run_id: str, table: str) -> None:
        self.state = services.state
        self.run_id = run_id
        self.table = table

    def read(self, name: str) -> str | None:
        return self.state.table_text(self.run_id, self.table, LONG_PREFIX + name)

    def swap(self, name: str, new: str, old: str | None) -> bool:
        return self.state.swap_table_text(self.run_id, self.table, LONG_PREFIX + name, new, old)


@dataclass(frozen=True)
class Decision:
    """What the finaliser does with a validated round: ``publish`` (commit), ``heal`` (copy
    ``chunks`` again) or ``fail``."""

    action: Literal["publish", "heal", "fail"]
    chunks: list[int] = field(default_factory=list)


def ledger_sums(chunks: dict[int, ChunkItem], count: int) -> tuple[dict[int, Sums], dict[int, Sums], list[int]]:
    """Each chunk's rows in Snowflake as its ledger entry records them (Snowflake's count and checksum of
    the attempt the entry names, computed right after it loaded), with and without its JSON columns; and
    the chunks whose entry has none (recorded by a worker of an earlier version: counted from the load
    table instead)."""
    loaded: dict[int, Sums] = {}
    no_json: dict[int, Sums] = {}
    missing: list[int] = []
    for i in range(count):
        c = chunks[i]
        if c.get("target_rows") is None or c.get("target_checksum") is None:
            missing.append(i)
            continue
        rows = int(c["target_rows"])
        loaded[i] = (rows, str(c["target_checksum"]))
        no_json[i] = (rows, str(c.get("target_checksum_no_json") or c["target_checksum"]))
    return loaded, no_json, missing


def snapshot_sums(chunks: dict[int, ChunkItem], count: int) -> list[Sums]:
    """Each chunk's (rows, checksum) as its worker read them in its snapshot."""
    rows = [chunks[i] for i in range(count)]
    return [(int(c.get("source_rows", 0)), str(c.get("source_checksum", EMPTY[1]))) for c in rows]


def differing_chunks(chunks: dict[int, ChunkItem], loaded: dict[int, Sums], count: int) -> list[int]:
    """Chunks whose rows in the load table (the attempt the ledger names) differ from the count and
    checksum of the snapshot they were read in."""
    return [i for i, expected in enumerate(snapshot_sums(chunks, count)) if loaded.get(i, EMPTY) != expected]


def decide(differing: list[int], heal_round: int, heal_attempts: int) -> Decision:
    """Publish when every chunk matches its snapshot; otherwise copy the differing chunks again while
    rounds remain, then fail."""
    if not differing:
        return Decision("publish")
    if heal_round < heal_attempts:
        return Decision("heal", sorted(differing))
    return Decision("fail", sorted(differing))


def source_as_of(chunks: dict[int, ChunkItem]) -> float | None:
    """The oldest snapshot among the chunks: the source state the target is known to reflect."""
    times = [float(c["snapshot_at"]) for c in chunks.values() if c.get("snapshot_at") is not None]
    return min(times) if times else None


def _history_at(chunks: dict[int, ChunkItem]) -> str:
    """History mode: the time a copy's new versions start, the oldest snapshot of its chunks (UTC text)."""
    as_of = source_as_of(chunks)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(as_of if as_of is not None else time.time()))


def describe_range(bounds: list[Bounds], chunk: int) -> str:
    if chunk >= len(bounds):
        return "the whole table"
    lo, hi = bounds[chunk]
    if lo is None and hi is None:
        return "the whole table"
    left = f"{tuple(lo)} < key" if lo is not None else "key"
    return f"{left} <= {tuple(hi)}" if hi is not None else f"{left} (to the end)"


def _mismatch(
    chunks: dict[int, ChunkItem], loaded: dict[int, Sums], bounds: list[Bounds], ids: list[int]
) -> list[dict[str, Any]]:
    return [
        {
            "chunk": i,
            "range": describe_range(bounds, i),
            "snapshot": [int(chunks[i].get("source_rows", 0)), chunks[i].get("source_checksum")],
            "snowflake": list(loaded.get(i, EMPTY)),
            "attempt": chunks[i].get("attempt"),
        }
        for i in ids
    ]


def _summary(
    chunks: dict[int, ChunkItem], loaded: dict[int, Sums], count: int, differing: list[int], compared: bool
) -> dict[str, Any]:
    source_rows, source_sum = checksums.add_checksums(snapshot_sums(chunks, count))
    target_rows, target_sum = checksums.add_checksums(list(loaded.values()))
    as_of = source_as_of(chunks)
    times = [float(c["snapshot_at"]) for c in chunks.values() if c.get("snapshot_at") is not None]
    out: dict[str, Any] = {
        "source_rows": source_rows,
        "target_rows": target_rows,
        "source_checksum": source_sum,
        "target_checksum": target_sum,
        "validation": (
            "not compared (python transform)"
            if not compared
            else "ok"
            if not differing
            else f"mismatch in {len(differing)} chunk(s)"
        ),
        "compared": "each chunk against its own snapshot",
        "differing_chunks": differing[:100],
        "rows_copied": sum(int(chunks[i].get("rows", 0)) for i in range(count)),
    }
    if as_of is not None:
        out["source_as_of"] = round(as_of, 3)
        out["snapshot_spread_seconds"] = round(max(times) - as_of, 3)
    return out


def finalise(msg: ChunkMessage, services: Services, recorded: dict[int, ChunkItem] | None = None) -> dict[str, Any]:
    """Validate the table's chunks and publish, heal or fail it. The TABLE item is read here, fresh,
    even when the invocation read it a moment ago: a duplicate finaliser must see a table another one
    has just published. ``recorded``: the ledger entry of a table's one chunk, as the chunk's worker
    wrote it in this invocation in round 0 (the first completed attempt of the round wins, so the entry
    stays as written; a heal moves the table to round 1, which makes this finaliser stale): it stands
    for the entry's read."""
    started = time.perf_counter()
    plan = msg.plan
    s = services.settings
    state = services.state.get_table(msg.run_id, plan.table)
    if not state:
        raise BadInputError(f"run {msg.run_id} has no record of table {plan.table!r}")
    key = TableKey.of_run_table(state, plan.table)  # the scope the run was planned in
    if table_is_final(state):
        # a finaliser that died after the status did not count the table, nor mark the run
        _finish_repeat(msg, services, key, state)
        return {"status": state["status"], "repeat": True}
    heal_round = int(state.get("heal_round", 0))
    if msg.round < heal_round:
        return {"status": "stale", "round": msg.round, "current_round": heal_round}
    count = int(state.get("chunk_count", 0))
    polled = _poll_running(msg, services, key, state, heal_round)
    if polled is not None:  # a long statement of this round still runs: nothing else to do yet
        return polled
    if recorded is not None and count == 1 and heal_round == 0 == msg.round and set(recorded) == {0}:
        chunks = recorded
    else:
        chunks = services.state.get_chunks(msg.run_id, plan.table, count) if count else {}
    outstanding = services.state.outstanding(chunks, count, heal_round)
    if outstanding:
        # sent early (a redelivered chunk counted twice): the chunk that completes last sends another
        logger.info(
            "finalise before every chunk is done; waiting for the rest",
            extra={"run_id": msg.run_id, "table": plan.table, "outstanding": outstanding[:20]},
        )
        return {"status": WAITING, "outstanding": len(outstanding)}

    mode = modes.get(plan.mode)
    unit = mode.unit_plan(plan)
    compared = mode.compared(unit)
    step = Steps(tracer)
    with services.connections.target() as sf:  # the container's warm connection (services/connections.py)
        tgt = services.connections.warehouse(sf, shared_ddl=True)
        # never re-create a load table a concurrent finaliser already published and dropped
        load_table = tgt.ensure_load_table(unit, msg.run_id) if count == 0 else load_table_name(unit, msg.run_id)
        token = f"{msg.round}-{secrets.token_hex(8)}"
        with step("validate"):
            pairs = [(i, str(chunks[i]["attempt"])) for i in range(count)]
            attempts = tgt.record_attempts(unit, msg.run_id, token, pairs)
            loaded, no_json, missing = ledger_sums(chunks, count)
            if missing:  # entries without Snowflake's side: their attempts counted from the load table
                older = tgt.record_attempts(unit, msg.run_id, f"{token}-m", [pairs[i] for i in missing])
                loaded.update(tgt.checksums_of_attempts(unit, load_table, older))
                no_json.update(tgt.checksums_of_attempts(unit, load_table, older, json_text=False))
        services.hooks.fault("validated", msg)
        differing = differing_chunks(chunks, loaded, count) if compared else []
        result = _summary(chunks, loaded, count, differing, compared)
        decision = decide(differing, heal_round, s.heal_attempts)
        # the publish guard: nothing below happens unless this run still holds the table's lease
        held = services.state.hold_lease(key, msg.run_id, s.lease_seconds, run_order(state))
        if held is None:
            tgt.drop(load_table)  # this run's own load tables: nothing of them will be published
            if attempts.table is not None:
                tgt.drop(attempts.table)
            return runs.end_superseded(services, msg.run_id, key)
        bounds = services.state.get_bounds(msg.run_id, plan.table) if decision.chunks else []
        if decision.action == "heal":
            return _heal(msg, services, state, bounds, decision.chunks, chunks, loaded, heal_round, result)
        status = "published"
        result["finalise_seconds"] = round(time.perf_counter() - started, 3)
        if decision.action == "fail":
            status = "failed"
            named = _name_differences(msg, services, tgt, unit, load_table, bounds, decision.chunks, chunks, state)
            _fail(msg, services, bounds, decision.chunks, chunks, loaded, heal_round, result, named)
        else:
            expected = checksums.add_checksums(snapshot_sums(chunks, count))
            loaded_rows = sum(rows for rows, _ in loaded.values())
            audit_from = state.get("audit_from")
            commit = modes.Commit(
                tgt,
                plan,
                load_table,
                attempts,
                s,
                msg,
                expected,
                fault=services.hooks.fault,
                loaded_rows=loaded_rows,
                audit_from=int(audit_from) if audit_from is not None else None,
                window_from=state.get("window_from"),
                expected_no_json=checksums.add_checksums(list(no_json.values())),
                history_pos=str(state.get("history_pos") or msg.run_id),
                history_at=_history_at(chunks),
                not_null_check=[str(x) for x in state.get("not_null_check") or []],
            )
            if not (mode.commit_bounded_by_load and loaded_rows <= s.sync_commit_max_rows):
                # statements that grow with the table run asynchronously, recorded in the ledger and polled;
                # this invocation waits for one until then (ASYNC_INLINE_WAIT_SECONDS, within its deadline).
                # A commit of a few validated rows runs synchronously instead: one statement, where the
                # asynchronous one costs two session settings, its records in the ledger and its polls
                until = time.monotonic() + min(s.async_inline_wait_seconds, max(0.0, services.deadline.seconds_left()))
                ledger = TableLedger(services, msg.run_id, plan.table)
                tgt.record_long_statements(ledger, heal_round, s.snowflake_async_timeout_seconds, lambda: until)
            try:
                with step(mode.commit_step):
                    result.update(mode.commit(commit))
            except Pending as p:  # the statement goes on in Snowflake; this message comes back for it
                return _come_back(msg, services, count, p)
            except (StatementTimedOut, StatementInterrupted) as e:  # surfaced: starting it again would not help
                status = "failed"
                result["validation"] = "not committed: a statement of the commit did not finish"
                logger.error(str(e), extra={"run_id": msg.run_id, "table": plan.table, **result})
                services.state.set_table_status(msg.run_id, plan.table, "failed", reason=str(e)[:4000], **result)
                services.hooks.metric("StatementTimeouts", 1)
            except Exception as e:
                finished = _finished_by_another(msg, services, e)
                if finished is not None:
                    return finished
                if not isinstance(e, modes.CommitMismatch):
                    raise
                status = "failed"
                result["validation"] = "target differs after commit"
                logger.error(str(e), extra={"run_id": msg.run_id, "table": plan.table, **result})
                services.state.set_table_status(msg.run_id, plan.table, "failed", reason=str(e), **result)
                services.hooks.metric("ValidationFailures", 1)
            if tgt.long is not None and tgt.long.seconds:  # how long each long statement ran (``make bench``)
                result["statement_seconds"] = {k: str(v) for k, v in tgt.long.seconds.items()}
            result["finalise_seconds"] = round(time.perf_counter() - started, 3)
            if status == "published":
                if mode.verifies_whole_table and compared and result.get("source_as_of") is not None:
                    result["verified_at"] = result["source_as_of"]
                _note_audit(msg, services, key, state, chunks, result)
                _record_drops(msg, services, key, result)
                if state.get("key_high") is not None:  # the largest key planning read: the next run compares
                    result["key_high"] = str(state["key_high"])
                if state.get("not_null") is not None:  # MySQL's NOT NULL columns then: the next run compares
                    result["not_null"] = [str(x) for x in state["not_null"]]
                watermark = mode.watermark(state)
                if watermark is not None and not services.state.set_watermark(held, watermark):
                    result["watermark"] = (
                        f"not committed ({watermark!r}): the table's lease or a newer watermark belongs to another "
                        "run; the next run starts from the older one (rows are read again, none is missed)"
                    )
                    logger.error(result["watermark"], extra={"run_id": msg.run_id, "table": plan.table})
                if state.get(column_versions.VERSIONS_FIELD):  # a column version's next pages, after the run's rows
                    result.update(_fill(msg, services, key, state, tgt))
                services.state.set_table_status(msg.run_id, plan.table, "published", finished_at=time.time(), **result)
                tgt.drop(load_table)  # a failed table keeps its load table for inspection
                if attempts.table is not None:
                    tgt.drop(attempts.table)
    services.hooks.fault("status_set", msg)
    # the last run, with the catalog's count of the target (``table_rows``), before the lease frees the
    # table: the next run checks the target against it (``pipeline/target_check.py``)
    services.state.set_last_run(held, {"status": status, **result})
    services.state.release_lease(key, msg.run_id, s.min_interval_seconds)
    services.state.finish_run_if_complete(msg.run_id, plan.table)
    for name, step_seconds in step.laps.items():
        services.hooks.metric("ChunkSeconds", step_seconds, "Seconds", name)
    logger.info("table finalised", extra={"run_id": msg.run_id, "table": plan.table, "status": status, **result})
    return {"status": status, **result}


def _running(state: TableItem, heal_round: int) -> tuple[str, StatementRecord] | None:
    """The table's long statement of this round that was started and has not been seen to end, if any."""
    for attribute, value in state.items():
        if not attribute.startswith(LONG_PREFIX) or not isinstance(value, str):
            continue
        record = StatementRecord.parse(value)
        if record is not None and record.round == heal_round and record.query_id and record.rows is None:
            return attribute[len(LONG_PREFIX) :], record
    return None


def _poll_running(
    msg: ChunkMessage, services: Services, key: TableKey, state: TableItem, heal_round: int
) -> dict[str, Any] | None:
    """A finalise message that comes back while its table's long statement still runs: one look at the
    statement's status, the lease renewed and the table's progress noted (it is not stalled), and the
    message sent again; None when there is none, or it has ended (the whole finaliser takes over, and reads
    its rows, or its error, through ``LongStatements``)."""
    found = _running(state, heal_round)
    if found is None:
        return None
    name, record = found
    assert record.query_id is not None
    with services.connections.target() as sf:
        try:
            running = services.connections.warehouse(sf).still_running(record.query_id)
        except Exception:  # noqa: BLE001 - it failed: the whole finaliser classifies the failure
            return None
    if not running:
        return None
    s = services.settings
    if services.state.hold_lease(key, msg.run_id, s.lease_seconds, run_order(state)) is None:
        return None  # superseded: the whole finaliser says so
    pending = Pending(name, record.query_id, record.started_at)
    return _come_back(msg, services, int(state.get("chunk_count", 0)), pending)


def poll_delay(running_seconds: float, poll_seconds: int) -> int:
    """Seconds until a running statement is looked at again: as long as it has run so far, from 1 s up to
    ASYNC_POLL_SECONDS. A statement of a second is seen to end a second later; one of an hour costs a
    message a minute; the wait past its end is at most its own run time, or ASYNC_POLL_SECONDS."""
    return max(1, min(poll_seconds, math.ceil(running_seconds)))


def _come_back(msg: ChunkMessage, services: Services, count: int, pending: Pending) -> dict[str, Any]:
    """The table's long statement still runs: its progress is noted (the stall check and the lease see a
    run at work) and this finalise message is sent again, delayed (``poll_delay``)."""
    s = services.settings
    services.state.touch_table(msg.run_id, msg.plan.table)
    again = finalise_message(msg.run_id, msg.plan, count, msg.round)
    running = round(time.time() - pending.started_at, 1)
    delay = poll_delay(running, s.async_poll_seconds)
    services.queue.send([again.body()], delay_seconds=delay)
    logger.info(
        f"{pending}; polled again in {delay} s",
        extra={"run_id": msg.run_id, "table": msg.plan.table, "query_id": pending.query_id, "running": running},
    )
    services.hooks.metric("StatementPolls", 1)
    return {"status": POLLING, "statement": pending.name, "query_id": pending.query_id, "running_seconds": running}


# what a table's LAST_RUN keeps of the run's summary when a repeated finaliser writes it (``_finish_repeat``)
LAST_RUN_FIELDS = (
    "source_rows",
    "target_rows",
    "source_checksum",
    "target_checksum",
    "validation",
    "compared",
    "source_as_of",
    "snapshot_spread_seconds",
    "finalise_seconds",
    "reason",
    "differences",
    "table_rows",
    "current_rows",
    "verified_at",
)


def _finish_repeat(msg: ChunkMessage, services: Services, key: TableKey, state: TableItem) -> None:
    """A finaliser of a table whose status is final already. If the run still holds the lease unreleased
    (a finaliser died between the status and the release), the last run is written and the lease released
    now, instead of the table staying blocked until the lease expires; then the run is counted."""
    s = services.settings
    if state.get("status") != SUPERSEDED:
        held = services.state.hold_lease(key, msg.run_id, s.lease_seconds, run_order(state))
        if held is not None:
            summary = {k: v for k, v in state.items() if k in LAST_RUN_FIELDS and v is not None}
            services.state.set_last_run(held, {"status": state["status"], **summary})
            services.state.release_lease(key, msg.run_id, s.min_interval_seconds)
    services.state.finish_run_if_complete(msg.run_id, msg.plan.table)


def _note_audit(
    msg: ChunkMessage,
    services: Services,
    key: TableKey,
    state: TableItem,
    chunks: dict[int, ChunkItem],
    result: dict[str, Any],
) -> None:
    """The rolling audit's slice of a published run (``pipeline/audit.py``): what it found, said loudly
    when the target differed (the MERGE has put it right), and the table's audit cursor moved past it."""
    first = state.get("audit_from")
    if first is None:
        return
    audited = sum(int(c.get("source_rows", 0)) for i, c in chunks.items() if i >= int(first))
    differing = int(result.get("audit_differences", 0))
    result["audit_rows"] = audited
    if differing:
        result["audit"] = (
            f"{differing:,} of the {audited:,} audited rows were missing from the target or differed from the "
            "source (changed outside the pipeline); the merge put them right"
        )
        logger.warning(result["audit"], extra={"run_id": msg.run_id, "table": msg.plan.table})
    services.hooks.metric("AuditDifferences", differing)
    services.hooks.metric("AuditedRows", audited)
    moved = services.state.advance_audit(
        key,
        msg.run_id,
        state.get("audit_cursor_from"),
        state.get("audit_cursor_to"),
        float(state.get("audit_cycle_at") or time.time()),
        audited,
    )
    if not moved:
        logger.info("the audit cursor had moved already (a repeat finaliser)", extra={"run_id": msg.run_id})


def _fill(msg: ChunkMessage, services: Services, key: TableKey, state: TableItem, tgt: Warehouse) -> dict[str, Any]:
    """A column version's pages (``column_fill.advance``) once the run's rows are in the target. A failure is
    said, not raised: the run's rows are committed, the cursor has not moved, the next run reads the pages
    again."""
    try:
        return column_fill.advance(msg.run_id, services, key, state, msg.plan, tgt)
    except Exception as e:  # noqa: BLE001 - the fill is beside the run's commit: the next run goes on with it
        note = f"column version not filled this run ({type(e).__name__}: {e}); the next run reads its pages again"
        logger.warning(note, extra={"run_id": msg.run_id, "table": msg.plan.table})
        return {"column_version": note}


def _record_drops(msg: ChunkMessage, services: Services, key: TableKey, result: dict[str, Any]) -> None:
    """A commit that kept target columns MySQL no longer has (``schema_changes.DROPPED_FIELD``): each drop is
    recorded once, as cdc and incremental planning record it (what, when, which run), unless an earlier
    run did. One catalog read, only when such a column exists."""
    change = schema_changes.SchemaChange.of_gone(result.pop(schema_changes.DROPPED_FIELD, None) or {})
    if not change.gone:
        return
    entry = services.state.catalog_entries([key]).get(key.table, {})
    detail = modes.get(msg.plan.mode).kept_detail(msg.plan)
    records = schema_changes.drop_records_of(change, entry, "", int(time.time()), detail)
    followed = runs.record_schema_changes(services, msg.run_id, key, records)
    if followed:
        result["schema_changes"] = followed


def _finished_by_another(msg: ChunkMessage, services: Services, error: Exception) -> dict[str, Any] | None:
    """After a commit failed: whether a concurrent finaliser of the table (a duplicate message, or a
    chunk's inline finaliser beside a finalise message) published or failed it meanwhile. Its commit
    stands; this one changed nothing (each commit checks the load table still holds what was
    validated, since the other one drops it) and reports the table's status as a repeat."""
    state = services.state.get_table(msg.run_id, msg.plan.table)
    status = state.get("status") if state else None
    if not is_final(status):
        return None
    logger.info(
        f"another finaliser {status} the table while this one committed ({type(error).__name__}: {error}); "
        "its outcome stands",
        extra={"run_id": msg.run_id, "table": msg.plan.table},
    )
    services.state.finish_run_if_complete(msg.run_id, msg.plan.table)
    return {"status": status, "repeat": True}


def _fail(
    msg: ChunkMessage,
    services: Services,
    bounds: list[Bounds],
    ids: list[int],
    chunks: dict[int, ChunkItem],
    loaded: dict[int, Sums],
    heal_round: int,
    result: dict[str, Any],
    differences: list[str] | None = None,
) -> None:
    details = _mismatch(chunks, loaded, bounds, ids)
    named = "; ".join(
        f"chunk {d['chunk']} ({d['range']}): {d['snapshot'][0]} rows {d['snapshot'][1]} in its snapshot, "
        f"{d['snowflake'][0]} rows {d['snowflake'][1]} in Snowflake"
        for d in details[:10]
    )
    reason = (
        f"validation mismatch: {len(ids)} chunk(s) still differ from their own snapshots after {heal_round} "
        f"re-copies (rows lost or changed between MySQL and Snowflake, not writes to MySQL): {named}; "
        "the load table is kept for inspection; rerun the table"
    )
    if differences:
        reason += "; differences: " + "; ".join(differences[:5])
        result["differences"] = differences
    result["last_mismatch"] = json.dumps(details[:50], default=str)[:20000]
    logger.error(reason, extra={"run_id": msg.run_id, "table": msg.plan.table, **result})
    services.state.set_table_status(msg.run_id, msg.plan.table, "failed", reason=reason[:4000], **result)
    services.hooks.metric("ValidationFailures", 1)


def _name_differences(
    msg: ChunkMessage,
    services: Services,
    tgt: Warehouse,
    unit: TablePlan,
    load_table: str,
    bounds: list[Bounds],
    ids: list[int],
    chunks: dict[int, ChunkItem],
    state: TableItem,
) -> list[str]:
    """The rows and columns that differ in the failing chunks (``diagnose.name_chunk_differences``):
    each chunk's validated attempt in the load table against MySQL's rows of that chunk's key range
    (and window) now. The only MySQL reads of a finaliser, bounded to a few chunks' key ranges, and
    only when a table fails; MySQL may have moved since the snapshots, which the report says."""
    window = modes.get(unit.mode).selection(msg.model_copy(update={"window_from": state.get("window_from")}))
    failing = [(i, bounds[i] if i < len(bounds) else (None, None), str(chunks[i].get("attempt"))) for i in ids]
    try:
        mysql = services.connections.place("source", services.connections.mysql())
    except Exception as e:  # noqa: BLE001 - the failure is recorded whether or not it can be named
        return [f"the differing rows were not named (MySQL unreachable: {type(e).__name__}: {e})"]
    try:
        found = diagnose.name_chunk_differences(mysql, tgt, unit, load_table, failing, window)
    finally:
        mysql.close()
    if found:
        found.append("(read from MySQL now: rows written since the chunks' snapshots may show up as well)")
    return found


def _heal(
    msg: ChunkMessage,
    services: Services,
    state: TableItem,
    bounds: list[Bounds],
    ids: list[int],
    chunks: dict[int, ChunkItem],
    loaded: dict[int, Sums],
    heal_round: int,
    result: dict[str, Any],
) -> dict[str, Any]:
    """Copy exactly the differing chunks again, each in a new snapshot, in the next round."""
    plan = msg.plan
    count = int(state.get("chunk_count", 0))
    details = _mismatch(chunks, loaded, bounds, ids)
    won = services.state.reopen_chunks(
        msg.run_id,
        plan.table,
        ids,
        heal_round,
        count,
        last_mismatch=json.dumps(details[:50], default=str)[:20000],
    )
    if won:  # one finaliser of the round re-enqueues; a duplicate of it does nothing
        planned = (state.get("window_from"), state.get("window_to"))
        audit_from = state.get("audit_from")
        messages = chunk_messages(
            msg.run_id, plan, bounds, planned, ids=ids, round=heal_round + 1, audit_from=audit_from
        )
        services.queue.send([m.body() for m in messages])
    logger.warning(
        "chunks differ from their snapshots; copying them again",
        extra={
            "run_id": msg.run_id,
            "table": plan.table,
            "round": heal_round + 1,
            "ranges": details[:20],
            "differing_chunks": len(ids),
            **result,
        },
    )
    return {"status": "healing", "round": heal_round + 1, "chunks": ids, **result}
