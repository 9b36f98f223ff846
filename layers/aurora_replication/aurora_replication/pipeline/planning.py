"""Planning one table of a run: the request's tables resolved and checked against MySQL, each table's plan
(discovered columns, options, mode, key, watermark, window), its chunks, what its target needs first (the
schema evolution's statements, column versions to fill, the audit slice) and the guards that refuse a plan
before anything is written (another database's table, a merged table, a history table cdc keeps).

The scheduler (``pipeline/scheduler.py``) plans a run's tables with it and records and sends them; cdc's planning
(``pipeline/modes/cdc/reader.py``, ``databases.py``) plans its tables with the same functions, imported
from here (this module sits below both).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from aurora_replication import schema_changes as changelog
from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import target_name
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.keys import Scope, TableKey
from aurora_replication.models import (
    RunRequest,
    TableOptions,
    TablePlan,
)
from aurora_replication.pipeline import (
    audit,
    chunks,
    column_versions,
    databases,
    modes,
    transforms,
)
from aurora_replication.pipeline.target_check import Drift, TargetFacts
from aurora_replication.services import Services
from aurora_replication.services.connections import Lent
from aurora_replication.source import bounds as source_bounds
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.target.warehouse import Warehouse

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
        self.lent: Lent | None = None

    def client(self) -> Warehouse:
        if self.target is None:
            connections = self.services.connections
            # the container's warm session (the preflight's, or an earlier run's), in the run's schema (``locate``)
            self.lent = connections.lend_target()
            self.target = connections.warehouse(self.lent.conn)
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
        """Give the session back (``Connections.give_back``); closed instead when an exception is on its way
        out (``close`` is called in a ``finally``): a session in an unknown state is not reused."""
        lent, self.lent, self.target = self.lent, None, None
        if lent is not None:
            self.services.connections.give_back(lent, failed=sys.exc_info()[0] is not None)


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
    if shrunk is None and stored is not None and requested.may_read_window:
        shrunk = _watermark_fell(plan, stored, hi)
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
    versions = column_versions.stored(target_columns.entry(table))
    plan = column_versions.applied(plan, versions)
    versioned: list[dict[str, Any]] = []
    created: list[str] = []
    if shrunk and drift is None and modes.get(mode).replaces_target:  # recorded once the run holds the table
        schema_changes = [changelog.shrunk_record(shrunk, int(time.time()))]
    if modes.get(mode).reads_window:
        existing = target_columns(plan.target_table)
        mismatch = target_columns.client().shape_mismatch(plan, existing)
        if mismatch:
            raise BadInputError(mismatch)
        change = target_columns.client().schema_diff(plan, existing) if existing else None
        if change is not None and change.conflicting:  # a non-key column's type change: a new version
            created = _new_versions(plan, change, versions, {str(r[0]) for r in existing})
            if created:
                plan = column_versions.applied(plan, versions)
                change = target_columns.client().schema_diff(plan, existing)
                versioned = _version_records(table, plan, versions, created, target_columns.entry(table), notes)
        swapped = target_columns.client().renamed_column(plan, existing, change) if change is not None else None
        if swapped is not None and requested.fallback is None:
            raise BadInputError(
                f"table {table!r}: column {swapped[0]!r} went and {swapped[1]!r} came in its place since the last "
                "run (a rename, or a drop and an add, which information_schema cannot tell apart): an incremental "
                "run cannot carry the values of the rows it does not read; run the table with mode 'full' or 'auto'"
            )
        if swapped is not None and requested.fallback is not None:  # auto: the column renamed, then every row copied
            mode = requested.fallback
            alters = [target_columns.client().rename_statement(plan.target_table, *swapped)]
            why = (
                f"column {swapped[0]!r} went and {swapped[1]!r} came in its place (a rename, or a drop and an add, "
                "which information_schema cannot tell apart)"
            )
            notes.append(f"table {table!r}: full copy (auto mode: {why}; the Snowflake column renamed first)")
            schema_changes = [changelog.guessed_rename_record(*swapped, why, int(time.time()))]
        elif change is not None and change.conflicts:
            if requested.fallback is None:
                raise BadInputError(f"table {table!r}: " + "; ".join(change.conflicts))
            mode = requested.fallback
            notes.append(f"table {table!r}: full copy (auto mode: {'; '.join(change.conflicts)})")
        elif change is not None:
            if change.add and column_versions.allowed(plan):
                # a column added since the last run: the rows this run does not copy hold its value (a default,
                # or what the ALTER wrote) in MySQL only, so it is filled from MySQL by key as a version is
                filled = _added_versions(plan, change, versions)
                created += filled
                versioned += _addition_records(table, versions, filled, target_columns.entry(table), notes)
            alters = target_columns.client().alter_statements(plan, change)
            notes.extend(change.describe(table))
            schema_changes = changelog.drop_records_of(change, target_columns.entry(table), "", int(time.time()))
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
        schema_changes += changelog.not_null_records(tightened, target_columns.entry(table), int(time.time()))
        notes += [
            f"table {table!r}: column {name!r} is NOT NULL in MySQL now; the Snowflake column stays nullable, and "
            "the commit checks that no row holds NULL in it"
            for name in tightened
        ]
        if tightened and not plan.transform:  # a transform may write NULL itself
            fields["not_null_check"] = tightened
    if versions:  # the finaliser fills the next pages and moves the cursor (``column_fill.advance``)
        filling = column_versions.filling(plan, versions)
        fields[column_versions.VERSIONS_FIELD] = json.dumps(versions, sort_keys=True)
        fields[column_versions.CREATED_FIELD] = bool(created)
        if modes.get(mode).replaces_target:  # a copy of every row writes every version
            fields[column_versions.WHOLE_FIELD] = True
        elif filling:
            fields[column_versions.FILL_FIELD] = filling[0]
            notes.append(
                f"table {table!r}: column version {versions[filling[0]]['target']!r} is filling from MySQL (cursor "
                f"{versions[filling[0]].get('cursor') or 'at the start'}); the rolling audit waits until it is filled"
            )
    if reads_window and not fields.get(column_versions.FILL_FIELD):
        bounds, more = _with_audit(conn, plan, bounds, target_columns.entry(table), s, chunk_rows, notes)
        fields.update(more)
    plan = plan.model_copy(update={"mode": mode, "notes": notes, "zero_dates": s.zero_date_policy})
    return PlannedTable(
        plan, bounds, window, time.perf_counter() - started, notes, alters, drift, fields, schema_changes
    )


def _new_versions(
    plan: TablePlan, change: changelog.SchemaChange, versions: dict[str, Any], existing: set[str]
) -> list[str]:
    """Give each non-key column that ``change`` finds in conflict (a type Snowflake cannot change in place)
    a new version in ``versions`` (``plan``: mapped by the versions already there); the columns given one.
    None for a history-mode, merged or transformed table (``modes/cdc/reader.py``'s ``versions_allowed``), nor for a key
    column: those conflicts stay, and fail the table or copy it in full as before."""
    if not column_versions.allowed(plan):
        return []
    created = []
    for name, old_type in change.conflicting:
        if name in plan.key:
            continue
        taken = existing | {c.target for c in plan.columns}
        column_versions.retyped(versions, name, plan.column(name).target, taken, old_type, change.types[name])
        created.append(name)
    return created


def _added_versions(plan: TablePlan, change: changelog.SchemaChange, versions: dict[str, Any]) -> list[str]:
    """Give each non-key column ``change`` adds to the target (a column added in MySQL since the last run)
    a version of its own name, filled from MySQL (``column_fill``); the columns given one."""
    created = []
    for c in change.add:
        if c.name in versions or c.name in plan.key:
            continue
        column_versions.added(versions, c.name, c.target, change.types[c.name])
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
        if changelog.unrecorded_addition(entry, target):
            records.append(changelog.added_fill_record(target, str(versions[name]["new_type"]), int(time.time())))
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
        if changelog.unrecorded_version(entry, str(v["target"])):
            records.append(
                changelog.version_record(
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


def _watermark_value(kind: str, text: str) -> Any:
    """A watermark's text as a value of its column's ``kind`` that orders as MySQL does; ValueError when
    the text is not one (a zero date, or a watermark stored from another column)."""
    if kind == typemap.INTEGER:
        return int(text)
    if kind == typemap.DATE:
        return dt.date.fromisoformat(text[:10]) if len(text) == 10 else dt.datetime.fromisoformat(text).date()
    return dt.datetime.fromisoformat(text)


def _watermark_fell(plan: TablePlan, stored: str, hi: str | None) -> str | None:
    """Why the table's rows cannot be followed incrementally any more, when its largest watermark now
    (``hi``, read while planning) is below the watermark the last published run committed (``stored``, its
    largest then), or the table holds no watermark at all: the rows that held the newest watermarks were
    deleted (a TRUNCATE, the table dropped and created again with older rows, a table renamed away and
    another given its name), or their watermark was set back. No window above ``stored`` reads any of it,
    so an incremental run would report OK over a target that still holds what MySQL no longer has. A stored
    value that is not a value of the column (the watermark column changed since) says the same: the window
    it would open is not this column's."""
    assert plan.watermark is not None
    kind = plan.column(plan.watermark).kind
    if kind != typemap.INTEGER and typemap.is_zero_date(stored):
        return None  # every watermark was a zero date: nothing to compare with
    if hi is None:
        return (
            f"its watermark column {plan.watermark!r} holds no value in MySQL now, where the last published run "
            f"read {stored!r}: the table was emptied or its rows replaced, which no watermark shows, so the "
            "target holds rows MySQL no longer has"
        )
    try:
        before = _watermark_value(kind, stored)
    except ValueError:
        return (
            f"the stored watermark {stored!r} is not a value of its watermark column {plan.watermark!r} "
            "(the watermark column changed since the last published run), so no window from it is this column's"
        )
    try:
        now = _watermark_value(kind, hi)
    except ValueError:
        return None  # a zero date as the largest value: nothing to compare it with
    if now >= before:
        return None
    return (
        f"its largest watermark {plan.watermark!r} in MySQL fell from {stored} (committed by the last "
        f"published run) to {hi}: the rows with the newest watermarks were deleted or their watermark set "
        "back (the table truncated, or dropped or renamed and created again with older rows), which no window "
        "above the stored watermark reads, so the target holds rows MySQL no longer has"
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


def lease_seconds_while_planning(services: Services, after: float = 60.0) -> int:
    """How long a table's lease lasts while it is planned: until the invocation's deadline and ``after``
    seconds more (a minute; cdc: a worker's timeout, ``modes/cdc/budget.py``), never LEASE_SECONDS before
    its records and messages are written, never less than a minute."""
    left = services.deadline.seconds_left() + services.settings.deadline_margin_seconds
    return int(min(services.settings.lease_seconds, max(60.0, left + after)))


def not_another_databases(
    services: Services,
    scope: Scope,
    names: list[str],
    owners: dict[tuple[str, str, str], dict[str, str]] | None = None,
) -> None:
    """The overwrite guard handed to cdc's planning (``databases.not_another_databases``: no table lands where
    another source database was copied, nor a whole copy on a merged table). ``owners``: the catalog's, with
    each database's mapping (None: read there)."""
    databases.not_another_databases(services.state, scope, names, owners)


def claim_databases(
    services: Services,
    run_id: str,
    request: RunRequest,
    scopes: dict[str, Scope],
    tables: dict[str, list[str]],
    owners: dict[tuple[str, str, str], dict[str, str]],
) -> dict[str, str]:
    """Before a run of several databases (any mode) records anything: the target names are distinct, no table
    lands where another database was copied, and no database's run exists yet; then the stack is noted as
    holding several databases and, with the ``schema`` mapping, each database's schema is made. Returns each
    database's run id (``scopes``' order)."""
    databases.target_names(scopes, tables)
    for d in scopes:
        databases.not_another_databases(services.state, scopes[d], tables[d], owners)
    children = {d: databases.child_run_id(run_id, d) for d in scopes}
    taken = [c for c in children.values() if services.state.get_run(c).get("sk")]
    if taken:
        raise BadInputError(f"run(s) {', '.join(taken)} already exist; omit run_id to get a new one, or choose another")
    services.state.note_several_databases()
    if request.database_mapping == "schema":
        make_schemas(services, scopes)
    return children


def make_schemas(services: Services, scopes: dict[str, Scope]) -> None:
    """``schema`` mapping: each database's Snowflake schema, made where it does not exist yet."""
    sf = services.connections.snowflake()
    try:
        services.connections.warehouse(sf).ensure_schemas([sc.target_schema for sc in scopes.values()])
    finally:
        sf.close()


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
            refused = source_discover.not_base_tables(conn, database, unknown)
            raise BadInputError(f"{refused}; available: {', '.join(available[:20]) or '(none)'}")
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
        raise BadInputError(f"table_options name {source_discover.not_base_tables(conn, database, strangers)}")
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


def history_not_in_cdc(services: Services, plan: TablePlan, scope: Scope) -> None:
    """A history table that cdc replicates orders its versions by binlog position; a full or incremental
    run would add versions ordered by run id beside them (docs/run-requests.md#history-mode)."""
    if CdcState(services.state).get(scope.key(plan.table)) is not None:
        raise BadInputError(
            f"table {plan.table!r} is kept in history mode by cdc runs, whose versions are ordered by binlog "
            "position: a full or incremental run would interleave versions it cannot order; replicate it with "
            "mode 'cdc' (with resnapshot for a new copy)"
        )
