"""What every sync mode answers, in one small interface.

A run copies *units* (a chunk: one key range read in one consistent snapshot; for change capture,
one batch of binlog events) into a run-scoped load table, tagged with the unit and attempt ids.
The finaliser then validates each unit against what the source recorded for it when it was read,
and only once every unit matches does the mode *commit*: it applies exactly the validated
(unit, attempt) pairs to the target and names the position (watermark) the next run starts from.

A mode says:
  - what a unit selects (``unit_plan``: the columns; ``selection``: the rows beyond the key range),
  - how a unit loads (``load``: by default a COPY or INSERT into the load table; no statement that
    locks the load table, so units of one table load concurrently),
  - how it is validated (``compared``: whether the source checksum describes the loaded rows),
  - what it commits (``commit`` and ``watermark``),
  - what its planning, finaliser, resume and cost report ask of it (the class attributes below: whether it
    reads a watermark window, replaces the whole target, owns its own flow, is idle when no rows move).
Nothing outside ``modes/`` compares a mode's name (``tests/unit/test_architecture.py``): it asks
``modes.get(name)`` (a table's mode) or ``modes.requested(name)`` (a request's, ``auto`` too) instead.
What a request and a chunk message of the mode must hold sits below, in ``models.MODE_RULES``
(``rules``), where the models that check it can read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aurora_replication import schema_changes
from aurora_replication.config import Settings
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import MODE_RULES, ChunkMessage, ModeRules, TablePlan
from aurora_replication.services import Services
from aurora_replication.target.warehouse import Attempts, HistoryBroken, Warehouse

Window = tuple[str | None, str | None]


class CommitMismatch(RuntimeError):
    """The target, after the commit, does not hold what the validated units carried."""


@dataclass
class Commit:
    """What a mode's commit step gets: the validated attempts of the load table."""

    target: Warehouse
    plan: TablePlan  # the table's plan (not the unit plan)
    load_table: str
    attempts: Attempts
    settings: Settings
    message: ChunkMessage
    # the sum of the validated units' source checksums, as (rows, checksum)
    expected: tuple[int, str] = (0, "0000000000000000")
    # how many rows the validated attempts held in the load table when they were validated: what a
    # commit that replaces or deletes by them must find there still (``RowCountMismatch`` otherwise)
    loaded_rows: int = 0
    fault: Callable[[str, Any], None] = field(default=lambda step, message=None: None)
    # the rolling audit's slice (``pipeline/audit.py``): the first of its chunk ids (None: no slice), and
    # the window's start, above which an audited row may differ from the target as lag
    audit_from: int | None = None
    window_from: str | None = None
    # ``expected`` without the JSON columns (the validated units' Snowflake checksums without them, from the
    # ledger): what a target that holds JSON as VARIANT is compared with; None: ``expected`` itself
    expected_no_json: tuple[int, str] | None = None
    # history mode (``target/snowflake/history_sql.py``): the new versions' position (the cdc initial copy's start
    # position, else the run id) and time (the oldest snapshot of the run's chunks, as text)
    history_pos: str = ""
    history_at: str = ""
    # target columns MySQL declares NOT NULL since the last run (incremental): after the commit no live
    # row may hold NULL in them (rows the ALTER rewrote, which no watermark shows)
    not_null_check: list[str] = field(default_factory=list)


class RequestedMode:
    """What planning asks of the mode a run request names, before each table's mode is chosen: a sync mode
    (``SyncMode``), or ``auto`` (``modes/auto.py``), which chooses one per table."""

    name: ClassVar[str]
    # the mode a table of the request is copied in when an incremental run of it finds it cannot carry the
    # table (a rename, a type Snowflake cannot change in place); None: the table fails (an explicit mode)
    fallback: ClassVar[str | None] = None
    # True: the request needs the table's target to exist already (reconcile removes rows from it)
    needs_target: ClassVar[bool] = False
    # True: the mode plans, sends and resumes its own runs (cdc: ``pipeline/modes/cdc/reader.py``, a window of the
    # binlog), not the scheduler's chunks of key ranges nor ``resume.resume_table``
    owns_flow: ClassVar[bool] = False

    @property
    def may_read_window(self) -> bool:
        """Whether a table of the request may be copied as a window of the rows changed since its watermark
        (then its largest key and largest watermark are compared with the last run's, where a TRUNCATE, or the
        table replaced by one with older rows, shows as a fall)."""
        return False

    @property
    def rules(self) -> ModeRules:
        """What a request and a chunk message of the mode must hold (``models.MODE_RULES``)."""
        return MODE_RULES[self.name]


class SyncMode(RequestedMode):
    commit_step: ClassVar[str]  # the commit's step name in traces and the ChunkSeconds metric
    # True: a published run compared every row of the table with the source (a full copy), which
    # starts the rolling audit's cycle again (``verified_at``)
    verifies_whole_table: ClassVar[bool] = False
    # True: the commit's statements read and write the validated rows only (not the target's), so a commit
    # of few rows is short whatever the target's size, and runs synchronously (SYNC_COMMIT_MAX_ROWS)
    commit_bounded_by_load: ClassVar[bool] = False
    # True: a chunk reads the rows changed since the stored watermark (a window), merged into the target as it
    # stands: planning evolves the target first, checks columns newly NOT NULL and adds the rolling audit
    reads_window: ClassVar[bool] = False
    # True: the commit replaces every row of the target with the source's, so a run repairs whatever the
    # target held (a TRUNCATE in MySQL, which planning records once the run holds the table)
    replaces_target: ClassVar[bool] = False
    # True: a run of the table that moved no rows but cost something is a sign its schedule could be longer
    # (``cost/estimate.nothing_changed``)
    idle_when_unchanged: ClassVar[bool] = False

    @property
    def may_read_window(self) -> bool:
        return self.reads_window

    @property
    def applies_units(self) -> bool:
        """True: the mode applies its units itself (``handle``: cdc's batches of changes, ``rules.applies_batches``),
        instead of the worker's copy of a key range and the finaliser's validation and ``commit``."""
        return self.rules.applies_batches

    def health_check(self) -> Callable[[Services], dict[str, Any]] | None:
        """The mode's own check in the health report (``ops/health.py``), named after the mode; None: none."""
        return None

    def kept_detail(self, plan: TablePlan) -> str:
        """How the schema log describes a column MySQL dropped that a commit of this mode kept in the target."""
        return schema_changes.KEPT_DETAIL

    def handle(self, message: ChunkMessage, services: Services) -> dict[str, Any]:
        """A unit or finalise message of a mode that ``applies_units``."""
        raise NotImplementedError

    def unit_plan(self, plan: TablePlan) -> TablePlan:
        """The plan a unit copies (the columns, the transform)."""
        return plan

    def selection(self, message: ChunkMessage) -> Window | None:
        """The watermark window a chunk reads within its key range (None: every row of the range)."""
        return None

    def message_window(self, window: Window | None) -> Window | None:
        """The window chunk messages carry (the scheduler's planned window)."""
        return None

    def compared(self, unit_plan: TablePlan) -> bool:
        """Whether a unit's source checksum describes the rows it loads (not after a Python transform)."""
        return not unit_plan.transform

    def load(
        self,
        target: Warehouse,
        unit_plan: TablePlan,
        load_table: str,
        chunk_id: int,
        attempt: str,
        rows: list[list[Any]] | None,
        staged: tuple[str, list[str]] | None,
    ) -> None:
        """Put one attempt's rows into the load table: bound rows (the small-chunk path) or staged
        files (stage path, file names: one, or one per part of a chunk read in parts)."""
        if rows is not None:
            target.load_rows(unit_plan, load_table, chunk_id, attempt, rows)
        elif staged is not None:
            target.load_file(unit_plan, load_table, *staged)

    def commit(self, c: Commit) -> dict[str, Any]:
        """Apply the validated attempts to the target; returns fields for the run's summary, with
        ``table_rows``: how many rows the target holds after the commit (the ledger's count the next
        run checks the target against, ``pipeline/target_check.py``)."""
        raise NotImplementedError

    def watermark(self, table_state: TableItem) -> str | None:
        """The watermark committed once the run is published (None: leave it as it is)."""
        return None


def check_not_null(c: Commit) -> None:
    """After an incremental commit: a live target row still NULL in a column MySQL declares NOT NULL since
    the last run is a row MySQL rewrote in the ALTER (a session without strict mode), which no watermark
    shows and no incremental run reads: the table fails, naming it and the fix."""
    if not c.not_null_check:
        return
    names = {str(r[0]) for r in c.target.columns(c.plan.target_table)}
    action = "mark" if "_ASR_DELETED_AT" in names else "delete"
    for column in c.not_null_check:
        rows = c.target.null_rows(c.plan, column, action) if column in names else 0
        if rows:
            raise CommitMismatch(
                f"table {c.plan.table!r}: column {column!r} is NOT NULL in MySQL now, but {rows:,} live rows of the "
                "target hold NULL in it: MySQL rewrote them in the ALTER (a session without STRICT_TRANS_TABLES), "
                "which no watermark shows; run the table with mode 'full' (or 'auto', which copies it in full)"
            )


def history_commit(c: Commit, whole_table: bool) -> dict[str, Any]:
    """The commit of a copy (full, cdc initial copy, incremental) in history mode (``target/snowflake/history_sql.py``):
    the validated rows that differ from their key's current version become new versions, the versions
    they replace are closed; a copy of the whole table (``whole_table``) also closes the keys the source
    no longer has with a delete marker. Then the current-state view, and the history's invariants over
    the keys the copy carried (every key, after a whole table), which fail the table when broken."""
    try:
        return _history_commit(c, whole_table)
    except HistoryBroken as e:  # the table fails, naming the broken rule (a retry would find it again)
        raise CommitMismatch(str(e)) from e


def _history_commit(c: Commit, whole_table: bool) -> dict[str, Any]:
    existing = c.target.ensure_history_table(c.plan)
    change = c.target.schema_diff(c.plan, existing)
    if change.conflicts:
        raise CommitMismatch(
            f"table {c.plan.table!r}: " + "; ".join(change.conflicts) + " (a history table keeps its versions: "
            "rename the history table in Snowflake to start a new one, or keep the column's old type)"
        )
    c.target.alter(c.target.alter_statements(c.plan, change))
    rows = c.target.validated(c.load_table, c.attempts)
    c.target.history_snapshot(c.plan, c.load_table, rows, c.attempts.params, c.history_at, c.history_pos)
    if whole_table:
        c.target.history_close_absent(c.plan, c.load_table, rows, c.attempts.params, c.history_at, c.history_pos)
    c.fault("published", c.message)
    c.target.history_view(c.plan)
    if whole_table:
        c.target.check_history(c.plan)
    else:
        keys = ", ".join(q(c.plan.column(k).target) for k in c.plan.key)
        c.target.check_history(c.plan, f"SELECT {keys} FROM {q(c.load_table)} WHERE {rows}", c.attempts.params)  # noqa: S608 (quoted names, bound values)
    counted: dict[str, Any] = {}
    if whole_table:  # a copy of every row: as many current versions as the chunks held rows (a scan, as the copy is)
        current = c.target.current_rows(c.plan)
        if current != c.loaded_rows:
            raise CommitMismatch(
                f"after the commit the history table {c.plan.target_table!r} has {current:,} current versions where "
                f"the validated chunks hold {c.loaded_rows:,} rows: it was changed by something else; inspect it"
            )
        counted["current_rows"] = current
    return {
        "publish": "versions added (history mode)",
        **counted,
        # what the table holds, every version: the count the next run's whole-target check compares
        "table_rows": c.target.row_count(c.plan.target_table),
        **({"schema_notes": change.describe(c.plan.target_table)} if change.describe(c.plan.target_table) else {}),
        **({schema_changes.DROPPED_FIELD: change.gone_fields()} if change.gone else {}),
    }
