"""The scheduler's work: validate the run request, plan every table, record the run, send chunks.

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

from aurora_replication import typemap
from aurora_replication.cost import meter
from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import target_name
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.keys import Scope, TableKey
from aurora_replication.ledger.runs import still_running, table_count
from aurora_replication.models import (
    ChunkRef,
    RunRequest,
    TableOptions,
    TablePlan,
    new_run_id,
    parse_run_request,
    parse_scheduler_event,
)
from aurora_replication.pipeline import (
    audit,
    cdc_databases,
    cdc_reader,
    chunks,
    column_fill,
    databases,
    modes,
    resume,
    runs,
    transforms,
)
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.pipeline.target_check import Drift, TargetFacts
from aurora_replication.services import Services
from aurora_replication.source import bounds as source_bounds
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import evolution, history_sql, merged_sql
from aurora_replication.target.snowflake import sql as target_sql
from aurora_replication.target.warehouse import Warehouse
from aurora_replication.typemap import UnsupportedTypeError

logger = Logger(child=True)
tracer = Tracer()


@dataclass
class PlannedTable:
    plan: TablePlan
    bounds: list[tuple[list[str] | None, list[str] | None]]
    window: tuple[str | None, str | None] | None
    plan_seconds: float
    notes: list[str] = field(default_factory=list)
    alters: list[str] = field(default_factory=list)
    drift: Drift | None = None  # the target differed from the ledger (``target_check``): why it is re-copied
    fields: dict[str, Any] = field(default_factory=dict)  # more of the run's TABLE item (the audit slice)
    schema_changes: list[dict[str, Any]] = field(default_factory=list)  # drops followed, recorded once leased


class TargetColumns:
    """The target's columns per table, through one lazily opened warehouse (``Services.warehouse``); with ``facts``
    (``expect``), each table's catalog item and whether its target still holds what the ledger says."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.target: Warehouse | None = None
        self.facts: TargetFacts | None = None

    def client(self) -> Warehouse:
        if self.target is None:
            connections = self.services.connections
            conn = connections.place("target", connections.snowflake())  # the run's schema (``locate``)
            self.target = connections.warehouse(conn)
        return self.target

    def expect(self, names: list[str], scope: Scope) -> None:
        """The run's tables, in the order they are planned: their facts are read in groups as planning
        reaches them."""
        self.facts = TargetFacts(self.services.state, self.client, names, scope)

    def drift(self, table: str) -> Drift | None:
        return self.facts.drift(table) if self.facts is not None else None

    def entry(self, table: str) -> CatalogNote:
        return self.facts.entry(table) if self.facts is not None else {}

    def __call__(self, target_table: str) -> list[tuple[Any, ...]]:
        return self.client().columns(target_table)

    def execute(self, statements: list[str]) -> None:
        if statements:
            self.client().alter(statements)

    def close(self) -> None:
        if self.target is not None:
            self.target.close()


def parse_request(event: Any, default_mode: str) -> RunRequest:
    return parse_run_request(event, default_mode)


@tracer.capture_method(capture_response=False)  # the X-Ray subsegment `## plan_table`, per table
def plan_table(
    conn: Any,
    services: Services,
    database: str,
    table: str,
    request: RunRequest,
    target_columns: TargetColumns,
    options: dict[str, TableOptions],
    scope: Scope | None = None,
) -> PlannedTable:
    """Plan one table; ``scope``: the run's (where its watermark is kept), by default the stack's now."""
    started = time.perf_counter()
    s = services.settings
    plan = source_discover.discover_table(
        conn,
        database,
        table,
        identifier_case=s.identifier_case,
        watermark=request.watermark_columns.get(table),
        full_scan_max_rows=s.full_scan_max_rows,
    )
    salt = bool(services.endpoints.mysql_settings().mask_salt)
    plan = transforms.apply_options(
        plan, options.get(table), s.identifier_case, transform_modules=s.transform_modules, mask_salt=salt
    )
    scope = scope or services.endpoints.scope()
    if services.endpoints.source_database is not None:  # a run of one of several databases (pipeline/databases.py)
        where = {
            "source_database": services.endpoints.source_database,
            "target_schema": services.endpoints.target_schema,
        }
        plan = plan.model_copy(update={"target_table": scope.target_table(table), **where})
    if scope.mapping == "merge":
        _mergeable(plan)
        plan = plan.model_copy(update={"merged": True})
    key = scope.key(table)
    stored = services.state.get_watermark(key) if plan.watermark else None
    notes = list(plan.notes)
    if plan.watermark and stored is None:
        notes.extend(_unused_watermark(services, key))
    drift = target_columns.drift(table)  # the whole target against the ledger, before anything else
    # the upper edge is read now, before any chunk's snapshot: it is the watermark a published run
    # commits, safe whatever the chunks see later (docs/architecture.md, "A live source"); with it, in the
    # same statement, the largest key, which an incremental run compares with the last run's
    high_key = _high_key_column(plan)
    hi: str | None = None
    key_high: str | None = None
    if plan.watermark and high_key:
        hi, key_high = source_read.max_watermark_and_key(conn, table, plan.watermark, high_key)
    elif plan.watermark:
        hi = source_read.max_watermark(conn, table, plan.watermark)
    shrunk = None
    requested = modes.requested(request.mode)
    if high_key and stored is not None and requested.may_read_window:
        shrunk = _shrunk(table, target_columns.entry(table), key_high)
    mode, why = modes.choose(
        request.mode,
        table,
        has_key=bool(plan.key),
        has_watermark=bool(plan.watermark),
        has_stored_watermark=stored is not None,
        target_exists=not requested.needs_target or bool(target_columns(plan.target_table)),
        drift=drift.describe() if drift is not None else shrunk,
    )
    if why:
        notes.append(why)
    alters: list[str] = []
    schema_changes: list[dict[str, Any]] = []
    # column versions of a type change (``pipeline/column_fill.py``): every run writes the column to its version
    versions = column_fill.stored(target_columns.entry(table))
    plan = column_fill.applied(plan, versions)
    versioned: list[dict[str, Any]] = []
    created: list[str] = []
    if shrunk and drift is None and modes.get(mode).replaces_target:  # recorded once the run holds the table
        schema_changes = [evolution.shrunk_record(shrunk, int(time.time()))]
    if modes.get(mode).reads_window:
        existing = target_columns(plan.target_table)
        mismatch = history_sql.mode_mismatch(plan, existing) or merged_sql.shape_mismatch(plan, existing)
        if mismatch:
            raise BadInputError(mismatch)
        change = evolution.diff(plan, existing) if existing else None
        if change is not None and change.conflicting:  # a non-key column's type change: a new version
            created = _new_versions(plan, change, versions, {str(r[0]) for r in existing})
            if created:
                plan = column_fill.applied(plan, versions)
                change = evolution.diff(plan, existing)
                versioned = _version_records(table, plan, versions, created, target_columns.entry(table), notes)
        swapped = evolution.renamed_in_target(plan, existing, change) if change is not None else None
        if swapped is not None and requested.fallback is None:
            raise BadInputError(
                f"table {table!r}: column {swapped[0]!r} went and {swapped[1]!r} came in its place since the last "
                "run (a rename, or a drop and an add, which information_schema cannot tell apart): an incremental "
                "run cannot carry the values of the rows it does not read; run the table with mode 'full' or 'auto'"
            )
        if swapped is not None and requested.fallback is not None:  # auto: the column renamed, then every row copied
            mode = requested.fallback
            alters = [evolution.rename_statement(plan.target_table, *swapped)]
            why = (
                f"column {swapped[0]!r} went and {swapped[1]!r} came in its place (a rename, or a drop and an add, "
                "which information_schema cannot tell apart)"
            )
            notes.append(f"table {table!r}: full copy (auto mode: {why}; the Snowflake column renamed first)")
            schema_changes = [evolution.guessed_rename_record(*swapped, why, int(time.time()))]
        elif change is not None and change.conflicts:
            if requested.fallback is None:
                raise BadInputError(f"table {table!r}: " + "; ".join(change.conflicts))
            mode = requested.fallback
            notes.append(f"table {table!r}: full copy (auto mode: {'; '.join(change.conflicts)})")
        elif change is not None:
            if change.add and column_fill.allowed(plan):
                # a column added since the last run: the rows this run does not copy hold its value (a default,
                # or what the ALTER wrote) in MySQL only, so it is filled from MySQL by key as a version is
                filled = _added_versions(plan, change, versions)
                created += filled
                versioned += _addition_records(table, versions, filled, target_columns.entry(table), notes)
            alters = evolution.alter_statements(plan, change)
            notes.extend(change.describe(table))
            schema_changes = evolution.drop_records_of(change, target_columns.entry(table), "", int(time.time()))
    schema_changes += versioned
    chunk_rows = request.chunk_rows
    if not chunk_rows:
        row_bytes = source_discover.avg_row_length(conn, database, table)
        chunk_rows = chunks.adaptive_chunk_rows(row_bytes, s.chunk_target_mb * 1024 * 1024, s.default_chunk_rows)
        if row_bytes and s.chunk_target_mb:
            notes.append(
                f"table {table!r}: {chunk_rows:,} rows per chunk (rows of about {row_bytes:,} bytes, "
                f"CHUNK_TARGET_MB={s.chunk_target_mb})"
            )
    reads_window = modes.get(mode).reads_window
    low = source_read.window_start(conn, plan, stored, s.watermark_overlap_seconds) if reads_window else None
    window: tuple[str | None, str | None] | None = (low, hi)
    bounds = _bounds(conn, plan, mode, (low, hi), chunk_rows, notes)
    fields: dict[str, Any] = {}
    if high_key:  # the catalog keeps it once the run is published ("" when the table is empty)
        fields["key_high"] = key_high if key_high is not None else ""
    if plan.watermark:  # MySQL's NOT NULL columns now: the catalog keeps them once the run is published
        fields["not_null"] = list(plan.not_null)
    if reads_window:
        tightened = _not_null_added(plan, target_columns.entry(table))
        schema_changes += evolution.not_null_records(tightened, target_columns.entry(table), int(time.time()))
        notes += [
            f"table {table!r}: column {name!r} is NOT NULL in MySQL now; the Snowflake column stays nullable, and "
            "the commit checks that no row holds NULL in it"
            for name in tightened
        ]
        if tightened and not plan.transform:  # a transform may write NULL itself
            fields["not_null_check"] = tightened
    if versions:  # the finaliser fills the next pages and moves the cursor (``column_fill.advance``)
        filling = column_fill.filling(plan, versions)
        fields[column_fill.VERSIONS_FIELD] = json.dumps(versions, sort_keys=True)
        fields[column_fill.CREATED_FIELD] = bool(created)
        if modes.get(mode).replaces_target:  # a copy of every row writes every version
            fields[column_fill.WHOLE_FIELD] = True
        elif filling:
            fields[column_fill.FILL_FIELD] = filling[0]
            notes.append(
                f"table {table!r}: column version {versions[filling[0]]['target']!r} is filling from MySQL (cursor "
                f"{versions[filling[0]].get('cursor') or 'at the start'}); the rolling audit waits until it is filled"
            )
    if reads_window and not fields.get(column_fill.FILL_FIELD):
        bounds, more = _with_audit(conn, plan, bounds, target_columns.entry(table), s, chunk_rows, notes)
        fields.update(more)
    plan = plan.model_copy(update={"mode": mode, "notes": notes, "zero_dates": s.zero_date_policy})
    return PlannedTable(
        plan, bounds, window, time.perf_counter() - started, notes, alters, drift, fields, schema_changes
    )


def _new_versions(
    plan: TablePlan, change: evolution.SchemaChange, versions: dict[str, Any], existing: set[str]
) -> list[str]:
    """Give each non-key column that ``change`` finds in conflict (a type Snowflake cannot change in place)
    a new version in ``versions`` (``plan``: mapped by the versions already there); the columns given one.
    None for a history-mode, merged or transformed table (``cdc_reader.versions_allowed``), nor for a key
    column: those conflicts stay, and fail the table or copy it in full as before."""
    if not column_fill.allowed(plan):
        return []
    created = []
    for name, old_type in change.conflicting:
        if name in plan.key:
            continue
        column = plan.column(name)
        v = versions.get(name)
        taken = existing | {c.target for c in plan.columns} | {str(k) for w in versions.values() for k in w["kept"]}
        versions[name] = {
            "target": evolution.version_name(column.target, taken),
            "kept": [*(v["kept"] if v else []), column.target],
            "old_type": old_type,
            "new_type": change.types[name],
            "cursor": None,
            "filled": False,
        }
        created.append(name)
    return created


def _added_versions(plan: TablePlan, change: evolution.SchemaChange, versions: dict[str, Any]) -> list[str]:
    """Give each non-key column ``change`` adds to the target (a column added in MySQL since the last run)
    a version of its own name, filled from MySQL (``column_fill``); the columns given one."""
    created = []
    for c in change.add:
        if c.name in versions or c.name in plan.key:
            continue
        versions[c.name] = {
            "target": c.target,
            "kept": [],
            "added": True,
            "old_type": "",
            "new_type": change.types[c.name],
            "cursor": None,
            "filled": False,
        }
        created.append(c.name)
    return created


def _addition_records(
    table: str, versions: dict[str, Any], added: list[str], entry: CatalogNote, notes: list[str]
) -> list[dict[str, Any]]:
    """The notes and records (once) of the columns added since the last run, filled from MySQL."""
    records = []
    for name in added:
        target = str(versions[name]["target"])
        notes.append(
            f"table {table!r}: column {name!r} added in MySQL: the rows this run does not copy hold its value in "
            f"MySQL only, so {target!r} is filled from MySQL by key over the next runs"
        )
        if evolution.unrecorded_addition(entry, target):
            records.append(evolution.added_fill_record(target, str(versions[name]["new_type"]), int(time.time())))
    return records


def _version_records(
    table: str,
    plan: TablePlan,
    versions: dict[str, Any],
    created: list[str],
    entry: CatalogNote,
    notes: list[str],
) -> list[dict[str, Any]]:
    """The notes and records (once) of the column versions planning just created."""
    records = []
    for name in created:
        v = versions[name]
        notes.append(
            f"table {table!r}: column {name!r} changed type from {v['old_type']} to {v['new_type']} in a way "
            f"Snowflake cannot make in place: its values go to {v['target']!r} from now on, filled from MySQL by "
            f"key over the next runs; {v['kept'][-1]!r} is kept, frozen"
        )
        if evolution.unrecorded_version(entry, str(v["target"])):
            records.append(
                evolution.version_record(
                    name, v["old_type"], v["new_type"], str(v["kept"][-1]), str(v["target"]), int(time.time())
                )
            )
    return records


def _high_key_column(plan: TablePlan) -> str | None:
    """The key column whose largest value an incremental table's runs compare (a TRUNCATE, which no
    watermark shows, makes it fall): the first key column, when it is an integer and the table has a
    watermark; None otherwise (not compared)."""
    if not plan.watermark or not plan.key:
        return None
    first = plan.column(plan.key[0])
    return first.name if first.kind == typemap.INTEGER else None


def _not_null_added(plan: TablePlan, entry: CatalogNote) -> list[str]:
    """Target names of the columns MySQL declares NOT NULL now that were nullable when the last published
    run planned (its catalog ``entry``; none recorded: nothing to compare)."""
    before = entry.get("not_null")
    if before is None:
        return []
    was = {str(x) for x in before}
    return [c.target for c in plan.columns if c.name in plan.not_null and c.name not in was]


def _shrunk(table: str, entry: CatalogNote, key_high: str | None) -> str | None:
    """Why the table's rows cannot be followed incrementally any more, when its largest key fell since the
    last published run read it (``key_high`` in its catalog ``entry``; None or "" now: the table is empty):
    a TRUNCATE, or its newest rows deleted. Neither changes a watermark, so an incremental run would merge
    into a target that still holds the rows MySQL no longer has."""
    before = entry.get("key_high")
    if before in (None, ""):
        return None
    if key_high not in (None, "") and int(str(key_high)) >= int(str(before)):
        return None
    now = "the table is empty" if key_high in (None, "") else f"{key_high} now"
    return (
        f"its largest key in MySQL fell from {before} (read by run {entry.get('last_run', '?')}) to {now}: the "
        "table was truncated or its newest rows deleted, which no watermark shows, so the target holds rows "
        "MySQL no longer has"
    )


def _with_audit(
    conn: Any,
    plan: TablePlan,
    bounds: list[tuple[list[str] | None, list[str] | None]],
    entry: CatalogNote,
    s: Any,
    chunk_rows: int,
    notes: list[str],
) -> tuple[list[tuple[list[str] | None, list[str] | None]], dict[str, Any]]:
    """The incremental run's chunks with the rolling audit's slice, when one is due (``pipeline/audit.py``),
    and the fields of the TABLE item that describe it."""
    if not s.audit_period_seconds or not bounds:
        return bounds, {}
    audit_slice = audit.plan_slice(conn, plan, entry, s, chunk_rows)
    if audit_slice is None:
        return bounds, {}

    def recut(lower: Any, upper: Any, pieces: int) -> list[tuple[list[str] | None, list[str] | None]]:
        return source_bounds.split_range(conn, plan.table, plan.key, lower, upper, pieces, max(1, chunk_rows // 2))

    merged = audit.with_slice(bounds, audit_slice, recut)
    if merged is None:
        notes.append(
            f"table {plan.table!r}: no audit slice this run (its window of {len(bounds)} chunks could not be cut "
            "around it); the next run's slice is larger"
        )
        return bounds, {}
    chunks_with_slice, first = merged
    end = "the end of the table" if audit_slice.cursor_to is None else f"key {audit_slice.cursor_to}"
    start = "its start" if audit_slice.cursor_from is None else f"key {audit_slice.cursor_from}"
    notes.append(
        f"table {plan.table!r}: audits about {audit_slice.rows:,} rows (from {start} to {end}) against the target"
    )
    return chunks_with_slice, audit_slice.fields(first)


def _unused_watermark(services: Services, key: TableKey) -> list[str]:
    """A note when the table has no watermark in this scope but one from before state was scoped: it is
    not used (it may describe another target), so an ``auto`` run copies the table in full."""
    old = services.state.get_watermark_item(key.unscoped())
    if old is None or key.scope is None:
        return []
    return [
        f"table {key.table!r}: no watermark yet for {key.scope.describe()}; the one stored before state was "
        f"scoped by source and target ({old.get('value')!r}, run {old.get('run_id')}) is not used, since it may "
        "describe another target: this run starts without one, as a first run does (auto mode: a full copy)"
    ]


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
    if p.fields.pop(column_fill.CREATED_FIELD, False):  # a new column version: kept from now on
        services.state.set_column_versions(key, json.loads(p.fields[column_fill.VERSIONS_FIELD]))
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


def _bounds(
    conn: Any, plan: TablePlan, mode: str, window: tuple[str | None, str | None], chunk_rows: int, notes: list[str]
) -> list[tuple[list[str] | None, list[str] | None]]:
    """The table's chunks. An incremental window MySQL reads through the watermark's index and
    estimates at no more than one chunk's rows is one chunk over the whole key space: a few changed
    rows of a large table cost one chunk, not one per ``chunk_rows`` keys each filtering its range."""
    if source_read.is_empty(conn, plan.table):
        return []
    if modes.get(mode).reads_window and window[0] is not None and plan.key:
        estimate = source_read.window_rows_estimate(conn, plan, window)
        if estimate is not None and estimate <= chunk_rows:
            notes.append(
                f"table {plan.table!r}: one chunk for the incremental window (about {estimate:,} rows by "
                f"MySQL's estimate through the index on {plan.watermark!r})"
            )
            return [(None, None)]
    return source_read.chunk_bounds(conn, plan.table, plan.key, chunk_rows)


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
        if modes.requested(request.mode).owns_flow:  # change data capture has its own flow (pipeline/cdc_reader.py)
            if request.databases is not None:  # several source databases: one binlog window serves them all
                planner = cdc_databases.Planner(
                    resolve_tables, plan_table, _not_another_databases, TargetColumns, make_schemas
                )
                return cdc_databases.schedule(request, run_id, services, planner)
            guard = _not_another_databases
            return cdc_reader.schedule(request, run_id, services, target_columns, resolve_tables, plan_table, guard)
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


def _not_another_databases(
    services: Services,
    scope: Scope,
    names: list[str],
    owners: dict[tuple[str, str, str], dict[str, str]] | None = None,
) -> None:
    """The overwrite guard handed to cdc's planning (``databases.not_another_databases``: no table lands where
    another source database was copied, nor a whole copy on a merged table). ``owners``: the catalog's, with
    each database's mapping (None: read there)."""
    databases.not_another_databases(services.state, scope, names, owners)


def make_schemas(services: Services, scopes: dict[str, Scope]) -> None:
    """``schema`` mapping: each database's Snowflake schema, made where it does not exist yet."""
    sf = services.connections.snowflake()
    try:
        there = {str(r[0]) for r in target.execute(sf, target_sql.schema_names())}
        for schema in dict.fromkeys(sc.target_schema for sc in scopes.values() if sc.target_schema not in there):
            target.execute(sf, target_sql.create_schema(schema))
    finally:
        sf.close()


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
    databases.target_names(scopes, tables)
    for d in chosen:
        databases.not_another_databases(services.state, scopes[d], tables[d], owners)
    children = {d: databases.child_run_id(run_id, d) for d in chosen}
    taken = [c for c in children.values() if services.state.get_run(c).get("sk")]
    if taken:
        raise BadInputError(f"run(s) {', '.join(taken)} already exist; omit run_id to get a new one, or choose another")
    services.state.note_several_databases()
    if request.database_mapping == "schema":
        make_schemas(services, scopes)
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


def resolve_tables(
    conn: Any, services: Services, database: str, request: RunRequest
) -> tuple[list[str], dict[str, TableOptions]]:
    """The request's table names (``*``: every table) and their options, checked against the database."""
    s = services.settings
    available = source_discover.list_tables(conn, database)
    if request.tables == ["*"]:
        names = available
        if not names:
            raise BadInputError(f"database {database!r} has no tables to replicate")
    else:
        unknown = [t for t in request.tables if t not in available]
        if unknown:
            raise BadInputError(
                f"unknown table(s) {', '.join(repr(t) for t in unknown)} in database {database!r}; "
                f"available: {', '.join(available[:20]) or '(none)'}"
            )
        names = request.tables
    seen: dict[str, str] = {}
    for t in names:
        other = seen.setdefault(target_name(t, s.identifier_case), t)
        if other != t:
            raise BadInputError(
                f"tables {other!r} and {t!r} both map to {target_name(t, s.identifier_case)!r} in Snowflake; "
                "replicate them in separate runs with TARGET_IDENTIFIER_CASE=preserve"
            )
    options = transforms.with_history_tables(
        {**transforms.options_from_file(s.table_options_file), **request.table_options},
        s.history_tables,
        s.column_drop_tables,
    )
    strangers = [t for t in options if t not in available]
    if strangers:
        raise BadInputError(
            f"table_options name unknown table(s) {', '.join(repr(t) for t in strangers)} in database {database!r}"
        )
    return names, options


def _mergeable(plan: TablePlan) -> None:
    """What ``database_mapping: merge`` cannot keep to one database's rows yet: refused, naming the table."""
    if plan.history:
        raise BadInputError(
            f"table {plan.table!r}: history mode is not supported with database_mapping 'merge' yet (its versions "
            "would need the database in every key and interval); use database_mapping 'schema' or 'prefix'"
        )
    if not plan.key:
        raise BadInputError(
            f"table {plan.table!r} has no primary or unique key: with database_mapping 'merge' its rows could not be "
            "kept apart from another database's; give it a key in MySQL, or use database_mapping 'schema' or 'prefix'"
        )


def _history_not_in_cdc(services: Services, plan: TablePlan, scope: Scope) -> None:
    """A history table that cdc replicates orders its versions by binlog position; a full or incremental
    run would add versions ordered by run id beside them (docs/run-requests.md#history-mode)."""
    if CdcState(services.state).get(scope.key(plan.table)) is not None:
        raise BadInputError(
            f"table {plan.table!r} is kept in history mode by cdc runs, whose versions are ordered by binlog "
            "position: a full or incremental run would interleave versions it cannot order; replicate it with "
            "mode 'cdc' (with resnapshot for a new copy)"
        )


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
                _history_not_in_cdc(services, planned.plan, p.scope)
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
        if _lease(planned, p.run_id, services, p.summary, p.target_columns, p.scope, _planning_seconds(services)):
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


def _planning_seconds(services: Services) -> int:
    """How long a table's lease lasts while it is planned: until the invocation's deadline (and a
    minute), never LEASE_SECONDS before its records and messages are written."""
    left = services.deadline.seconds_left() + services.settings.deadline_margin_seconds
    return int(min(services.settings.lease_seconds, max(60.0, left + 60.0)))


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
