"""Change data capture, the scheduler's side: record positions, take initial copies, read a window.

A cdc run request (``"mode": "cdc"``) does, per table:

- no position yet (or ``resnapshot``): record the server's binlog position, *then* plan a full copy
  (the initial copy; the ordinary full-mode chunks). Once it is published the table streams.
- streaming: check that the binlog still holds the stored position and that the schema has not
  changed in a way the target cannot follow; apply what evolution can (ADD COLUMN, widening) before
  any row that needs it.

Then one bounded window of the binlog is read for every streaming table (``source.binlog``), from
the earliest stored position to the server's end. Each table's changes of the window (the latest
change per key) are written as batch files with deterministic names (table, window start and end,
batch number), PUT to the Snowflake stage, recorded in the run ledger (``ledger.cdc.define_window``,
the commit point of the window's definition) and sent through the chunk queue, one message per
batch. Workers apply them (``modes/cdc/mode.py``); the finaliser advances the position.

A table without a key cannot have its changes matched to rows: it is refused, with what to add.
A table's options (exclude, rename, mask, cast, ``where``, a Python transform) are applied to each
change's row image as the copy path applies them to rows (``modes/cdc/options.py``); one cdc
cannot apply exactly is refused when the run is planned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication import schema_changes as changelog
from aurora_replication import typemap
from aurora_replication.cost import meter
from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import target_name
from aurora_replication.ledger.cdc import SNAPSHOT, STOPPED, STREAMING, CdcItem, CdcState
from aurora_replication.ledger.keys import Scope, TableKey
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import ChangeBatch, ChunkMessage, RunRequest, TableOptions, TablePlan
from aurora_replication.pipeline import audit, column_versions, planning, runs, staging, transforms
from aurora_replication.pipeline.audit import AuditSlice
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message
from aurora_replication.pipeline.modes.cdc import budget as cdc_budget
from aurora_replication.pipeline.modes.cdc import cascades as cdc_cascades
from aurora_replication.pipeline.modes.cdc import options as cdc_options
from aurora_replication.services import Services
from aurora_replication.source import binlog, binlog_parallel
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.source.binlog import Position, TableSpec
from aurora_replication.source.binlog_values import ColumnFacts
from aurora_replication.target.warehouse import Warehouse
from aurora_replication.typemap import UnsupportedTypeError

logger = Logger(child=True)


class StopTableError(BadInputError):
    """The table's changes cannot be applied any more; a new initial copy (resnapshot) is the fix.
    ``reason`` is what the table's cdc state keeps; the message adds the fix."""

    def __init__(self, table: str, reason: str) -> None:
        super().__init__(f"{reason}; {resnapshot_fix(table)}")
        self.reason = reason


def resnapshot_fix(table: str) -> str:
    return (
        f"re-snapshot the table: `replicate run --mode cdc --resnapshot --tables {table}` "
        f'(or the run request {{"tables": "{table}", "mode": "cdc", "resnapshot": true}})'
    )


@dataclass
class CdcTable:
    """One table of a cdc run, as planned: an initial copy (``initial``) or a window of changes."""

    table: str
    plan: TablePlan
    key: TableKey  # where its position, lease and watermark are (the run's scope)
    initial: Any = None  # scheduler.PlannedTable of the full copy
    position: Position | None = None  # where the table's changes start (recorded now for an initial copy)
    spec: TableSpec | None = None
    schema: list[Any] = field(default_factory=list)  # the signature the position will be valid for
    alters: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit: AuditSlice | None = None  # the rolling audit's slice this window re-reads (``stage_audit``)
    options: cdc_options.ImageOptions | None = None  # the table's options, applied to each change
    start_now: bool = False  # start_position now: the position is recorded, no initial copy is taken
    schema_changes: list[dict[str, Any]] = field(default_factory=list)  # drops followed, recorded once leased
    # a column renamed in MySQL since the stored position, its target not renamed yet: (old, new) MySQL
    # names and (old, new) target names; the window renames it once it holds the statement
    rename: tuple[str, str, str, str] | None = None
    # target columns MySQL declares NOT NULL since the stored position: the window's finalise checks that
    # no live target row holds NULL in them (``modes/cdc/mode.py``)
    not_null_check: list[str] = field(default_factory=list)
    # the run the table is part of: "" the reader's own; one of several databases' run otherwise
    # (``modes/cdc/databases.py``: one window read for the tables of every database of the request)
    run_id: str = ""
    # the table's column versions (``ledger.cdc.CdcState.set_versions``), written when ``versions_changed``;
    # ``fill``: the MySQL column whose version this window fills, and the plan of its page (key + column)
    versions: dict[str, Any] = field(default_factory=dict)
    versions_changed: bool = False
    fill: tuple[str, TablePlan] | None = None
    # its foreign keys whose action changes its rows inside MySQL (``cascades.py``): its parents are watched
    cascades: list[cdc_cascades.Cascade] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The table's key in the window (``binlog.read_window``): its name, or its database and name when it
        is one of several databases' (two databases may have tables of one name)."""
        return window_label(self.plan.source_database, self.table)

    def run(self, default: str) -> str:
        return self.run_id or default


def window_label(database: str | None, table: str) -> str:
    """A table's key in the window: its name (None: the source secret's database), else its database and name."""
    return table if database is None else json.dumps([database, table])


def locate(services: Services, plan: TablePlan) -> None:
    """The connections handed out from now on read and write where ``plan``'s table is (``Services.locate``):
    its database and schema for a table of one of several databases, the secrets' own otherwise."""
    services.endpoints.locate(plan.source_database, plan.target_schema)


def _signature(columns: list[ColumnFacts]) -> list[Any]:
    return [c.signature() for c in columns]


def image_options(
    conn: Any, database: str, plan: TablePlan, facts: dict[str, ColumnFacts], transform_modules: str, salt: str
) -> cdc_options.ImageOptions:
    """The table's options as cdc applies them to row images; an option cdc cannot apply exactly as the
    copy path does is a ``BadInputError`` of one line (``cdc_options.refusal``)."""
    names = cdc_options.where_columns(plan.where) if plan.where else []
    where = cdc_options.describe_columns(conn, database, plan.table, names)
    problem = cdc_options.refusal(plan, facts, where)
    if problem:
        raise BadInputError(problem)
    columns = cdc_options.spec_columns(plan, facts)
    return cdc_options.ImageOptions(plan, columns, [where[n] for n in names], transform_modules, salt)


def _spec(
    start: Position,
    plan: TablePlan,
    options: cdc_options.ImageOptions,
    facts: dict[str, ColumnFacts],
    stored: set[str],
    renames: dict[str, str] | None = None,
) -> TableSpec:
    read = {c.name for c in options.facts}
    renames = renames or {}
    return TableSpec(
        start=start,
        columns=options.facts,
        key=list(plan.key),
        dropped=frozenset(stored - set(facts) - set(renames)),
        excluded=frozenset(set(facts) - read),
        history=plan.history,
        renames=dict(renames),
        database=plan.source_database,
        table=plan.table if plan.source_database is not None else None,
    )


def _rename_in_target(
    table: str, plan: TablePlan, renaming: tuple[str, str] | None, existing: list[tuple[Any, ...]], case: str
) -> tuple[TablePlan, tuple[str, str, str, str] | None, dict[str, str], str | None]:
    """A rename candidate against the target: not renamed there yet (the plan writes the column under its
    old target name until the window holds the statement), renamed already (an earlier window followed
    it), or neither (a problem: the values are not in the binlog). Returns the plan for this window, the
    pending rename, the spec's renames and the problem."""
    if renaming is None or not existing:
        return plan, None, {}, None
    old, new = renaming
    names = {str(r[0]) for r in existing}
    column = next((c for c in plan.columns if c.name == new), None)
    old_target = target_name(old, case)
    if column is not None and old_target in names and column.target not in names:
        columns = [c.model_copy(update={"target": old_target}) if c.name == new else c for c in plan.columns]
        return plan.model_copy(update={"columns": columns}), (old, new, old_target, column.target), {old: new}, None
    if column is not None and column.target in names and old_target not in names:
        return plan, None, {old: new}, None
    return (
        plan,
        None,
        {},
        (
            f"table {table!r}: column {old!r} was dropped and {new!r} added since the stored position (a rename?): "
            "their values are not in the binlog"
        ),
    )


def rename_candidate(
    stored: list[Any], now: list[ColumnFacts], refuted: Collection[tuple[str, str]] = ()
) -> tuple[str, str] | None:
    """``(old, new)`` when, since the stored position, exactly one column went and one came, at the same
    ordinal position with the same type, nullability and default: a rename, if the window holds the
    ``ALTER TABLE ... RENAME COLUMN`` (or ``CHANGE``) statement that made it (``binlog.Window.renamed``)."""
    before = [str(s[0]) for s in stored]
    after = [c.name for c in now]
    gone = [n for n in before if n not in after]
    came = [n for n in after if n not in before]
    if len(gone) != 1 or len(came) != 1 or before.index(gone[0]) != after.index(came[0]):
        return None
    old = stored[before.index(gone[0])]
    new = now[after.index(came[0])].signature()
    if (gone[0], came[0]) in refuted:  # a window read to the end without its statement: a drop and an add
        return None
    return (gone[0], came[0]) if list(old[1:]) == list(new[1:]) else None


def type_changes(
    stored: list[Any], now: list[ColumnFacts], widens: Callable[[str, str], bool]
) -> list[tuple[str, str, str]]:
    """``(column, old COLUMN_TYPE, new COLUMN_TYPE)`` of each column whose type changed since the stored
    position in a way that is not a lossless widening (``widens``: ``Warehouse.widens_losslessly``)."""
    before = {str(s[0]): str(s[1]) for s in stored}
    return [
        (c.name, before[c.name], c.column_type)
        for c in now
        if c.name in before and not widens(before[c.name], c.column_type)
    ]


def additions(
    stored: list[Any], now: list[ColumnFacts], refuted: Collection[tuple[str, str]] = ()
) -> tuple[list[ColumnFacts], list[str]]:
    """The columns added and the ones dropped since the stored position, but for a rename candidate's pair
    (``rename_candidate``: followed, or refused, once the window is read)."""
    before = {str(s[0]) for s in stored}
    after = {c.name for c in now}
    rename = rename_candidate(stored, now, refuted)
    added = [c for c in now if c.name not in before and (rename is None or c.name != rename[1])]
    dropped = [str(s[0]) for s in stored if str(s[0]) not in after and (rename is None or str(s[0]) != rename[0])]
    return added, dropped


def to_fill(stored: list[Any], now: list[ColumnFacts], refuted: Collection[tuple[str, str]] = ()) -> list[ColumnFacts]:
    """The added columns whose values the binlog does not carry for the rows no event touched: one added
    NOT NULL or with a default (those rows hold it in MySQL), or any added in the same change as columns
    dropped (not a certain rename: a drop and an add, and the added column's values may be the dropped
    one's). Each is filled from MySQL by key as a column version is (``added_versions``)."""
    added, dropped = additions(stored, now, refuted)
    return [c for c in added if dropped or not c.nullable or c.default is not None]


def refuted_renames(state: CdcItem | None) -> set[tuple[str, str]]:
    """The rename candidates of a table's cdc state that a window refuted (``CdcState.refute_rename``)."""
    return {(str(p[0]), str(p[1])) for p in (state or {}).get("refuted_renames") or []}


def schema_problems(
    table: str,
    stored: list[Any],
    now: list[ColumnFacts],
    versioned: frozenset[str] = frozenset(),
    filled: frozenset[str] = frozenset(),
    refuted: Collection[tuple[str, str]] = (),
    *,
    widens: Callable[[str, str], bool],
) -> list[str]:
    """Changes of the source schema since the stored position that binlog changes cannot carry (``widens``:
    whether a type change is a lossless widening, ``Warehouse.widens_losslessly``).

    A column added since holds its default in every row that no event touched: only a nullable column
    without a default is NULL there (as the target's new column is). Columns dropped and added in one
    change may be a rename, whose values no event carries, unless it is a rename the window confirms
    (``rename_candidate``: checked once the window is read)."""
    before = {str(s[0]): s for s in stored}
    after = {c.name: c for c in now}
    added, dropped = additions(stored, now, refuted)
    added = [c for c in added if c.name not in filled]  # those filled from MySQL (``to_fill``) carry their values
    problems = []
    for c in added:
        if not c.nullable or c.default is not None:
            problems.append(
                f"column {c.name!r} was added "
                + ("NOT NULL" if not c.nullable else f"with the default {c.default!r}")
                + ": the rows no change touched hold that value in MySQL but no binlog event carries it"
            )
    for name, c in after.items():
        old = str(before[name][1]) if name in before else c.column_type
        if name not in versioned and not widens(old, c.column_type):
            problems.append(
                f"column {name!r} changed type from {old} to {c.column_type}, which is not a lossless widening: "
                "the rows MySQL rewrote in the ALTER are not in the binlog"
            )
    if added and dropped:
        problems.append(
            f"columns {', '.join(repr(d) for d in dropped)} were dropped and {', '.join(repr(c.name) for c in added)} "
            "added since the stored position (a rename?): their values are not in the binlog"
        )
    return [f"table {table!r}: {p}" for p in problems]


def not_null_added(stored: list[Any], now: list[ColumnFacts]) -> list[str]:
    """The columns nullable where the stored position is valid and NOT NULL now (MySQL names)."""
    before = {str(s[0]): bool(s[2]) for s in stored if len(s) > 2}
    return [c.name for c in now if before.get(c.name) is True and not c.nullable]


def _snapshot_state(services: Services, state: CdcItem) -> str:
    """The status of the run that took the table's initial copy."""
    run = str(state.get("snapshot_run", ""))
    table_state = services.state.get_table(run, str(state.get("table"))) if run else {}
    return str(table_state.get("status", "missing"))


def plan_cdc_table(
    conn: Any,
    services: Services,
    database: str,
    table: str,
    request: RunRequest,
    target_columns: planning.TargetColumns,
    options: dict[str, TableOptions],
    files: list[tuple[str, int]],
    cdc: CdcState,
    scope: Scope,
    cascades: dict[str, list[cdc_cascades.Cascade]] | None = None,
) -> CdcTable:
    """One table of a cdc request: its initial copy, its start without one, or its window's spec, with what
    the window must do first (schema changes, column versions, a rename, the audit's slice). ``cascades``:
    the database's foreign keys that cascade, by child (``cascades.cascades_in``; read for the table alone
    where not given)."""
    s = services.settings
    key = scope.key(table)
    plan = source_discover.discover_table(conn, database, table, identifier_case=s.identifier_case)
    salt = services.endpoints.mysql_settings().mask_salt
    plan = transforms.apply_options(
        plan, options.get(table), s.identifier_case, transform_modules=s.transform_modules, mask_salt=bool(salt)
    )
    if (
        services.endpoints.source_database is not None
    ):  # one of several databases (modes/cdc/databases.py), as plan_table
        where = {
            "source_database": services.endpoints.source_database,
            "target_schema": services.endpoints.target_schema,
        }
        plan = plan.model_copy(update={"target_table": scope.target_table(table), **where})
    full_request = request.model_copy(update={"mode": "full"})
    if not plan.key:  # refused, not copied in full every window: that is mode full's cost under cdc's name
        raise BadInputError(
            f"table {table!r} has no key to match its changes to rows, so cdc cannot replicate it: "
            f"{source_discover.NO_KEY_FIX} (e.g. ALTER TABLE `{table}` ADD PRIMARY KEY (...)), or replicate it "
            "with mode 'full'"
        )
    facts = binlog.column_facts(conn, database, table)
    compressed = [c.name for c in facts.values() if typemap.is_compressed(c.column_type)]
    if compressed:  # excluded or not: the binlog reader must parse every column of the table's row events
        raise BadInputError(
            f"table {table!r}: column(s) {', '.join(repr(c) for c in compressed)} are MariaDB COMPRESSED "
            "columns, whose binlog row events the binlog reader cannot parse, so cdc cannot replicate the table "
            "(excluding the columns does not help); replicate it with mode 'full' or 'incremental', or remove "
            "the compression (ALTER TABLE ... MODIFY the column without COMPRESSED)"
        )
    options_ = image_options(conn, database, plan, facts, s.transform_modules, salt)  # refused before anything starts
    unsupported = [c.name for c in facts.values() if c.kind == "unsupported" and c.name not in plan.key]
    state = cdc.get(key)
    if state is not None:
        state["table"] = table
    status = str(state.get("status")) if state else None
    if status == SNAPSHOT and _snapshot_state(services, state or {}) == "published":
        cdc.mark_streaming(key, str((state or {})["snapshot_run"]))
        status = STREAMING
    # a target that no longer holds what the ledger says (dropped, truncated, rows deleted behind the
    # pipeline's back) cannot be put right by applying changes: it takes a new initial copy. A table that
    # streams without one (start_position now) holds whatever its owner's backfill wrote: not compared
    without_copy = (state or {}).get("without_copy")
    drift = target_columns.drift(table) if status == STREAMING and not without_copy else None
    # a window saw a parent's cascade change its rows where the binlog does not show it (``cascades.py``)
    recopy = (state or {}).get("recopy") if status == STREAMING else None
    if status is None and plan.history and target_columns.client().is_history_table(target_columns(plan.target_table)):
        raise BadInputError(
            f"table {table!r}: its history table {plan.target_table!r} was written by full or incremental runs, "
            "whose versions are ordered by run, not by binlog position; cdc cannot continue it: rename or drop "
            "it in Snowflake (the first cdc run then copies the table as new versions), or keep the table in "
            "its mode"
        )
    if request.start_position == "now" and (status is None or request.resnapshots(table)):
        position = binlog.current_position(conn)
        note = (
            f"table {table!r}: streams from binlog position {position} without an initial copy (start_position "
            "now); the rows already in MySQL are the backfill's to load"
        )
        cdc_plan = plan.model_copy(update={"mode": "cdc", "zero_dates": s.zero_date_policy})
        schema = _signature([facts[n] for n in facts])
        return CdcTable(table, cdc_plan, key, position=position, schema=schema, notes=[note], start_now=True)
    if (
        request.resnapshots(table)
        or drift is not None
        or recopy
        or status is None
        or (
            status == SNAPSHOT
            and _snapshot_state(services, state or {})
            in (
                "failed",
                "declined",
                "missing",
            )
        )
    ):
        position = binlog.current_position(conn)  # before the copy is planned, so before any chunk reads
        initial = planning.plan_table(conn, services, database, table, full_request, target_columns, options, scope)
        note = f"table {table!r}: cdc initial copy; changes are applied from binlog position {position}"
        if drift is not None:
            note += f" (a new one: {drift.describe()})"
        elif recopy:
            note += " (a new one: a foreign key's cascade changed its rows where the binlog does not show it)"
        return CdcTable(
            table,
            initial.plan,
            key,
            initial=initial,
            position=position,
            schema=_signature([facts[n] for n in facts]),
            notes=[*initial.notes, note],
        )
    assert state is not None
    if status == STOPPED:
        raise StopTableError(table, str(state.get("reason", "cdc stopped")))
    if status == SNAPSHOT:  # the initial copy is still running: the lease declines this run
        position = Position.from_dict(state["binlog_pos"])
        return CdcTable(table, plan.model_copy(update={"mode": "cdc"}), key, position=position)
    position = Position.from_dict(state["binlog_pos"])
    if not binlog.is_retained(position, files):
        oldest = files[0][0] if files else "(none)"
        raise StopTableError(
            table,
            f"table {table!r}: its binlog position {position} is older than the oldest binlog the server still "
            f"has ({oldest}): the changes in between are gone",
        )
    stored = list(state.get("schema_columns") or [])
    refuted = refuted_renames(state)
    warehouse = target_columns.client()  # the target the table is planned against (opened once, here at latest)
    retyped = type_changes(stored, [facts[n] for n in facts], warehouse.widens_losslessly)
    # a non-key column's type change gets a new column version; a key column's stops the table
    versionable = [r for r in retyped if column_versions.may_version(plan, r[0])]
    # a column added NOT NULL, with a default, or beside a drop: added to the target and filled from MySQL
    fillable = [
        c for c in to_fill(stored, [facts[n] for n in facts], refuted) if column_versions.may_version(plan, c.name)
    ]
    problems = schema_problems(
        table,
        stored,
        [facts[n] for n in facts],
        frozenset(r[0] for r in versionable),
        frozenset(c.name for c in fillable),
        refuted,
        widens=warehouse.widens_losslessly,
    )
    if unsupported:
        problems.append(f"table {table!r}: columns {unsupported} have types that cannot be replicated")
    existing = target_columns(plan.target_table)
    renaming = rename_candidate(stored, [facts[n] for n in facts], refuted)
    plan, pending, renames, unfollowed = _rename_in_target(table, plan, renaming, existing, s.identifier_case)
    if unfollowed:
        problems.append(unfollowed)
    versions = dict(state.get("column_versions") or {})
    created = new_versions(conn, plan, versionable, versions, {str(r[0]) for r in existing})
    created += added_versions(conn, plan, fillable, versions)
    full_plan = column_versions.applied(plan, versions)
    plan = column_versions.applied(plan, versions, position)
    if versions:  # the plan maps a versioned column to its new target (or leaves it out of this window)
        options_ = image_options(conn, database, plan, facts, s.transform_modules, salt)
    # a merged table (database_mapping: merge) holds other databases' rows: cdc of one would replace them
    mismatch = warehouse.shape_mismatch(plan, existing)
    if mismatch:
        raise BadInputError(mismatch)
    alters: list[str] = []
    notes: list[str] = []
    schema_changes: list[dict[str, Any]] = []
    if existing:
        change = warehouse.schema_diff(plan, existing)
        if not problems:  # a type change named above already says what and why, with its fix
            problems += [f"table {table!r}: {c}" for c in change.conflicts]
        alters = warehouse.alter_statements(plan, change)
        notes = change.describe(table)
        schema_changes = changelog.drop_records_of(change, target_columns.entry(table), "", int(time.time()))
        planned = {c.name: c.target for c in plan.columns}
        tightened = [planned[n] for n in not_null_added(stored, [facts[n] for n in facts]) if n in planned]
        schema_changes += changelog.not_null_records(tightened, target_columns.entry(table), int(time.time()))
        notes += [
            f"table {table!r}: column {name!r} is NOT NULL in MySQL now; the Snowflake column stays nullable, and the "
            "window's finalise checks that no live row holds NULL in it"
            for name in tightened
        ]
        entry = target_columns.entry(table)
        for name in created:
            v = versions[name]
            column = full_plan.column(name)
            if column.target not in {c.target for c in plan.columns}:  # left out of this window: added here
                alters.append(warehouse.add_version_statement(plan.target_table, column))
            if v.get("added"):  # a column added NOT NULL, with a default, or beside a drop
                if changelog.unrecorded_addition(entry, column.target):
                    schema_changes.append(changelog.added_fill_record(column.target, v["new_type"], int(time.time())))
                notes.append(
                    f"table {table!r}: column {name!r} was added ({v['new_type']}) where the binlog does not carry "
                    f"every row's value: {column.target!r} is added and filled from MySQL by key"
                )
                continue
            old_target = str(v["kept"][-1])
            if changelog.unrecorded_version(entry, column.target):
                at = int(time.time())
                schema_changes.append(
                    changelog.version_record(name, v["old_type"], v["new_type"], old_target, column.target, at)
                )
        notes += [
            f"table {table!r}: column {name!r} changed type from {v['old_type']} to {v['new_type']} (not a lossless "
            f"widening): its values go to {v['target']!r} from now on, filled from MySQL by key; "
            f"{v['kept'][-1]!r} is kept, frozen"
            for name, v in versions.items()
            if name in created and not v.get("added")
        ]
    else:
        tightened = []
    if problems:
        raise StopTableError(table, "; ".join(problems))
    spec = _spec(position, plan, options_, facts, {str(s[0]) for s in stored}, renames)
    if pending:
        notes.append(
            f"table {table!r}: column {pending[0]!r} is {pending[1]!r} in MySQL now (same place and type): followed as "
            "a rename once the window holds its ALTER statement"
        )
    cdc_plan = plan.model_copy(update={"mode": "cdc", "notes": notes, "zero_dates": s.zero_date_policy})
    # the rolling audit's slice, read in one snapshot by the reader (``stage_audit``): one range, at most
    # AUDIT_MAX_ROWS rows
    filling = column_versions.filling(full_plan, versions)
    audit_slice = (
        audit.plan_slice(conn, cdc_plan, target_columns.entry(table), s, s.audit_max_rows)
        if s.audit_period_seconds and not filling
        else None
    )
    if filling:  # its rows hold NULL until their page is applied: nothing compares the table meanwhile
        notes.append(
            f"table {table!r}: column version {versions[filling[0]]['target']!r} is filling from MySQL (cursor "
            f"{versions[filling[0]].get('cursor') or 'at the start'}); the rolling audit waits until it is filled"
        )
    if audit_slice is not None:
        notes.append(f"table {table!r}: audits about {audit_slice.rows:,} rows against the target")
    if without_copy:
        notes.append(
            f"table {table!r}: streams without an initial copy since run {without_copy} (start_position now): its "
            "row count is not checked against the ledger, and the rolling audit copies the rows the target lacks "
            "(counted as audit differences) until the backfill has loaded them; a re-snapshot ends this"
        )
    return CdcTable(
        table,
        cdc_plan,
        key,
        position=position,
        spec=spec,
        schema=_signature([facts[n] for n in facts]),
        alters=alters,
        notes=notes,
        audit=audit_slice,
        options=options_,
        schema_changes=schema_changes,
        not_null_check=tightened if not plan.transform else [],  # a transform may write NULL itself
        rename=pending,
        cascades=(cdc_cascades.cascades_in(conn, database, table) if cascades is None else cascades).get(table, []),
        versions=versions,
        versions_changed=bool(created),
        fill=(filling[0], column_versions.fill_plan(full_plan, filling[0])) if filling else None,
    )


def new_versions(
    conn: Any,
    plan: TablePlan,
    retyped: list[tuple[str, str, str]],
    versions: dict[str, Any],
    existing: set[str],
) -> list[str]:
    """Give each column of ``retyped`` (a type change that is not a lossless widening) a new version in
    ``versions``, unless it has one for that type already (the schema not moved on yet): its target column
    ``<COL>__V<n>``, the older ones kept, and ``after``, a binlog position read now, after the new type was
    seen, so past the ALTER: events before it may carry values of the old type, so a window that starts
    before it leaves the column out, and the fill starts only once a window's end is past it. Returns the
    columns given a new version."""
    created = []
    for name, old, new in retyped:
        v = versions.get(name)
        if v is not None and v.get("new_type") == new:
            continue
        old_target = str(v["target"]) if v else plan.column(name).target
        taken = existing | {c.target for c in plan.columns}
        after = binlog.current_position(conn).key()
        column_versions.retyped(versions, name, old_target, taken, old, new, after)
        created.append(name)
    return created


def added_versions(conn: Any, plan: TablePlan, columns: list[ColumnFacts], versions: dict[str, Any]) -> list[str]:
    """Give each added column of ``columns`` (``to_fill``) a version of its own name in ``versions``, filled
    from MySQL as a type change's is (``after``: a position read now, past the ALTER; a window starting
    before it leaves the column out), unless it has one. Returns the columns given one."""
    created = []
    for c in columns:
        if c.name in versions:
            continue
        new_type = c.column_type + (" NOT NULL" if not c.nullable else "")
        new_type += f" DEFAULT {c.default}" if c.default is not None else ""
        after = binlog.current_position(conn).key()
        column_versions.added(versions, c.name, plan.column(c.name).target, new_type, after)
        created.append(c.name)
    return created


@dataclass
class Planned:
    """One database's tables of a cdc request, planned (nothing written yet); ``deferred``: the tables the
    invocation's time did not reach (``budget.py``), ``order`` the order they were planned in (the request's,
    rotated to start at the first table the last window deferred, ``rotation``)."""

    names: list[str]
    planned: list[CdcTable]
    failed: dict[str, str]
    stopped: set[str]
    deferred: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    rotation: str | None = None

    @property
    def recorded(self) -> list[str]:
        """The tables of this window's run: every one named but those deferred, in the request's order."""
        later = set(self.deferred)
        return [t for t in self.names if t not in later]


def plan_tables(
    conn: Any,
    services: Services,
    database: str,
    request: RunRequest,
    target_columns: planning.TargetColumns,
    files: list[tuple[str, int]],
    scope: Scope,
    budget: cdc_budget.WindowBudget,
    guarded: bool = True,
    rotation: str | None | cdc_budget.Unread = cdc_budget.UNREAD,
) -> Planned:
    """Plan ``database``'s tables of the request: each one's initial copy or window (``plan_cdc_table``); a
    table that fails planning is named in ``failed`` (stopped: its cdc state says so already). ``guarded``:
    the overwrite guard is asked before anything is planned (no table lands where another source database
    was copied); False where the caller asked it already (``databases.py``, for every database at once).
    Within ``budget``: the tables it has no time for are ``deferred`` (``budget.py``); the first table the last
    window deferred (``rotation``) is read here unless the caller read it."""
    cdc = CdcState(services.state)
    names, options = planning.resolve_tables(conn, services, database, request)
    if guarded:
        planning.not_another_databases(services, scope, names)
    target_columns.expect(names, scope)
    if isinstance(rotation, cdc_budget.Unread):
        rotation = cdc.rotation(scope) if len(names) > 1 else None  # one table: nothing to take turns with
    order = cdc_budget.rotate(names, rotation)
    out = Planned(names, [], {}, set(), order=order, rotation=rotation)
    cascades = cdc_cascades.cascades_in(conn, database) if names else {}
    for i, t in enumerate(order):
        if not budget.may_plan():
            out.deferred = order[i:]
            logger.info(
                "cdc window: the scheduler's time for planning is spent; the other tables wait for the next window",
                extra={"planned": i, "of": len(order), "deferred": len(out.deferred), "next_first": order[i]},
            )
            break
        budget.planned += 1
        meter.focus(t, "plan")
        try:
            args = (request, target_columns, options, files, cdc, scope, cascades)
            out.planned.append(plan_cdc_table(conn, services, database, t, *args))
        except StopTableError as e:
            cdc.stop(scope.key(t), e.reason)
            out.failed[t] = str(e)
            out.stopped.add(t)
        except (BadInputError, UnsupportedTypeError) as e:
            out.failed[t] = str(e)
    return out


def schedule(
    request: RunRequest, run_id: str, services: Services, target_columns: planning.TargetColumns
) -> dict[str, Any]:
    """A cdc request of the source secret's database: plan its tables (``planning``, as every mode's), record
    the run, take leases and start initial copies, then read one binlog window and send each table's batches;
    all within the invocation's time (``budget.py``: the tables it has no time for wait for the next window)."""
    budget = cdc_budget.WindowBudget(services.deadline)
    conn = services.connections.mysql()
    try:
        scope = services.endpoints.scope()  # the run's, recorded with it
        problems = binlog.check_preconditions(conn)
        if problems:
            raise binlog.BinlogUnavailableError("cdc mode cannot read the binlog: " + "; ".join(problems))
        database = services.endpoints.mysql_settings().dbname
        files = binlog.binlog_files(conn)
        p = plan_tables(conn, services, database, request, target_columns, files, scope, budget)
        if not p.planned and p.failed and not p.stopped:  # a stopped table is recorded as failed, in a run
            raise BadInputError("; ".join(p.failed.values()))
        stop_at = binlog.current_position(conn)
    finally:
        conn.close()

    summary, streaming = open_tables(run_id, request, p, scope, services, target_columns)
    if streaming:
        summary["tables"].update(read_window(run_id, streaming, stop_at, services, budget))
    meter.focus(None)
    note_deferred(services, p, scope, summary["tables"])
    services.state.finish_run_if_complete(run_id)
    return summary


def note_deferred(services: Services, p: Planned, scope: Scope, answers: dict[str, Any]) -> None:
    """Keep where ``scope``'s next window starts: its first table this one deferred (at planning, or at
    sending: ``answers`` by table name), so every table is reached within a few windows (``budget.py``)."""
    if len(p.order) < 2:  # one table: nothing to take turns with
        return
    deferred = set(p.deferred) | {t for t, a in answers.items() if a.get("status") == cdc_budget.DEFERRED}
    CdcState(services.state).set_rotation(scope, cdc_budget.first_deferred(p.order, deferred), p.rotation)


def open_tables(
    run_id: str, request: RunRequest, p: Planned, scope: Scope, services: Services, target_columns: Any
) -> tuple[dict[str, Any], list[CdcTable]]:
    """Record the run of ``p``'s tables, take each one's lease and start its initial copy (or its streaming
    without one); the tables that stream this run's window, returned, are recorded ``running``."""
    cdc = CdcState(services.state)
    summary = runs.open_run(services, run_id, request, p.recorded, p.failed, scope, mode="cdc")
    if p.deferred:
        summary["deferred"] = {"tables": len(p.deferred), "first": p.deferred[0], "reason": cdc_budget.DEFERRED_REASON}
    streaming: list[CdcTable] = []
    for t in p.planned:
        meter.focus(t.table, "plan")
        if t.initial is None and t.spec is None and not t.start_now:  # an earlier run's initial copy is not published
            state = cdc.get(t.key) or {}
            reason = f"table {t.table!r}: its initial copy (run {state.get('snapshot_run')}) is not published yet"
            services.state.record_table(run_id, t.table, scope, status="declined", reason=reason, chunk_count=0)
            summary["tables"][t.table] = {"status": "declined", "reason": reason}
            continue
        # for the invocation's own time and a worker's: its workers make it LEASE_SECONDS long as they apply
        # it, so a scheduler killed before leaves it leased no longer than that (``budget.lease_seconds``)
        ok, reason, lapsed = services.state.take_lease(t.key, run_id, cdc_budget.lease_seconds(services))
        if not ok:
            services.state.record_table(run_id, t.table, scope, status="declined", reason=reason, chunk_count=0)
            summary["tables"][t.table] = {"status": "declined", "reason": reason}
            continue
        if lapsed is not None:  # a run that stopped with the table (its scheduler killed): it ends, this one carries it
            runs.end_superseded(services, lapsed, t.key)
        for note in t.notes:
            logger.info(note, extra={"run_id": run_id, "table": t.table})
        if t.initial is not None:
            summary["tables"][t.table] = _send_initial_copy(run_id, t, services, cdc, scope)
            continue
        if t.start_now:
            summary["tables"][t.table] = _start_streaming(run_id, t, services, cdc, scope)
            continue
        target_columns.execute(t.alters)  # schema evolution, before any change of this window is applied
        if t.versions_changed:  # after the ADD COLUMN: a version named in the state has its column
            cdc.set_versions(t.key, t.versions)
        followed = t.schema_changes = runs.record_schema_changes(services, run_id, t.key, t.schema_changes)
        services.state.record_table(
            run_id,
            t.table,
            scope,
            status="running",
            mode="cdc",
            plan=t.plan.model_dump(mode="json"),
            chunk_count=0,
            cdc_from=t.position.to_dict() if t.position else None,
            notes=t.notes,
            started_at=Decimal(str(round(time.time(), 3))),
            **({"schema_changes": followed} if followed else {}),
        )
        if t.alters and t.rename is None:  # a pending rename: the schema moves on once the window follows it
            cdc.set_columns(t.key, t.schema)
        t.run_id = run_id
        streaming.append(t)
    return summary, streaming


def read_window(
    run_id: str,
    streaming: list[CdcTable],
    stop_at: Position,
    services: Services,
    budget: cdc_budget.WindowBudget,
) -> dict[str, Any]:
    """The rolling audits' slices, then one binlog window for every streaming table (of one run, or of the
    runs of several databases: each table's ``run_id``), staged and sent within ``budget``; each table's
    answer by label."""
    audits = {}
    try:
        for p in streaming:
            if p.audit is not None:
                locate(services, p.plan)
                audits[p.label] = stage_audit(p.run(run_id), p, stop_at, services)
    finally:
        services.endpoints.locate(None, None)
    return read_and_send(run_id, streaming, stop_at, services, CdcState(services.state), audits, budget)


def _start_streaming(run_id: str, p: CdcTable, services: Services, cdc: CdcState, scope: Scope) -> dict[str, Any]:
    """start_position now: the position recorded as streaming (no initial copy), the target table made with
    its columns and cdc's hidden ones (so a backfill can load into it), the table published at once."""
    assert p.position is not None
    s = services.settings
    started = Decimal(str(round(time.time(), 3)))
    held = services.state.hold_lease(p.key, run_id, s.lease_seconds, started)
    if held is None or not cdc.start_streaming(held, p.position.to_dict(), p.schema):
        reason = f"table {p.table!r}: another run took its lease before its binlog position was recorded"
        services.state.record_table(run_id, p.table, scope, status="declined", reason=reason, chunk_count=0)
        return {"status": "declined", "reason": reason}
    services.hooks.fault("cdc_position_recorded", None)
    sf = services.connections.warehouse(services.connections.place("target", services.connections.snowflake()))
    try:
        sf.prepare_changes(p.plan, s.reconcile_action)
    finally:
        sf.conn.close()
    position = p.position.to_dict()
    result = {
        "mode": "cdc",
        "position": f"{p.position.file}:{p.position.pos}",
        "validation": "not compared (started at start_position now, without an initial copy)",
    }
    services.state.record_table(
        run_id,
        p.table,
        scope,
        status="published",
        plan=p.plan.model_dump(mode="json"),
        chunk_count=0,
        cdc_from=position,
        cdc_to=position,
        notes=p.notes,
        started_at=started,
        finished_at=Decimal(str(round(time.time(), 3))),
        **result,
    )
    services.state.set_last_run(held, {"status": "published", **result})
    services.state.release_lease(p.key, run_id, 0)
    return {"status": "published", "notes": p.notes, **result}


def _send_initial_copy(run_id: str, p: CdcTable, services: Services, cdc: CdcState, scope: Scope) -> dict[str, Any]:
    """The full copy of a table, after its position is recorded (keyless tables: no position)."""
    initial = p.initial
    started = Decimal(str(round(time.time(), 3)))  # after the lease: the run's order on the table
    if p.position is not None:
        held = services.state.hold_lease(p.key, run_id, services.settings.lease_seconds, started)
        if held is None or not cdc.start_snapshot(held, p.position.to_dict(), p.schema):
            reason = f"table {p.table!r}: another run took its lease before its binlog position was recorded"
            services.state.record_table(run_id, p.table, scope, status="declined", reason=reason, chunk_count=0)
            return {"status": "declined", "reason": reason}
    services.hooks.fault("cdc_position_recorded", None)
    chunk_count = len(initial.bounds)
    services.state.record_table(
        run_id,
        p.table,
        scope,
        status="running",
        mode="full",
        plan=initial.plan.model_dump(mode="json"),
        chunk_count=chunk_count,
        window_from=None,
        window_to=initial.window[1] if initial.window else None,
        plan_seconds=str(round(initial.plan_seconds, 3)),
        notes=p.notes,
        started_at=started,
        # history mode: the copy's versions sit at the position its changes start after
        **({"history_pos": p.position.key()} if initial.plan.history and p.position is not None else {}),
    )
    services.state.save_bounds(run_id, p.table, initial.bounds)
    messages = chunk_messages(run_id, initial.plan, initial.bounds, None) or [finalise_message(run_id, initial.plan, 0)]
    services.queue.send([m.body() for m in messages])
    return {"status": "running", "mode": "full", "chunks": chunk_count, "notes": p.notes}


def window_path(run_id: str, window: binlog.Window, database: str | None = None) -> str:
    """The stage path of a window's batches (every table's of the window read, one PUT for them all):
    deterministic from the run and the window's start and end (and the source database of a table of one of
    several databases: two may have tables of one name in one schema)."""
    where = f"/db-{staging.stage_path_component(database)}" if database is not None else ""
    span = f"{window.start.key().replace(':', '_')}-{window.end.key().replace(':', '_')}"
    return f"cdc/{staging.stage_path_component(run_id)}/{span}{where}"


def batch_file(table: str, start: str, end: str, index: int) -> str:
    """A table's batch file of a window: deterministic from the table, its own start and end in the window (a
    digest: the path holds the window's) and the batch's index; unique among the tables of one path."""
    span = hashlib.sha1(f"{start}-{end}".encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{staging.stage_path_component(table)}.{span}.{index:05d}.csv.gz"


# the rolling audit's batch: its rows' chunk id in the run's load table (a window's batches are 0, 1, ...)
AUDIT_CHUNK = 999_999


def audit_position(stop_at: Position) -> str:
    """The position an audited row is written with: just before ``stop_at``, read before the audit's
    snapshot began. Every change the snapshot lacks was committed later, so it sorts after and wins
    over the audited row when a window applies it; every change of this window (at or before
    ``stop_at``) sorts before, so the audited row, which already holds it, wins over it. No event
    starts at ``stop_at - 1`` (an event is longer than one byte and the last one ends at ``stop_at``)."""
    return Position(stop_at.file, max(stop_at.pos - 1, 0)).key(999_999)


def stage_audit(run_id: str, p: CdcTable, stop_at: Position, services: Services) -> dict[str, Any]:
    """The rolling audit of a cdc table (``pipeline/audit.py``): the slice's rows, read in one consistent
    snapshot taken after ``stop_at`` was read, staged as a batch of upserts at ``audit_position``. The
    window's finalise applies it once every change of the window is (``modes/cdc/mode.py``): the target's
    rows that differ are counted, then the batch is merged as any batch is, under the position guard.
    Returns the fields of the run's TABLE item that describe it (none when the slice could not be read:
    the window goes on without it)."""
    assert p.audit is not None
    s = services.settings
    lower = json.loads(p.audit.cursor_from) if p.audit.cursor_from else None
    upper = json.loads(p.audit.cursor_to) if p.audit.cursor_to else None
    tag = audit_position(stop_at)
    path = f"cdc/{staging.stage_path_component(p.table)}/audit-{run_id}"
    file = "audit-00000.csv.gz"
    local = os.path.join(s.work_dir, "aurora-replication", path, file)
    encs = staging.plain_encoders(p.plan)
    checks = staging.size_checks(p.plan)
    try:
        conn = services.connections.place("source", services.connections.mysql())  # the table's database (``locate``)
        try:
            with source_read.snapshot(conn):
                query, params = source_sql.chunk_query(p.plan, lower, upper, None)
                stream = source_read.stream_rows(conn, query, params)
                try:
                    changes: Iterable[binlog.RowChange] = _audited(p.plan, stream, tag, checks)
                    if p.plan.transform and p.options is not None:  # as the copy path: MySQL's rows, transformed
                        changes = (c for c in p.options.transformed(changes) if c.op == "U")
                    staged = staging.write_lines_gz(local, _lines(encs, changes), AUDIT_CHUNK, "audit")
                finally:
                    stream.close()
        finally:
            conn.close()
        _put(services, local, path)
    except Exception as e:  # noqa: BLE001 - the audit is a check beside the window: the window goes on
        logger.warning(
            f"the audit slice of {p.table!r} could not be read ({type(e).__name__}: {e}); "
            "the window goes on without it",
            extra={"run_id": run_id, "table": p.table},
        )
        return {}
    finally:
        if os.path.exists(local):
            os.remove(local)
    batch = ChangeBatch(start=tag, end=tag, path=path, file=file, rows=staged.rows)
    return {"audit_batch": batch.model_dump(mode="json"), **p.audit.fields(AUDIT_CHUNK)}


def _cursor_value(v: Any) -> Any:
    """A key value as the fill's cursor keeps it (JSON): a number or text as read, anything else (a date,
    a decimal) as its text, which MySQL compares with the column as the value itself."""
    return v if isinstance(v, (int, str)) else str(v)


FILL_CHUNK = 0  # a fill page's chunk id in its own load table (``target.names.cdc_fill_table_name``)


def stage_fill(run_id: str, p: CdcTable, end: str, services: Services) -> dict[str, Any]:
    """A column version's next pages (``p.fill``), read from MySQL in key order from the cursor in the table's
    cdc state, after the window's end was read: at most CDC_FILL_ROWS rows or CDC_FILL_SECONDS (whole pages of
    CDC_FILL_PAGE_ROWS), streamed into one staged file. Returns the fields of the run's TABLE item the
    window's finalise fills from (``modes/cdc/mode.py``) and the cursor it stores once the window commits."""
    assert p.fill is not None
    name, plan = p.fill
    fields = stage_pages(run_id, p.table, name, plan, p.versions[name].get("cursor"), end, services)
    services.hooks.fault("cdc_fill_staged", ChangeBatch.model_validate(fields["fill_batch"]))
    return fields


def stage_pages(
    run_id: str, table: str, name: str, plan: TablePlan, cursor: str | None, end: str, services: Services
) -> dict[str, Any]:
    """The pages of a column version (``plan``: the key columns and the column, ``fill_plan``) after the
    key ``cursor`` (JSON text; None: from the start), read from MySQL now and staged in one file: at most
    CDC_FILL_ROWS rows or CDC_FILL_SECONDS (whole pages of CDC_FILL_PAGE_ROWS). Shared by cdc (a window's
    reader) and incremental (the run's finaliser, ``pipeline/column_fill.py``); ``end`` tags the rows."""
    s = services.settings
    after: list[Any] | None = json.loads(cursor) if cursor else None
    path = f"cdc/{staging.stage_path_component(table)}/fill-{run_id}"
    file = "fill-00000.csv.gz"
    local = os.path.join(s.work_dir, "aurora-replication", path, file)
    deadline = time.monotonic() + s.cdc_fill_seconds
    keys = len(plan.key)
    done = False
    read = 0

    def pages(conn: Any) -> Iterator[binlog.RowChange]:
        nonlocal after, done, read
        checks = staging.size_checks(plan)
        while read < s.cdc_fill_rows and time.monotonic() < deadline:
            page = min(s.cdc_fill_page_rows, s.cdc_fill_rows - read)
            query, params = source_sql.page_query(plan, after, page)
            got = 0
            stream = source_read.stream_rows(conn, query, params)
            try:
                for change in _audited(plan, stream, end, checks):
                    got += 1
                    after = [_cursor_value(v) for v in change.values[:keys]]
                    yield change
            finally:
                stream.close()
            read += got
            if got < page:
                done = True
                return

    try:
        conn = services.connections.place("source", services.connections.mysql())  # the table's database (``locate``)
        try:
            lines = _lines(staging.plain_encoders(plan), pages(conn))
            staged = staging.write_lines_gz(local, lines, FILL_CHUNK, "fill")
        finally:
            conn.close()
        _put(services, local, path)
    finally:
        if os.path.exists(local):
            os.remove(local)
    batch = ChangeBatch(start=end, end=end, path=path, file=file, rows=staged.rows)
    return {
        "fill_batch": batch.model_dump(mode="json"),
        "fill_plan": plan.model_dump_json(),
        "fill_column": name,
        "fill_cursor": json.dumps(after) if after is not None else "",
        "fill_done": done,
    }


def _audited(
    plan: TablePlan, rows: Iterator[tuple[Any, ...]], tag: str, checks: list[tuple[int, int, bool]]
) -> Iterator[binlog.RowChange]:
    """The slice's rows as upserts at ``tag``; a value longer than Snowflake holds fails the audit, naming it."""
    for row in rows:
        values = list(row)
        if checks:
            staging.check_sizes(plan, checks, values)
        yield binlog.RowChange("U", tag, values)


def read_and_send(
    run_id: str,
    tables: list[CdcTable],
    stop_at: Position,
    services: Services,
    cdc: CdcState,
    audits: dict[str, dict[str, Any]] | None = None,
    budget: cdc_budget.WindowBudget | None = None,
) -> dict[str, Any]:
    """Read one bounded window for ``tables``, stage each table's batches, define the window, send. A table
    of one of several databases (its ``run_id`` and plan's place) is staged, defined and sent in its run,
    where it lands; one read serves them all. The answer is keyed by each table's ``label``. Within
    ``budget``: the read's time is bounded by it, and a table there is no time left for is deferred."""
    s = services.settings
    budget = budget or cdc_budget.WindowBudget(services.deadline)
    tables = [p for p in tables if p.spec is not None]
    specs = {p.label: p.spec for p in tables if p.spec is not None}
    children = {c.label: c for c in _cascading(tables, services.endpoints.mysql_settings().dbname)}
    specs, unread = cdc_cascades.watch(specs, list(children.values()))
    started = time.time()
    # the connection the window's batches are PUT on, opened while the window is read (a login is round trips)
    early = services.connections.snowflake_early() if tables else None
    try:
        window = binlog_parallel.read_window(
            services.endpoints.mysql_settings(),
            specs,
            stop_at,
            s.cdc_server_id,
            budget.read_seconds(s.cdc_max_seconds),
            s.cdc_max_bytes,
            s.cdc_decode_processes,
            s.cdc_decode_min_bytes,
        )
    except Exception as e:  # nothing was defined: the tables fail now, and the next run reads again
        if early is not None:
            early.close()
        reason = f"reading the binlog failed: {type(e).__name__}: {e}"[:1000]
        for p in tables:
            services.state.set_table_status(p.run(run_id), p.table, "failed", reason=reason)
            services.state.release_lease(p.key, p.run(run_id), 0)
        for rid in dict.fromkeys(p.run(run_id) for p in tables):
            services.state.finish_run_if_complete(rid)
        raise
    services.hooks.fault("cdc_window_read", window)
    read_at = started if window.reached_end else float(window.newest_event_at or started)
    logger.info(
        "binlog window read",
        extra={
            "run_id": run_id,
            "from": str(window.start),
            "to": str(window.end),
            "events": window.events,
            "bytes": window.bytes,
            "stopped_by": window.stopped_by,
            "ddl": window.ddl[:10],
            "segments": window.segments,
            "seconds": round(time.time() - started, 3),
        },
    )
    summary: dict[str, Any] = {}
    pending: list[StagedTable] = []  # the tables whose batches are staged locally, to PUT and define
    local_root = os.path.join(s.work_dir, "aurora-replication", "cdc-window", uuid.uuid4().hex)
    targets: dict[str | None, Warehouse] = {}  # one warehouse connection per target schema (``Services.locate``)
    sources: dict[str | None, Any] = {}  # one MySQL connection per source database
    try:
        for p in tables:
            rid, label = p.run(run_id), p.label
            meter.set_run(rid)
            meter.focus(p.table, "read")
            if not budget.may_send():
                summary[label] = _defer_table(rid, p, services)
                continue
            locate(services, p.plan)
            if label in window.broken:
                reason = (
                    f"table {p.table!r}: the binlog has {window.broken[label]!r}, which changes cannot follow; "
                    + resnapshot_fix(p.table)
                )
                cdc.stop(p.key, reason)
                services.state.set_table_status(rid, p.table, "failed", reason=reason)
                services.state.release_lease(p.key, rid, 0)
                summary[label] = {"status": "failed", "reason": reason}
                continue
            cascaded = unread.get(label) or (
                cdc_cascades.changed_by_cascade(children[label], specs, window) if label in children else None
            )
            if cascaded is not None:
                if label not in unread:  # its rows changed outside the binlog: copied again by its next run
                    cdc.require_copy(p.key, cascaded)
                logger.warning(cascaded, extra={"run_id": rid, "table": p.table})
                services.state.set_table_status(rid, p.table, "declined", reason=cascaded)
                services.state.release_lease(p.key, rid, 0)
                summary[label] = {"status": "declined", "reason": cascaded}
                continue
            if p.rename is not None and label not in window.renamed and window.reached_end:
                # no statement renamed it: a drop and an add. The window was read for a rename (the column's
                # values under the old name), so it is not applied; the position stays, and the next run
                # reads it again with the pair as a drop and an add, the added column filled from MySQL
                cdc.refute_rename(p.key, p.rename[0], p.rename[1])
                reason = (
                    f"table {p.table!r}: column {p.rename[0]!r} went and {p.rename[1]!r} came since the stored "
                    "position (same place and type), but the binlog holds no ALTER TABLE ... RENAME COLUMN or "
                    f"CHANGE of it: a drop and an add; the next run follows it so ({p.rename[0]!r} kept, "
                    f"{p.rename[1]!r} added and filled from MySQL), from the same position"
                )
                logger.warning(reason, extra={"run_id": rid, "table": p.table})
                services.state.set_table_status(rid, p.table, "declined", reason=reason)
                services.state.release_lease(p.key, rid, 0)
                summary[label] = {"status": "declined", "reason": reason}
                continue
            if label in window.unreadable:  # its position stays: the next run reads these changes again
                reason = f"{window.unreadable[label]}; its position stays where it was"[:2000]
                services.state.set_table_status(rid, p.table, "failed", reason=reason)
                services.state.release_lease(p.key, rid, 0)
                summary[label] = {"status": "failed", "reason": reason}
                continue
            changes = list(window.changes.get(label, {}).values())
            changes.sort(key=lambda c: c.pos)
            sf = targets.get(p.plan.target_schema)
            if sf is None and changes:
                opened = early.take() if early is not None else None
                placed = services.connections.place("target", opened or services.connections.snowflake())
                sf = targets[p.plan.target_schema] = services.connections.warehouse(placed)
            try:
                if p.options is not None and p.options.needed and changes:
                    mysql = sources.get(p.plan.source_database)
                    if mysql is None:
                        mysql = sources[p.plan.source_database] = services.connections.place(
                            "source", services.connections.mysql()
                        )
                    changes = p.options.apply(mysql, changes)  # where, mask, transform: as the copy path
                audited = (audits or {}).get(label, {})
                pending.append(_stage_table(rid, p, changes, window, services, sf, audited, local_root))
            except Exception as e:  # noqa: BLE001 - this table fails; the run's other tables go on
                summary[label] = _fail_table(rid, p, e, services)
        # the window's batch files, uploaded by one PUT per stage path (the connector uploads them in parallel)
        for failed in _put_window(run_id, pending, services):
            summary[failed.p.label] = failed.failure
        for staged in pending:
            if staged.failure is not None:
                continue
            p = staged.p
            meter.set_run(staged.run_id)
            meter.focus(p.table, "read")
            if not budget.may_send():  # its files are staged, not defined: the next window reads them again
                summary[p.label] = _defer_table(staged.run_id, p, services)
                continue
            locate(services, p.plan)
            try:
                for batch in staged.batches:
                    services.hooks.fault("cdc_batch_staged", batch)
                summary[p.label] = _define_and_send(staged, window, read_at, services, cdc)
            except Exception as e:  # noqa: BLE001 - this table fails; the run's other tables go on
                summary[p.label] = _fail_table(staged.run_id, p, e, services)
    finally:
        services.endpoints.locate(None, None)
        shutil.rmtree(local_root, ignore_errors=True)
        if early is not None:  # no table of the window had changes to stage: not used
            early.close()
        for target in targets.values():
            target.conn.close()
        for mysql in sources.values():
            mysql.close()
    return summary


def _cascading(tables: list[CdcTable], default_database: str) -> list[cdc_cascades.Child]:
    """The window's tables with foreign keys that cascade (``cascades.py``), each parent by its label in the
    window: its name, or its database and name for a table of one of several databases; a parent in
    another database than a table of the source secret's is no label of the window."""
    out = []
    for p in tables:
        if not p.cascades or p.spec is None:
            continue
        database = p.plan.source_database or default_database
        parents = []
        for c in p.cascades:
            same = p.plan.source_database is None and c.parent_database == database
            parents.append((c, window_label(None if same else c.parent_database, c.parent)))
        out.append(cdc_cascades.Child(p.label, p.table, p.spec.start, parents))
    return out


@dataclass
class StagedTable:
    """One table's changes of a window, staged as local files under ``local`` (one PUT per stage path
    uploads every table's files of it), to be defined in its ledger and sent."""

    run_id: str
    p: CdcTable
    changes: list[binlog.RowChange]
    batches: list[ChangeBatch]
    window_end: Position
    renamed: list[dict[str, Any]]
    audited: dict[str, Any]
    sf: Warehouse | None
    local: str  # the directory of the stage path's files (``batch.path``)
    failure: dict[str, Any] | None = None


def _defer_table(run_id: str, p: CdcTable, services: Services) -> dict[str, Any]:
    """No time is left in the invocation for the table's window: its lease released, its position where it
    was, its status in the run ``declined`` with the reason; the next window starts with it."""
    services.state.set_table_status(run_id, p.table, "declined", reason=cdc_budget.DEFERRED_REASON)
    services.state.release_lease(p.key, run_id, 0)
    return {"status": cdc_budget.DEFERRED, "reason": cdc_budget.DEFERRED_REASON}


def _fail_table(run_id: str, p: CdcTable, e: BaseException, services: Services) -> dict[str, Any]:
    """The table fails this window: its lease released, its position where it was."""
    reason = (
        f"table {p.table!r}: its changes of this window could not be staged or sent: "
        f"{type(e).__name__}: {e}; its position stays where it was, so the next cdc run reads "
        "these changes again"
    )[:2000]
    logger.exception("cdc window of a table failed", extra={"run_id": run_id, "table": p.table})
    services.state.set_table_status(run_id, p.table, "failed", reason=reason)
    services.state.release_lease(p.key, run_id, 0)
    return {"status": "failed", "reason": reason}


def _stage_table(
    run_id: str,
    p: CdcTable,
    changes: list[binlog.RowChange],
    window: binlog.Window,
    services: Services,
    sf: Warehouse | None,
    audited: dict[str, Any],
    local_root: str,
) -> StagedTable:
    """Follow the window's rename of the table's column (if it holds one) and write its batch files."""
    assert p.position is not None
    renamed: list[dict[str, Any]] = []
    if p.rename is not None and p.label in window.renamed:  # the statement is in the window: rename the target
        renamed = _follow_rename(p, window.renamed[p.label], services, run_id)
    # a table whose position lies past where the window stopped (its budget ran out first) gets
    # an empty window that leaves its position where it is
    window_end = window.end if window.end.key() >= p.position.key() else p.position
    start, end = p.position.key(), window_end.key()
    staging_started = time.perf_counter()
    path = window_path(run_id, window, p.plan.source_database)
    local = os.path.join(local_root, path)
    batches = _stage_batches(p, changes, start, end, services, path, local)
    logger.info(
        "cdc window staged",
        extra={
            "run_id": run_id,
            "table": p.table,
            "changes": len(changes),
            "batches": len(batches),
            "seconds": round(time.perf_counter() - staging_started, 3),
        },
    )
    return StagedTable(run_id, p, changes, batches, window_end, renamed, audited, sf, local)


def _put_window(run_id: str, pending: list[StagedTable], services: Services) -> list[StagedTable]:
    """PUT each stage path's files (every table of the window with batches there) in one statement; the
    tables of a path whose PUT failed fail (returned, with ``failure`` set)."""
    groups: dict[str, list[StagedTable]] = {}  # by stage path (its database's): one target schema, one connection
    for staged in pending:
        if staged.batches:
            groups.setdefault(staged.local, []).append(staged)
    failed: list[StagedTable] = []
    for local, tables in groups.items():
        sf, path = tables[0].sf, tables[0].batches[0].path
        assert sf is not None
        meter.focus(None, "read")  # one statement for several tables: shared among the invocation's tables
        put_started = time.perf_counter()
        try:
            services.hooks.fault("cdc_window_uploading", path)
            sf.put(os.path.join(local, "*"), path)
        except Exception as e:  # noqa: BLE001 - these tables fail; the window's others go on
            for staged in tables:
                staged.failure = _fail_table(staged.run_id, staged.p, e, services)
                failed.append(staged)
            continue
        logger.info(
            "cdc window uploaded",
            extra={
                "run_id": run_id,
                "path": path,
                "tables": len(tables),
                "files": sum(len(t.batches) for t in tables),
                "seconds": round(time.perf_counter() - put_started, 3),
            },
        )
    return failed


def _define_and_send(
    staged: StagedTable, window: binlog.Window, read_at: float, services: Services, cdc: CdcState
) -> dict[str, Any]:
    """Define one table's staged window in its ledger (with the rolling audit's batch, ``audited``), send
    its batches."""
    run_id, p, changes, batches, window_end = staged.run_id, staged.p, staged.changes, staged.batches, staged.window_end
    assert p.position is not None
    end = window_end.key()
    counts = {"upserts": sum(c.op == "U" for c in changes), "deletes": sum(c.op == "D" for c in changes)}
    truncated = window.truncated.get(p.label)
    emptied: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    if truncated is not None:  # the finalise empties the target at that position, before the window commits
        emptied = [
            {
                "change": changelog.TRUNCATED,
                "column": "",
                "at": int(time.time()),
                "run": run_id,
                "detail": f"TRUNCATE in the binlog at {truncated}: the target emptied at that position, the "
                "changes after it applied",
            }
        ]
        fields = {"truncate_at": truncated}
    for position, _ in window.history_truncated.get(p.label, []):  # history mode: the keys live then close
        emptied.append(
            {
                "change": changelog.TRUNCATED,
                "column": "",
                "at": int(time.time()),
                "run": run_id,
                "detail": f"TRUNCATE in the binlog at {position}: every key live then closed with a delete "
                "version at that position (history mode), the changes before and after it kept as versions",
            }
        )
    if window.history_truncated.get(p.label):
        fields["history_truncations"] = [list(t) for t in window.history_truncated[p.label]]
    if emptied or staged.renamed:
        fields["schema_changes"] = [*p.schema_changes, *staged.renamed, *emptied]
    if staged.renamed:  # the window's batches are merged into the column's new name
        fields["plan"] = p.plan.model_dump(mode="json")
    if p.fill is not None and window_end.key() >= str(p.versions[p.fill[0]]["after"]):
        # every event of the old type is in this window or an earlier one: the pages read now (after the
        # window's end) are applied after its changes (docs/cdc.md#schema-changes)
        fields.update(stage_fill(run_id, p, end, services))
    if window.reached_end and window_end == window.end and p.schema:
        # every event before the server's end (so before any schema change planning saw) is in the window:
        # its finalise stores the schema planning read as the one its end is valid for
        fields["schema_columns"] = json.dumps(p.schema)
        if p.not_null_check:  # the ALTER is in this window: once it is applied, no live row may hold NULL
            fields["not_null_check"] = list(p.not_null_check)
    defined = cdc.define_window(
        run_id,
        p.table,
        cdc_to=window_end.to_dict(),
        batches=[b.model_dump(mode="json") for b in batches],
        chunk_count=len(batches),
        window_read_at=Decimal(str(round(read_at, 3))),
        newest_event_at=window.newest_event_at or 0,
        window_events=window.events,
        window_stopped_by=window.stopped_by,
        **counts,
        **fields,
        **staged.audited,
    )
    if not defined:  # another reader of this run defined it first: send what it defined
        logger.info("window already defined", extra={"run_id": run_id, "table": p.table})
        return send_window(run_id, p.table, services)
    # recorded once, by the reader that defined the window
    runs.record_schema_changes(services, run_id, p.key, [*staged.renamed, *emptied])
    # just defined here: no batch of it can be applied yet, so every one is sent, without reading the ledger back
    every = range(len(batches))
    return _send(run_id, p.plan, batches, every, p.position.to_dict(), window_end.to_dict(), services)


def _put(services: Services, local: str, path: str) -> None:
    """PUT a file the reader staged beside the window (the audit's slice, a column version's pages) on a
    connection of its own to the target."""
    sf = services.connections.warehouse(services.connections.place("target", services.connections.snowflake()))
    try:
        sf.put(local, path)
    finally:
        sf.conn.close()


def _follow_rename(p: CdcTable, at: str, services: Services, run_id: str) -> list[dict[str, Any]]:
    """The window holds the ALTER that renamed ``p.rename``'s column: the target column is renamed (unless
    a reader that died after it did: the statement is made only while the old name is there and the new
    one is not), ``p.plan`` writes to the new name, and the change's record is returned."""
    assert p.rename is not None
    old, new, old_target, new_target = p.rename
    connections = services.connections
    tgt = connections.warehouse(connections.place("target", connections.snowflake()))  # the table's schema (``locate``)
    try:
        names = {str(r[0]) for r in tgt.columns(p.plan.target_table)}
        if old_target in names and new_target not in names:
            tgt.alter([tgt.rename_statement(p.plan.target_table, old_target, new_target)])
    finally:
        tgt.conn.close()
    columns = [c.model_copy(update={"target": new_target}) if c.name == new else c for c in p.plan.columns]
    p.plan = p.plan.model_copy(update={"columns": columns})
    return [changelog.rename_record(old, new, old_target, new_target, at, int(time.time()), run_id)]


def zero_date_keys(plan: TablePlan, changes: list[binlog.RowChange]) -> None:
    """A change whose key holds a zero or partial-zero date cannot be applied: Snowflake has no such
    date (the copy writes NULL), so the change would match no row (or another zero date's row). Loud."""
    dated = [
        (i, c) for i, c in enumerate(plan.columns) if c.name in plan.key and c.kind in (typemap.DATE, typemap.DATETIME)
    ]
    for change in changes:
        for i, c in dated:
            value = change.values[i]
            if value is not None and typemap.is_zero_date(value):
                raise BadInputError(
                    f"table {plan.table!r}: key column {c.name!r} holds the zero date {value!r}, which Snowflake "
                    "cannot hold, so the change cannot be matched to its row; give the row a real date in MySQL "
                    "and re-snapshot the table, or replicate the table with mode 'full'"
                )


def _stage_batches(
    p: CdcTable, changes: list[binlog.RowChange], start: str, end: str, services: Services, path: str, local: str
) -> list[ChangeBatch]:
    """Write the table's changes as batch files into ``local`` (the stage path's directory), named
    ``batch_file``; the window's PUT uploads them."""
    s = services.settings
    encs = staging.plain_encoders(p.plan)
    checks = staging.size_checks(p.plan)
    if checks:  # a value longer than Snowflake holds fails the window, naming table, row key and column
        for change in changes:
            staging.check_sizes(p.plan, checks, change.values)
    zero_date_keys(p.plan, changes)
    batches = []
    for i in range(0, len(changes), s.cdc_batch_rows):
        part = changes[i : i + s.cdc_batch_rows]
        file = batch_file(p.table, start, end, i // s.cdc_batch_rows)
        staged = staging.write_lines_gz(os.path.join(local, file), _lines(encs, part), i // s.cdc_batch_rows, "cdc")
        low, high = key_bounds(p.plan, part)
        batch = ChangeBatch(start=start, end=end, path=path, file=file, rows=staged.rows, key_low=low, key_high=high)
        batches.append(batch)
    return batches


def key_bounds(plan: TablePlan, changes: list[binlog.RowChange]) -> tuple[int | None, int | None]:
    """The smallest and largest key of a batch whose table has one integer key (the warehouse may bound the
    batch's MERGE by them); (None, None) for any other key, or a key value that is not an integer's text."""
    if len(plan.key) != 1 or not changes:
        return None, None
    at = next((i for i, c in enumerate(plan.columns) if c.name == plan.key[0]), None)
    if at is None or plan.columns[at].kind != typemap.INTEGER:
        return None, None
    try:
        keys = [int(str(c.values[at])) for c in changes]
    except (TypeError, ValueError):
        return None, None
    return min(keys), max(keys)


def _lines(encs: list[staging.Encoder | None], changes: Iterable[binlog.RowChange]) -> Iterator[tuple[str]]:
    """Each change as a staging-file line (values, then op and position; the writer adds the rest)."""
    line = staging.line_writer(encs)
    for c in changes:
        yield (f"{line(c.values)},{c.op},{c.pos},{staging.NULL if c.at is None else c.at}",)


def send_window(run_id: str, table: str, services: Services) -> dict[str, Any]:
    """Send the defined window's batches that are not applied yet (all of them the first time), or its
    finalise step when there are none left."""
    t = services.state.get_table(run_id, table)
    plan = TablePlan.model_validate(t["plan"])
    # read back from the ledger, whose numbers are Decimal: not input, so not validated strictly
    batches = [ChangeBatch.model_validate(b, strict=False) for b in t.get("batches", [])]
    missing = services.state.outstanding(services.state.get_chunks(run_id, table), len(batches), 0)
    return _send(run_id, plan, batches, missing, t.get("cdc_from"), t.get("cdc_to"), services)


def _send(
    run_id: str,
    plan: TablePlan,
    batches: list[ChangeBatch],
    missing: Collection[int],
    cdc_from: Any,
    cdc_to: Any,
    services: Services,
) -> dict[str, Any]:
    """Send the window's batches numbered ``missing`` (its finalise step when none is), and answer for the table."""
    wanted = set(missing)
    messages = [
        ChunkMessage(kind="chunk", run_id=run_id, chunk_id=i, chunk_count=len(batches), plan=plan, batch=b, round=0)
        for i, b in enumerate(batches)
        if i in wanted
    ]
    if not messages:
        messages = [finalise_message(run_id, plan, len(batches))]
    for m in messages:
        services.queue.send([m.body()])
        services.hooks.fault("cdc_batch_sent", m)
    return {
        "status": "running",
        "mode": "cdc",
        "chunks": len(batches),
        "changes": sum(b.rows for b in batches),
        "from": cdc_from,
        "to": cdc_to,
    }


def resume_table(run_id: str, table: str, t: TableItem, services: Services) -> dict[str, Any]:
    """A stalled cdc table: its window read again when the reader died before defining it (from the
    same stored position), else its missing batches sent again."""
    cdc = CdcState(services.state)
    if t.get("cdc_to") is None:
        plan = TablePlan.model_validate(t["plan"])
        key = TableKey.of_run_table(t, table)  # the scope the run was planned in
        state = cdc.get(key) or {}
        locate(services, plan)  # a table of one of several databases: its database and schema
        try:
            conn = services.connections.place("source", services.connections.mysql())
            try:
                database = plan.source_database or services.endpoints.mysql_settings().dbname
                facts = binlog.column_facts(conn, database, table)
                salt = services.endpoints.mysql_settings().mask_salt
                options_ = image_options(conn, database, plan, facts, services.settings.transform_modules, salt)
                cascades = cdc_cascades.cascades_in(conn, database, table).get(table, [])
                stop_at = binlog.current_position(conn)
            finally:
                conn.close()
        finally:
            services.endpoints.locate(None, None)  # read_and_send locates each table again
        position = Position.from_dict(t.get("cdc_from") or {})
        if state.get("position_key") != position.key():
            raise BadInputError(
                f"run {run_id!r} table {table!r}: the stored position moved on since this run started; "
                "this run's window is stale: start a new cdc run"
            )
        stored_columns = list(state.get("schema_columns") or [])
        stored = {str(s[0]) for s in stored_columns}
        case = services.settings.identifier_case
        for old, new in refuted_renames(state):
            if any(c.name == new and c.target == target_name(old, case) for c in plan.columns):
                raise BadInputError(  # planned as a rename, which its window then refuted (the reader died after)
                    f"run {run_id!r} table {table!r}: the run planned {old!r} -> {new!r} as a rename, which a window "
                    "refuted (a drop and an add): this run's window is stale: start a new cdc run"
                )
        renaming = rename_candidate(stored_columns, [facts[n] for n in facts], refuted_renames(state))
        renames = {renaming[0]: renaming[1]} if renaming else {}
        pending = None
        if renaming:  # the run planned a rename its window had not followed yet: the plan writes the old name
            old_target, new_target = target_name(renaming[0], case), target_name(renaming[1], case)
            if any(c.name == renaming[1] and c.target == old_target for c in plan.columns):
                pending = (renaming[0], renaming[1], old_target, new_target)
        spec = _spec(position, plan, options_, facts, stored, renames)
        resumed = CdcTable(table, plan, key, position=position, spec=spec, options=options_, rename=pending)
        resumed.cascades = cascades
        result: dict[str, Any] = read_and_send(run_id, [resumed], stop_at, services, cdc)[resumed.label]
        return result
    return send_window(run_id, table, services)
