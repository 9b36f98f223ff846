"""The finaliser of a table: validate each chunk against its own snapshot, then heal, fail or commit.

It does not read MySQL to validate and its cost does not grow with the source table: it reads the
run's ledger (one small item per chunk) and runs one grouped checksum query over the load table,
restricted to the (chunk, attempt) pairs the ledger names. Every chunk's rows in Snowflake are
compared with the count and checksum its worker computed in the same snapshot it read them from, so
writes to MySQL after a chunk's snapshot are lag (the next run carries them), never a mismatch. A
mismatch is a real error: the chunk is copied again (``HEAL_ATTEMPTS`` rounds), then the table
fails, naming the chunks and their key ranges, and the rows and columns that differ
(``diagnose``): the one time a finaliser reads MySQL, bounded to a few failing chunks' own key
ranges. Once every chunk matches, the mode commits exactly those pairs (a late duplicate that loads
a new attempt afterwards changes nothing), and the watermark advances.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools import Logger, Tracer

from aurora_replication import checksums
from aurora_replication.errors import BadInputError
from aurora_replication.models import ChunkMessage, TablePlan
from aurora_replication.pipeline import diagnose, modes
from aurora_replication.pipeline.chunks import chunk_messages
from aurora_replication.pipeline.steps import Steps
from aurora_replication.services import Services
from aurora_replication.state import Bounds
from aurora_replication.target.client import Target
from aurora_replication.target.sql import load_table_name

logger = Logger(child=True)
tracer = Tracer()
EMPTY = checksums.EMPTY
Sums = tuple[int, str]
# a finalise that came before every chunk was done: the one the last chunk sends (same idempotency key) does the work
WAITING = "waiting"


@dataclass(frozen=True)
class Decision:
    """What the finaliser does with a validated round: ``publish`` (commit), ``heal`` (copy
    ``chunks`` again) or ``fail``."""

    action: Literal["publish", "heal", "fail"]
    chunks: list[int] = field(default_factory=list)


def snapshot_sums(chunks: dict[int, dict[str, Any]], count: int) -> list[Sums]:
    """Each chunk's (rows, checksum) as its worker read them in its snapshot."""
    rows = [chunks[i] for i in range(count)]
    return [(int(c.get("source_rows", 0)), str(c.get("source_checksum", EMPTY[1]))) for c in rows]


def differing_chunks(chunks: dict[int, dict[str, Any]], loaded: dict[int, Sums], count: int) -> list[int]:
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


def source_as_of(chunks: dict[int, dict[str, Any]]) -> float | None:
    """The oldest snapshot among the chunks: the source state the target is known to reflect."""
    times = [float(c["snapshot_at"]) for c in chunks.values() if c.get("snapshot_at") is not None]
    return min(times) if times else None


def describe_range(bounds: list[Bounds], chunk: int) -> str:
    if chunk >= len(bounds):
        return "the whole table"
    lo, hi = bounds[chunk]
    if lo is None and hi is None:
        return "the whole table"
    left = f"{tuple(lo)} < key" if lo is not None else "key"
    return f"{left} <= {tuple(hi)}" if hi is not None else f"{left} (to the end)"


def _mismatch(
    chunks: dict[int, dict[str, Any]], loaded: dict[int, Sums], bounds: list[Bounds], ids: list[int]
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
    chunks: dict[int, dict[str, Any]], loaded: dict[int, Sums], count: int, differing: list[int], compared: bool
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


def finalise(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    """Validate the table's chunks and publish, heal or fail it. The TABLE item is read here, fresh,
    even when the invocation read it a moment ago: a duplicate finaliser must see a table another one
    has just published."""
    started = time.perf_counter()
    plan = msg.plan
    s = services.settings
    state = services.state.get_table(msg.run_id, plan.table)
    if not state:
        raise BadInputError(f"run {msg.run_id} has no record of table {plan.table!r}")
    if state.get("status") in ("published", "failed"):
        # a finaliser that died after the status did not count the table, nor mark the run
        services.state.finish_run_if_complete(msg.run_id, plan.table)
        return {"status": state["status"], "repeat": True}
    heal_round = int(state.get("heal_round", 0))
    if msg.round < heal_round:
        return {"status": "stale", "round": msg.round, "current_round": heal_round}
    count = int(state.get("chunk_count", 0))
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
    with services.target() as sf:  # the container's warm connection (services.py)
        tgt = Target(sf, s.stage_name, services.ddl_done)
        # never re-create a load table a concurrent finaliser already published and dropped
        load_table = tgt.ensure_load_table(unit, msg.run_id) if count == 0 else load_table_name(unit, msg.run_id)
        token = f"{msg.round}-{secrets.token_hex(8)}"
        with step("validate"):
            pairs = [(i, str(chunks[i]["attempt"])) for i in range(count)]
            attempts = tgt.record_attempts(unit, msg.run_id, token, pairs)
            loaded = tgt.checksums_of_attempts(unit, load_table, attempts)
        services.fault("validated", msg)
        differing = differing_chunks(chunks, loaded, count) if compared else []
        result = _summary(chunks, loaded, count, differing, compared)
        decision = decide(differing, heal_round, s.heal_attempts)
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
            commit = modes.Commit(
                tgt, plan, load_table, attempts, s, msg, expected, fault=services.fault, loaded_rows=loaded_rows
            )
            try:
                with step(mode.commit_step):
                    result.update(mode.commit(commit))
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
                services.metric("ValidationFailures", 1)
            result["finalise_seconds"] = round(time.perf_counter() - started, 3)
            if status == "published":
                watermark = mode.watermark(state)
                if watermark is not None:
                    services.state.set_watermark(plan.table, watermark, msg.run_id)
                services.state.set_table_status(msg.run_id, plan.table, "published", finished_at=time.time(), **result)
                tgt.drop(load_table)  # a failed table keeps its load table for inspection
                if attempts.table is not None:
                    tgt.drop(attempts.table)
    services.fault("status_set", msg)
    services.state.release_lease(plan.table, msg.run_id, s.min_interval_seconds)
    services.state.set_last_run(plan.table, msg.run_id, {"status": status, **result})
    services.state.finish_run_if_complete(msg.run_id, plan.table)
    for name, step_seconds in step.laps.items():
        services.metric("ChunkSeconds", step_seconds, "Seconds", name)
    logger.info("table finalised", extra={"run_id": msg.run_id, "table": plan.table, "status": status, **result})
    return {"status": status, **result}


def _finished_by_another(msg: ChunkMessage, services: Services, error: Exception) -> dict[str, Any] | None:
    """After a commit failed: whether a concurrent finaliser of the table (a duplicate message, or a
    chunk's inline finaliser beside a finalise message) published or failed it meanwhile. Its commit
    stands; this one changed nothing (each commit checks the load table still holds what was
    validated, since the other one drops it) and reports the table's status as a repeat."""
    state = services.state.get_table(msg.run_id, msg.plan.table)
    status = state.get("status") if state else None
    if status not in ("published", "failed"):
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
    chunks: dict[int, dict[str, Any]],
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
    services.metric("ValidationFailures", 1)


def _name_differences(
    msg: ChunkMessage,
    services: Services,
    tgt: Target,
    unit: TablePlan,
    load_table: str,
    bounds: list[Bounds],
    ids: list[int],
    chunks: dict[int, dict[str, Any]],
    state: dict[str, Any],
) -> list[str]:
    """The rows and columns that differ in the failing chunks (``diagnose.name_chunk_differences``):
    each chunk's validated attempt in the load table against MySQL's rows of that chunk's key range
    (and window) now. The only MySQL reads of a finaliser, bounded to a few chunks' key ranges, and
    only when a table fails; MySQL may have moved since the snapshots, which the report says."""
    window = modes.get(unit.mode).selection(msg.model_copy(update={"window_from": state.get("window_from")}))
    failing = [(i, bounds[i] if i < len(bounds) else (None, None), str(chunks[i].get("attempt"))) for i in ids]
    try:
        mysql = services.mysql()
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
    state: dict[str, Any],
    bounds: list[Bounds],
    ids: list[int],
    chunks: dict[int, dict[str, Any]],
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
        messages = chunk_messages(msg.run_id, plan, bounds, planned, ids=ids, round=heal_round + 1)
        services.send_messages([m.body() for m in messages])
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
