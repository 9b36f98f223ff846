"""Change data capture (mode ``cdc``): the worker's side, apply a batch of changes, then commit its window.

The scheduler's side, reading one bounded binlog window and staging its batches, is
``modes/cdc/reader.py`` (as planning the chunks of the other modes is ``pipeline/scheduler.py``).
A cdc unit is a batch of binlog changes, not a key range read in a snapshot: it is applied to the
target as it arrives (there is no load-then-validate step), so ``Cdc`` answers the mode interface
with its own ``handle`` and commits the window (the binlog position) in ``finalise``.

Applying a batch: COPY its staged file into the run's load table, then MERGE it into the target
(``target.cdc_sql``): each change only where it is newer than the row's ``_ASR_POS``, deletes
leaving tombstones. Every step is safe to repeat and to run after a newer batch. A batch of a window
that is already committed (the stored position is at or past its end) is stale and skipped.

The window's finalise step, sent by whichever worker sees every batch done, advances the table's
stored position from the window start to its end (conditionally: never ahead of what was applied,
never backwards), prunes old tombstones and releases the table's lease.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.ledger.cdc import CdcItem, CdcState
from aurora_replication.ledger.keys import TableKey, run_order
from aurora_replication.ledger.runs import TableItem, table_is_final
from aurora_replication.models import ChangeBatch, ChunkMessage, TablePlan
from aurora_replication.pipeline import runs
from aurora_replication.pipeline.modes.base import Commit, SyncMode
from aurora_replication.pipeline.modes.cdc import health as cdc_health
from aurora_replication.pipeline.steps import Steps
from aurora_replication.services import Services
from aurora_replication.target.names import CHUNK_COLUMN, cdc_fill_table_name, cdc_load_table_name
from aurora_replication.target.warehouse import HistoryBroken, Warehouse

logger = Logger(child=True)
tracer = Tracer()
FILL_CHUNK = 0  # a column version page's chunk id in its load table (``reader.FILL_CHUNK``)
# tombstones older than this are pruned: longer than any worker lives (15 minutes), so no batch that a
# tombstone must hold back is still being applied (a committed window's batches are skipped as stale)
TOMBSTONE_SECONDS = 3600
QUIET_WINDOW = "not compared (cdc window without changes: no Snowflake statement; `replicate validate` compares)"


class Cdc(SyncMode):
    commit_step = "merge"
    name = "cdc"
    owns_flow = True  # planned and resumed by ``modes/cdc/reader.py``
    idle_when_unchanged = True

    def handle(self, message: ChunkMessage, services: Services) -> dict[str, Any]:
        return handle(message, services)

    def health_check(self) -> Callable[[Services], dict[str, Any]]:
        return cdc_health.check  # lag, stopped tables, positions purged or near the binlog retention

    def commit(self, c: Commit) -> dict[str, Any]:
        raise NotImplementedError("a cdc window is committed by its finalise step (modes/cdc/mode.py finalise)")


def handle(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    return finalise(msg, services) if msg.kind == "finalise" else apply_batch(msg, services)


def _table_state(msg: ChunkMessage, services: Services) -> TableItem:
    t = services.state.get_table(msg.run_id, msg.plan.table)
    if not t:
        raise BadInputError(f"run {msg.run_id} has no record of table {msg.plan.table!r}; the message is stale")
    return t


def is_stale(state: CdcItem | None, end: str) -> bool:
    """Whether the table's stored position is already at or past ``end`` (its window is committed)."""
    return bool(state) and str((state or {}).get("position_key", "")) >= end


def apply_batch(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    started = time.perf_counter()
    plan, batch, s = msg.plan, msg.batch, services.settings
    assert batch is not None
    t = _table_state(msg, services)
    if table_is_final(t):
        return {"rows": 0, "skipped": True}
    if is_stale(CdcState(services.state).get(TableKey.of_run_table(t, plan.table)), batch.end):
        logger.info("batch of a committed window; skipped", extra={"run_id": msg.run_id, "table": plan.table})
        return {"rows": 0, "skipped": True, "stale": True}
    step = Steps(tracer)  # X-Ray subsegments, cost scope and timeline laps, as a chunk's copy has
    with services.connections.target() as sf:  # the container's warm connection, as a chunk's copy uses
        tgt = services.connections.warehouse(sf)
        load = cdc_load_table_name(plan, msg.run_id)
        with step("copy"):
            loaded = tgt.load_changes(plan, load, msg.chunk_id, batch.path, batch.file)
        services.hooks.fault("copied", msg)
        if loaded != batch.rows:
            raise RuntimeError(
                f"batch {msg.chunk_id} of table {plan.table!r} has {loaded} of its {batch.rows} changes in the load "
                f"table and its staged file {batch.path}/{batch.file} is gone; resume the run after the cause "
                "is fixed, or re-snapshot the table"
            )
        with step("merge"):
            if plan.history:  # every change a version, ordered by position (``target/history_sql.py``)
                tgt.ensure_history_table(plan)
                tgt.history_cdc_merge(plan, load, msg.chunk_id)
            else:
                tgt.prepare_changes(plan, s.reconcile_action)
                if s.reconcile_action == "delete":
                    tgt.merge_tombstones(plan, load, msg.chunk_id)
                    services.hooks.fault("tombstoned", msg)
                tgt.merge_changes(plan, load, msg.chunk_id, s.reconcile_action, batch.key_range())
        services.hooks.fault("merged", msg)
    seconds = time.perf_counter() - started
    for name, lap in step.laps.items():
        services.hooks.metric("ChunkSeconds", lap, "Seconds", name)
    services.hooks.metric("CdcChangesApplied", batch.rows)
    count = msg.chunk_count
    _recorded, done = services.state.mark_chunk_done(
        msg.run_id, plan.table, msg.chunk_id, msg.round, {"rows": batch.rows, "seconds": seconds}
    )
    services.hooks.fault("marked_done", msg)
    key = TableKey.of_run_table(t, plan.table)
    if not services.state.renew_lease(key, msg.run_id, s.lease_seconds, run_order(t)):  # progress: keep the table
        logger.warning("the run no longer holds the table's lease", extra={"run_id": msg.run_id, "table": plan.table})
    logger.info(
        "cdc batch applied",
        extra={
            "run_id": msg.run_id,
            "table": plan.table,
            "batch": msg.chunk_id,
            "changes": batch.rows,
            "done": done,
            "seconds": round(seconds, 3),
            "steps": {name: round(lap, 3) for name, lap in step.laps.items()},  # copy, merge
        },
    )
    if done >= count:
        final = ChunkMessage(kind="finalise", run_id=msg.run_id, chunk_id=0, chunk_count=count, plan=plan)
        services.queue.send([final.body()])
    return {"rows": batch.rows, "done": done, "of": count}


def _apply_audit(msg: ChunkMessage, services: Services, t: TableItem) -> dict[str, Any]:
    """The rolling audit's batch of the window (``reader.stage_audit``), applied once every change of
    the window is: the rows the target does not hold as the source's snapshot has them are counted (once:
    a repeated finaliser keeps the first count), then the batch is merged as any batch is, under the
    position guard (a change newer than the snapshot keeps its row)."""
    plan, s = msg.plan, services.settings
    batch = ChangeBatch.model_validate(t["audit_batch"])
    chunk = int(t["audit_from"])  # the batch's chunk id in the load table (reader.AUDIT_CHUNK)
    with services.connections.target() as sf:
        tgt = services.connections.warehouse(sf)
        load = cdc_load_table_name(plan, msg.run_id)
        _load_whole(tgt, plan, load, chunk, batch, "the audit batch")
        rows = f"{q(load)}.{q(CHUNK_COLUMN)} = %s"
        if plan.history:
            tgt.ensure_history_table(plan)
        else:
            tgt.prepare_changes(plan, s.reconcile_action)
        differing = t.get("audit_differences")
        if differing is None:
            if plan.history:  # the slice against the current versions
                differing = tgt.history_changed(plan, load, rows, [chunk])
            else:
                differing = tgt.audit_changes(plan, load, chunk, s.reconcile_action)
            if not services.state.note_once(msg.run_id, plan.table, "audit_differences", differing):
                differing = services.state.get_table(msg.run_id, plan.table).get("audit_differences", differing)
        services.hooks.fault("audit_counted", msg)
        if plan.history:  # a row that differs gets a corrective version at the audit's position
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(t.get("window_read_at") or time.time())))
            tgt.history_snapshot(plan, load, rows, [chunk], at, batch.start)
        else:
            tgt.merge_changes(plan, load, chunk, s.reconcile_action)
    audited: dict[str, Any] = {"audit_rows": batch.rows, "audit_differences": int(differing)}
    if differing:
        audited["audit"] = (
            f"{int(differing):,} of the {batch.rows:,} audited rows were missing from the target or differed from "
            "the source's snapshot (changed outside the pipeline, or in the moments between the window's end and "
            "the snapshot); the merge put them right"
        )
        logger.warning(audited["audit"], extra={"run_id": msg.run_id, "table": plan.table})
    services.hooks.metric("AuditDifferences", int(differing))
    services.hooks.metric("AuditedRows", batch.rows)
    return audited


def _apply_fill(msg: ChunkMessage, services: Services, t: TableItem) -> None:
    """A column version's pages of the window (``reader.stage_fill``), read from MySQL after the window's
    end, written into the target's rows by key once every change of the window is applied. A repeat (a
    finaliser run again) writes the same values: no later window is applied before this one commits."""
    plan = TablePlan.model_validate_json(str(t["fill_plan"]))
    batch = ChangeBatch.model_validate(t["fill_batch"], strict=False)
    column = plan.column(str(t["fill_column"]))
    with services.connections.target() as sf:
        tgt = services.connections.warehouse(sf)
        load = cdc_fill_table_name(plan, msg.run_id)
        _load_whole(tgt, plan, load, FILL_CHUNK, batch, "the column version pages")
        tgt.fill_version(plan, load, FILL_CHUNK, column)
    services.hooks.fault("cdc_fill_applied", msg)


def _advance_fill(services: Services, key: TableKey, t: TableItem) -> dict[str, Any]:
    """Once the window is committed: the version's cursor past the pages applied, or the version filled."""
    cdc = CdcState(services.state)
    versions = dict((cdc.get(key) or {}).get("column_versions") or {})
    name = str(t["fill_column"])
    v = versions.get(name)
    if v is None:  # a new initial copy replaced the state meanwhile: nothing to move
        return {}
    v["cursor"] = str(t.get("fill_cursor") or "") or None
    v["filled"] = bool(t.get("fill_done"))
    cdc.set_versions(key, versions)
    rows = int(t["fill_batch"].get("rows") or 0)
    state = "filled" if v["filled"] else f"filling (cursor {v['cursor']})"
    return {"column_version": f"{v['target']}: {rows:,} rows filled this window; {state}"}


def _advance_audit(msg: ChunkMessage, services: Services, key: TableKey, t: TableItem, audited: dict[str, Any]) -> None:
    """The table's audit cursor past the slice, once the window is committed (a repeat moves it at most once)."""
    services.state.advance_audit(
        key,
        msg.run_id,
        t.get("audit_cursor_from"),
        t.get("audit_cursor_to"),
        float(t.get("audit_cycle_at") or time.time()),
        int(audited.get("audit_rows", 0)),
    )


def _settle_history(msg: ChunkMessage, services: Services, batches: int) -> None:
    """History mode, once every batch of the window is applied and before the audit: the window's batches
    once more in one MERGE, so that batches applied at the same moment (each reading the table as it
    was when it began) leave every touched key's chain derived from all of them."""
    plan = msg.plan
    with services.connections.target() as sf:
        tgt = services.connections.warehouse(sf)
        load = cdc_load_table_name(plan, msg.run_id)
        tgt.ensure_history_table(plan)
        if tgt.exists(load):
            tgt.history_settle(plan, load, batches)  # the batches' chunk ids: 0 .. batches - 1
    services.hooks.fault("history_settled", msg)


def _truncate_history(msg: ChunkMessage, services: Services, truncations: list[Any]) -> None:
    """History mode, once the window's batches are settled: each TRUNCATE of the window, in binlog order,
    closes the keys live before it with a delete version at its position (``history_sql.truncate_markers``).
    A repeat adds nothing, so a finaliser that dies here runs it all again."""
    if not truncations:
        return
    with services.connections.target() as sf:
        tgt = services.connections.warehouse(sf)
        for position, at in truncations:
            tgt.history_truncate(msg.plan, str(position), int(at))
    services.hooks.fault("truncated", msg)


def _load_whole(tgt: Warehouse, plan: TablePlan, load: str, chunk: int, batch: ChangeBatch, what: str) -> None:
    """Load a staged file the finalise reads whole (the audit batch, a column version's pages) into the load
    table under ``chunk``; a file whose rows are not all there (gone from the stage) fails the step loudly."""
    loaded = tgt.load_changes(plan, load, chunk, batch.path, batch.file, audit=True)
    if loaded != batch.rows:
        raise RuntimeError(
            f"{what} of {plan.table!r}: {loaded} of {batch.rows} rows in the load table, and the staged file "
            f"{batch.path}/{batch.file} is gone; resume the run, or start a new one"
        )


def _check_history(msg: ChunkMessage, services: Services, tgt: Warehouse, load: str) -> None:
    """History mode, once every batch of the window (and the audit) is applied: the current-state view made
    again (its columns follow the table's), and the history's invariants over the keys the window touched
    (``history_sql.invariants``): a broken rule fails the table, loudly, before its position moves."""
    plan = msg.plan
    tgt.history_view(plan)
    keys = ", ".join(q(plan.column(k).target) for k in plan.key)
    if tgt.exists(load):
        tgt.check_history(plan, f"SELECT DISTINCT {keys} FROM {q(load)}")  # noqa: S608 (quoted names)
    services.hooks.fault("history_checked", msg)


def _check_not_null(
    msg: ChunkMessage, services: Services, t: TableItem, key: TableKey, held: Any
) -> dict[str, Any] | None:
    """Columns MySQL declares NOT NULL since the window's start, once the window (its ALTER included) is
    applied: a live target row still holding NULL in one is a row MySQL rewrote in the ALTER (a session
    without strict mode gives it the column's implicit default), which no binlog event carries. Then the
    table stops, loudly, before its position moves; otherwise None (the change was followed exactly)."""
    plan, s = msg.plan, services.settings
    with services.connections.target() as sf:
        tgt = services.connections.warehouse(sf)
        found = {str(c): tgt.null_rows(plan, str(c), s.reconcile_action) for c in t["not_null_check"]}
    bad = {c: n for c, n in found.items() if n}
    if not bad:
        return None
    column, rows = next(iter(bad.items()))
    reason = (
        f"table {plan.table!r}: column {column!r} is NOT NULL in MySQL now, but {rows:,} live rows of the target "
        "hold NULL in it: MySQL rewrote them in the ALTER (a session without STRICT_TRANS_TABLES gives them the "
        "column's implicit default), and no binlog event carries those values; re-snapshot the table: "
        f"`replicate run --mode cdc --resnapshot --tables {plan.table}`"
    )
    logger.error(reason, extra={"run_id": msg.run_id, "table": plan.table})
    CdcState(services.state).stop(key, reason)
    services.state.set_table_status(msg.run_id, plan.table, "failed", reason=reason)
    services.state.set_last_run(held, {"status": "failed", "mode": "cdc", "reason": reason})
    services.state.release_lease(key, msg.run_id, 0)
    services.state.finish_run_if_complete(msg.run_id)
    return {"status": "failed", "reason": reason}


def touched_target(t: TableItem, plan: TablePlan) -> bool:
    """Whether the window wrote anything in Snowflake for the table: a batch applied, a TRUNCATE, a
    column version's pages, an audit slice, or a history table (checked each window). A window with
    none of them (a table that did not change, the usual case across thousands of tables) created no
    load or fill table, left no new tombstone and did not change the target's row count, so its
    finalise runs no Snowflake statement: no login, and no warehouse time for the tombstone prune,
    which waits for the table's next window with changes (an old tombstone only holds back upserts
    older than itself, so keeping it longer changes no row). The target's count noted by the last
    commit stands for the next run's drift check (``pipeline/target_check.py``), which then also sees
    rows changed behind the pipeline's back during this window."""
    return bool(
        int(t.get("chunk_count", 0))
        or plan.history
        or t.get("truncate_at")
        or t.get("fill_batch")
        or t.get("audit_batch")
        or t.get("not_null_check")
    )


def finalise(msg: ChunkMessage, services: Services) -> dict[str, Any]:
    plan, s = msg.plan, services.settings
    t = _table_state(msg, services)
    if table_is_final(t):
        return {"status": t["status"], "repeat": True}
    count = int(t.get("chunk_count", 0))
    applied = services.state.get_chunks(msg.run_id, plan.table)
    missing = services.state.outstanding(applied, count, 0)
    if t.get("cdc_to") is None or missing:
        raise RuntimeError(
            f"finalise of {plan.table!r} arrived with {count - len(missing)}/{count} batches applied; retrying"
        )
    cdc = CdcState(services.state)
    key = TableKey.of_run_table(t, plan.table)  # the scope the run was planned in
    held = services.state.hold_lease(key, msg.run_id, s.lease_seconds, run_order(t))
    if held is None:  # another run took the table: its windows carry the changes; the position stays
        return runs.end_superseded(services, msg.run_id, key)
    if plan.history:
        _settle_history(msg, services, count)
        _truncate_history(msg, services, t.get("history_truncations") or [])
    if t.get("truncate_at"):  # a TRUNCATE in the window: the rows older changes wrote go, before the audit
        with services.connections.target() as sf:
            services.connections.warehouse(sf).truncate_before(plan, s.reconcile_action, str(t["truncate_at"]))
        services.hooks.fault("truncated", msg)
    if t.get("fill_batch"):  # a column version's pages, after every change of the window (docs/cdc.md)
        _apply_fill(msg, services, t)
    audited = _apply_audit(msg, services, t) if t.get("audit_batch") else {}
    if plan.history:
        try:
            with services.connections.target() as sf:
                _check_history(msg, services, services.connections.warehouse(sf), cdc_load_table_name(plan, msg.run_id))
        except HistoryBroken as e:  # loud: the table fails, its position stays where it was
            reason = str(e)[:2000]
            logger.error(reason, extra={"run_id": msg.run_id, "table": plan.table})
            services.state.set_table_status(msg.run_id, plan.table, "failed", reason=reason)
            services.state.set_last_run(held, {"status": "failed", "mode": "cdc", "reason": reason})
            services.state.release_lease(key, msg.run_id, 0)
            services.state.finish_run_if_complete(msg.run_id)
            return {"status": "failed", "reason": reason}
    if t.get("not_null_check"):
        stopped = _check_not_null(msg, services, t, key, held)
        if stopped is not None:
            return stopped
    caught_up_at = float(t.get("window_read_at") or time.time())
    newest = int(t.get("newest_event_at") or 0) or None
    window_from, window_to = t.get("cdc_from") or {}, t.get("cdc_to") or {}  # both there: checked above
    committed = cdc.advance(held, window_from, window_to, caught_up_at, newest)
    services.hooks.fault("committed", msg)
    result: dict[str, Any] = {
        "changes": sum(int(c.get("rows") or 0) for c in applied.values()),
        "upserts": int(t.get("upserts", 0)),
        "deletes": int(t.get("deletes", 0)),
        **({"truncated_at": str(t["truncate_at"])} if t.get("truncate_at") else {}),
        **({"truncated_at": str(t["history_truncations"][-1][0])} if t.get("history_truncations") else {}),
        "position": f"{window_to.get('file')}:{window_to.get('pos')}",
        "validation": "not compared (cdc window; `replicate validate` compares)",
        **audited,
    }
    if not committed:
        reason = (
            f"the stored position of {plan.table!r} is no longer this window's start {t['cdc_from']}: "
            "another run moved it; this run's changes were applied and are harmless, the position was not moved"
        )
        services.state.set_table_status(msg.run_id, plan.table, "failed", reason=reason, **result)
    else:
        if touched_target(t, plan):
            with services.connections.target() as sf:
                tgt = services.connections.warehouse(sf)
                load = cdc_load_table_name(plan, msg.run_id)
                if s.reconcile_action == "delete" and not plan.history:
                    tgt.prune_tombstones(plan, TOMBSTONE_SECONDS)
                tgt.drop(load)
                tgt.drop(cdc_fill_table_name(plan, msg.run_id))
                # what the target holds now: the next run checks it against this (``pipeline/target_check.py``)
                result["table_rows"] = tgt.row_count(plan.target_table)
        else:  # a quiet window: the target is as the last commit left it (its count, noted then, stands)
            result["validation"] = QUIET_WINDOW
        if t.get("schema_columns"):  # the schema the new position is valid for (a change since is the next
            # run's to compare: a type changed, a column dropped, whose older events are now all applied)
            cdc.set_columns(key, json.loads(str(t["schema_columns"])))
        if audited:
            _advance_audit(msg, services, key, t, audited)
        if t.get("fill_batch"):
            result.update(_advance_fill(services, key, t))
        services.state.set_table_status(msg.run_id, plan.table, "published", finished_at=time.time(), **result)
    status = "published" if committed else "failed"
    services.state.set_last_run(held, {"status": status, "mode": "cdc", **result})
    services.state.release_lease(key, msg.run_id, s.min_interval_seconds)
    services.state.finish_run_if_complete(msg.run_id)
    logger.info("cdc window committed", extra={"run_id": msg.run_id, "table": plan.table, **result})
    return {"status": status, **result}
