"""The scheduler's work: validate the run request, plan every table (``pipeline/planning.py``), record the
run, send chunks.

Everything that can fail on bad input (unknown table, unsupported type, missing watermark)
fails during planning, before anything is written to DynamoDB or SQS.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from aurora_replication.cost import meter
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Scope
from aurora_replication.ledger.runs import still_running, table_count
from aurora_replication.models import (
    ChunkRef,
    RunRequest,
    TableOptions,
    new_run_id,
    parse_run_request,
    parse_scheduler_event,
)
from aurora_replication.pipeline import (
    column_versions,
    databases,
    modes,
    planning,
    resume,
    runs,
    transforms,
)
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.pipeline.modes.cdc import databases as cdc_databases
from aurora_replication.pipeline.modes.cdc import reader as cdc_reader
from aurora_replication.pipeline.planning import (
    PlannedTable,
    TargetColumns,
    claim_databases,
    plan_table,
    resolve_tables,
)
from aurora_replication.services import Services
from aurora_replication.typemap import UnsupportedTypeError

logger = Logger(child=True)
tracer = Tracer()


def parse_request(event: Any, default_mode: str) -> RunRequest:
    return parse_run_request(event, default_mode)


def _lease(
    p: PlannedTable,
    run_id: str,
    services: Services,
    summary: dict[str, Any],
    target_columns: TargetColumns,
    scope: Scope,
    seconds: int | None = None,
) -> bool:
    """Take the table's lease (a conditional write; for ``seconds``, by default LEASE_SECONDS) and evolve
    its target's schema; or, when another run holds the lease, resume that run's stalled table once, and
    record this run's table declined."""
    table = p.plan.table
    key = scope.key(table)
    for note in p.notes:
        logger.info(note, extra={"run_id": run_id, "table": table})
    ok, reason = services.state.acquire_lease(key, run_id, seconds or services.settings.lease_seconds)
    if not ok:
        # a lease held by a stalled run: resume that run's table once instead of only declining
        resumed = resume.auto_resume(key, services)
        extra = {k: resumed[k] for k in ("resumed_run", "resumed")} if resumed else {}
        reason = resumed["reason"] if resumed else reason
        services.state.record_table(run_id, table, scope, status="declined", reason=reason, chunk_count=0, **extra)
        logger.warning("table declined", extra={"run_id": run_id, "table": table, "reason": reason})
        summary["tables"][table] = {"status": "declined", "reason": reason, **extra}
        return False
    target_columns.execute(p.alters)  # schema evolution, before any chunk of this run loads
    if p.fields.pop(column_versions.CREATED_FIELD, False):  # a new column version: kept from now on
        services.state.set_column_versions(key, json.loads(p.fields[column_versions.VERSIONS_FIELD]))
    if p.schema_changes:  # recorded once the run holds the table: what, when, which run
        p.fields["schema_changes"] = runs.record_schema_changes(services, run_id, key, p.schema_changes)
    return True


def _fail_unsent(
    run_id: str,
    names: list[str],
    group: list[PlannedTable],
    services: Services,
    summary: dict[str, Any],
    error: BaseException,
    scope: Scope,
) -> None:
    """The scheduler stopped half way (a lost connection, a throttled write): the run's tables that
    were not sent are recorded failed with the reason, and the leases of those it had taken are
    released, so the run ends (failed) instead of waiting for tables that never come. ``group``, the
    leased tables not yet sent, counts as unsent even if its records were written before the error:
    some of its messages may be missing, and a chunk of a failed table is ignored. Best effort: the
    error that stopped the scheduler is raised after it either way."""
    leased = {p.plan.table for p in group}
    reason = (
        f"not copied: the scheduler stopped before sending it ({type(error).__name__}: {error}); run the table again"
    )
    for table in names:
        if table in summary["tables"] and table not in leased:
            continue
        if table not in leased and services.state.get_table(run_id, table):
            continue  # recorded by an earlier invocation (a continued run): not this one's to end
        try:
            runs.record_failed(services, run_id, summary, table, reason)
            if table in leased:
                services.state.release_lease(scope.key(table), run_id, 0)
        except Exception:  # noqa: BLE001 - the original error is what the caller needs to see
            logger.exception("could not record the unsent table", extra={"run_id": run_id, "table": table})


# leased tables whose records and messages are written together: ten one-chunk tables are one
# BatchWriteItem (20 items: up to 25 go in one) and one SendMessageBatch (up to 10 messages)
WRITE_GROUP = 10


def _record_and_send(planning: Planning) -> None:
    """Record the group's tables (TABLE items and key ranges, with the run's scope), send their chunk
    messages, then make their leases LEASE_SECONDS long (taken for the planner's own time only)."""
    group, services, run_id, scope = planning.group, planning.services, planning.run_id, planning.scope
    summary = planning.summary
    if not group or summary is None:
        return
    meter.focus(None)  # the batched writes are the group's: spread over its tables
    services.state.record_tables(
        run_id,
        [
            (
                p.plan.table,
                {
                    "status": "running",
                    "mode": p.plan.mode,
                    "plan": p.plan.model_dump(mode="json"),
                    "chunk_count": len(p.bounds),
                    "window_from": p.window[0] if p.window else None,
                    "window_to": p.window[1] if p.window else None,
                    "plan_seconds": str(round(p.plan_seconds, 3)),
                    "notes": p.notes,
                    "started_at": Decimal(str(round(time.time(), 3))),
                    **({"drift": p.drift.describe()} if p.drift is not None else {}),
                    **p.fields,
                },
                p.bounds,
            )
            for p in group
        ],
        scope,
    )
    bodies: list[str] = []
    owners: list[str] = []
    for p in group:
        table = p.plan.table
        messages = chunk_messages(run_id, p.plan, p.bounds, p.window, audit_from=p.fields.get("audit_from"))
        if not messages:  # empty table: nothing to copy, only the finalise step
            messages = [finalise_message(run_id, p.plan, 0)]
        bodies.extend(m.body() for m in messages)
        owners.extend(table for _ in messages)
        summary["tables"][table] = {"status": "running", "mode": p.plan.mode, "chunks": len(p.bounds), "notes": p.notes}
        if p.drift is not None:
            summary["tables"][table]["drift"] = p.drift.describe()
            services.hooks.metric("TargetDrift", 1)
        logger.info(
            "table planned",
            extra={
                "run_id": run_id,
                "table": table,
                "mode": p.plan.mode,
                "chunks": len(p.bounds),
                "plan_seconds": round(p.plan_seconds, 3),
            },
        )
    services.queue.send(bodies, owners)
    for p in group:  # recorded and sent: the run now holds each table as long as it makes progress
        services.state.hold_lease(scope.key(p.plan.table), run_id, services.settings.lease_seconds, Decimal(0))
    planning.group = []


def schedule(event: Any, services: Services) -> dict[str, Any]:
    s = services.settings
    request = parse_scheduler_event(event, s.default_mode)
    if isinstance(request, str):  # a resume request: the run's id
        meter.set_run(request)
        return resume.resume(request, services)
    run_id = request.run_id or new_run_id()
    meter.set_run(run_id)  # the run's cost figures and query tags name it from here on
    target_columns = TargetColumns(services)
    try:
        if modes.requested(request.mode).owns_flow:  # change data capture has its own flow (modes/cdc/reader.py)
            if request.databases is not None:  # several source databases: one binlog window serves them all
                return cdc_databases.schedule(request, run_id, services)
            return cdc_reader.schedule(request, run_id, services, target_columns)
        if request.databases is not None:  # several source databases: a run of each
            return _schedule_databases(request, run_id, services)
        return _schedule(request, run_id, services, target_columns)
    finally:
        target_columns.close()


def _locate(services: Services, request: RunRequest, scope: Scope) -> None:
    """Connections of a run of one of several databases read its database and write its schema."""
    services.endpoints.locate(
        scope.source_database, scope.target_schema if request.database_mapping == "schema" else None
    )


def _schedule_databases(request: RunRequest, run_id: str, services: Services) -> dict[str, Any]:
    """A request naming several source databases: every database, table and target name is checked first
    (nothing is written while one is wrong), each ``schema`` mapping's schema made, then one run per
    database is planned as a request of one database is (``_schedule``), in its scope
    (``pipeline/databases.py``). A database whose every table fails planning is answered failed; the
    request fails only when all do."""
    assert request.databases is not None and request.database_mapping is not None
    base = services.endpoints.scope()
    owners = services.state.target_owner_mappings(always=True)  # the stack's own tables too, before the first such run
    conn = services.connections.mysql()
    try:
        available = databases.list_databases(conn)
        chosen = databases.match_databases(request.databases, available)
        scopes = {d: databases.scope_for(base, d, request.database_mapping) for d in chosen}
        tables = {d: resolve_tables(conn, services, d, request)[0] for d in chosen}
        if request.database_mapping == "merge":  # one shared table holds one shape
            every = sorted({t for names in tables.values() for t in names})
            # the databases merged into these tables before (the catalog's), not named now, compared too: the
            # shared table is not evolved to the shape of some of its databases only
            merged_before = {
                d
                for t in every
                for d, m in owners.get(databases.where_copied(scopes[chosen[0]], t), {}).items()
                if m == "merge" and d not in chosen and d in available
            }
            compared = [*chosen, *sorted(merged_before)]
            databases.shapes_agree(databases.table_shapes(conn, compared, every), every)
    finally:
        conn.close()
    children = claim_databases(services, run_id, request, scopes, tables, owners)
    summary: dict[str, Any] = {"run_id": run_id, "runs": {}}
    errors: list[str] = []
    try:
        for d in chosen:
            child = request.model_copy(update={"databases": [d], "run_id": children[d]})
            _locate(services, request, scopes[d])
            target_columns = TargetColumns(services)
            try:
                meter.set_run(children[d])
                summary["runs"][d] = _schedule(child, children[d], services, target_columns, scopes[d], {})
            except BadInputError as e:
                errors.append(f"database {d!r}: {e}")
                summary["runs"][d] = {"run_id": children[d], "status": "failed", "error": str(e)}
            finally:
                target_columns.close()
    finally:
        services.endpoints.locate(None, None)
    if len(errors) == len(chosen):
        raise BadInputError("; ".join(errors))
    return summary


@dataclass
class Planning:
    """One invocation's planning of a run's tables (the scheduler's, or a worker's continuing it)."""

    conn: Any
    services: Services
    database: str
    request: RunRequest
    run_id: str
    names: list[str]
    options: dict[str, TableOptions]
    scope: Scope
    target_columns: TargetColumns
    summary: dict[str, Any] | None = None  # None until the run is recorded (its first table planned)
    failed: dict[str, str] = field(default_factory=dict)
    group: list[PlannedTable] = field(default_factory=list)
    done: int = 0  # the tables of ``names`` planned and recorded (or failed, or declined), from the first


def _schedule(
    request: RunRequest,
    run_id: str,
    services: Services,
    target_columns: TargetColumns,
    scope: Scope | None = None,
    owners: dict[tuple[str, str, str], dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Plan the tables one after the other and send each group of leased tables' messages as soon as
    it is planned: the workers copy the first tables while the later ones are planned (a database of
    thousands of tables spends seconds in ``information_schema`` before its last table is planned).
    Nothing is written until a table has been planned: a request whose every table fails planning is
    an error that leaves no run behind. A table that fails planning later is recorded failed then;
    the run lists every table from its start, so it cannot finish before they all have. Planning stops
    inside the invocation's budget and a worker plans the rest (``_plan``, ``continue_planning``).
    ``scope``: one of several databases' (``_schedule_databases``), its connections located there, and
    ``owners`` ({}: checked already) the Snowflake tables other databases were copied into."""
    conn = services.connections.place("source", services.connections.mysql())
    p: Planning | None = None
    try:
        database = scope.source_database if scope is not None else services.endpoints.mysql_settings().dbname
        # the run's, recorded with it: its workers and a resume use this one
        scope = scope or services.endpoints.scope()
        names, options = resolve_tables(conn, services, database, request)
        databases.not_another_databases(services.state, scope, names, owners)
        target_columns.expect(names, scope)
        p = Planning(conn, services, database, request, run_id, names, options, scope, target_columns)
        _plan(p, 0)
        if p.summary is None:
            raise BadInputError("; ".join(p.failed.values()))
    except Exception as e:
        if p is not None and p.summary is not None:  # the run is recorded: end its unsent tables, not leave it waiting
            _fail_unsent(run_id, p.names[p.done :], p.group, services, p.summary, e, p.scope)
        raise
    finally:
        conn.close()
    meter.focus(None)
    services.state.finish_run_if_complete(run_id)
    return p.summary


def _plan(p: Planning, start: int) -> None:
    """Plan ``p.names`` from ``start`` on, within the invocation's budget: no table is started once the
    deadline less DEADLINE_MARGIN_SECONDS has passed (the first table of a new run excepted: a run is
    recorded with one). Once the run is recorded, this invocation claims its planning until its own
    deadline and sends a ``plan`` message delayed until then: should the invocation be killed at any
    point, that message has a worker plan what is left (``continue_planning``). Stopped by its budget,
    it frees the claim and sends the message for the rest at once. Leases are taken for the invocation's
    own time and made LEASE_SECONDS long only once the table's records and messages are written, so a
    planner killed half way leaves no table leased past its deadline (and the run, its tables planned by
    the message, or failed, ``running`` no longer than that)."""
    services = p.services
    claimed = p.summary is not None
    for i in range(start, len(p.names)):
        if p.summary is not None and not claimed:
            _claim(p, i)
            claimed = True
        if p.summary is not None and services.deadline.seconds_left() <= 0:
            _record_and_send(p)
            services.state.note_planned(p.run_id, i, release=True)
            services.queue.send([_plan_message(p, i)], [meter.UNATTRIBUTED])
            p.summary.setdefault("continued", f"tables {i + 1} to {len(p.names)} planned by a worker (plan message)")
            logger.info(
                "scheduler budget reached; the rest of the tables are planned by a worker",
                extra={"run_id": p.run_id, "planned": i, "of": len(p.names)},
            )
            return
        t = p.names[i]
        meter.focus(t, "plan")
        try:
            planned = plan_table(p.conn, services, p.database, t, p.request, p.target_columns, p.options, p.scope)
            if planned.plan.history:
                planning.history_not_in_cdc(services, planned.plan, p.scope)
        except (BadInputError, UnsupportedTypeError) as e:
            p.failed[t] = str(e)  # this table stops; the others go on
            if p.summary is not None:
                runs.record_failed(services, p.run_id, p.summary, t, str(e))
                p.done = i + 1 if not p.group else p.done
            continue
        if p.summary is None:  # the first planned table: the run is recorded, with the failures so far
            p.summary = runs.open_run(services, p.run_id, p.request, p.names, p.failed, p.scope)
            _claim(p, i)
            claimed = True
        seconds = planning.lease_seconds_while_planning(services)
        if _lease(planned, p.run_id, services, p.summary, p.target_columns, p.scope, seconds):
            p.group.append(planned)
        elif not p.group:
            p.done = i + 1
        if len(p.group) >= WRITE_GROUP:
            _record_and_send(p)
            p.done = i + 1
            services.state.note_planned(p.run_id, p.done)
    _record_and_send(p)
    p.done = len(p.names)
    if p.summary is not None:
        services.state.note_planned(p.run_id, p.done, release=True)


def _claim(p: Planning, start: int) -> None:
    """Claim the run's planning until this invocation's deadline, and send the ``plan`` message that
    continues it should the invocation die: delayed until the deadline (SQS: at most 900 s)."""
    services = p.services
    left = services.deadline.seconds_left() + services.settings.deadline_margin_seconds
    if left == float("inf"):  # no deadline (the CLI, a test): nothing to watch over
        return
    until = math.ceil(time.time() + left)
    services.state.claim_planning(p.run_id, until)
    # a message of the run's, not of a table's: its cost is shared by the tables (cost/settle.spread)
    services.queue.send([_plan_message(p, start)], [meter.UNATTRIBUTED], delay_seconds=_after(until))


def _after(until: float) -> int:
    """The delay (SQS DelaySeconds, at most 900) that delivers a message after the epoch time ``until``."""
    return max(1, min(900, math.ceil(until - time.time()) + 1))


def _plan_message(p: Planning, start: int) -> str:
    """The body of a ``plan`` message: the run, and the position (and name) of the next table to plan."""
    ref = ChunkRef(kind="plan", run_id=p.run_id, table=p.names[start], chunk_id=start, chunk_count=len(p.names))
    return ref.model_dump_json(exclude_none=True)


def continue_planning(message: Any, services: Services) -> dict[str, Any]:
    """A ``plan`` message: plan the run's tables the scheduler (or an earlier worker) left, from where
    the run's record says planning got, unless another invocation plans them now (a claim on the RUN
    item) or none is left. Within this invocation's budget, as the scheduler plans."""
    run_id = message.run_id
    meter.set_run(run_id)
    run = services.state.run_item(run_id)
    if not still_running(run):
        return {"kind": "plan", "status": "nothing to plan", "run_id": run_id}
    start = int(run.get("planned", 0))
    if start >= table_count(run):
        services.state.finish_run_if_complete(run_id)
        return {"kind": "plan", "status": "nothing to plan", "run_id": run_id}
    left = services.deadline.seconds_left() + services.settings.deadline_margin_seconds
    until = math.ceil(time.time() + min(left, 899.0))
    if not services.state.claim_planning(run_id, until):
        # another invocation plans them (or was killed, and its claim ends at its deadline): look again then
        held = float(run.get("planner_until") or 0)
        again = message.model_dump_json(exclude_none=True)
        services.queue.send([again], [meter.UNATTRIBUTED], delay_seconds=_after(held))
        return {"kind": "plan", "status": "planned elsewhere", "run_id": run_id}
    names = services.state.run_tables(run_id, run)
    request = parse_run_request(services.state.run_request(run, names), services.settings.default_mode)
    scope = Scope.from_item(run.get("scope"))
    if scope is None:
        scope = services.endpoints.scope()
    if request.databases is not None:  # a run of one of several databases: its database and schema
        _locate(services, request, scope)
    target_columns = TargetColumns(services)
    conn = services.connections.place("source", services.connections.mysql())
    summary: dict[str, Any] = {"run_id": run_id, "tables": {}}
    p = Planning(conn, services, "", request, run_id, names, {}, scope, target_columns, summary, done=start)
    try:
        p.database = (
            scope.source_database if request.databases is not None else services.endpoints.mysql_settings().dbname
        )
        p.options = transforms.with_history_tables(
            {**transforms.options_from_file(services.settings.table_options_file), **request.table_options},
            services.settings.history_tables,
            services.settings.column_drop_tables,
        )
        target_columns.expect(names[start:], scope)
        services.queue.send([_plan_message(p, start)], [meter.UNATTRIBUTED], delay_seconds=_after(until))
        _plan(p, start)
    except Exception as e:
        _fail_unsent(run_id, names[p.done :], p.group, services, summary, e, scope)
        raise
    finally:
        conn.close()
        target_columns.close()
    meter.focus(None)
    services.state.finish_run_if_complete(run_id)
    return {
        "kind": "plan",
        "status": "planned",
        "run_id": run_id,
        "from": start,
        "to": p.done,
        "tables": summary["tables"],
    }


def fail_unplanned(run_id: str, services: Services, reason: str) -> None:
    """The ``plan`` message of a run failed its last receive: the tables it was to plan are recorded
    failed with the reason, so the run ends instead of waiting for them."""
    run = services.state.run_item(run_id)
    names = services.state.run_tables(run_id, run) if run else []
    summary: dict[str, Any] = {"run_id": run_id, "tables": {}}
    for table in names[int(run.get("planned", 0)) :]:
        if not services.state.get_table(run_id, table):
            runs.record_failed(services, run_id, summary, table, f"not planned: {reason}; run the table again")
    services.state.finish_run_if_complete(run_id)
