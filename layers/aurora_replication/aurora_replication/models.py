"""Validated shapes of everything that crosses a boundary: run requests, table plans, messages."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.generated_sql import MASKS, safe_predicate
from aurora_replication.identifiers import InvalidIdentifierError, mysql_ident, validate_identifier

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
Mode = Literal["full", "incremental", "auto", "reconcile", "cdc"]
ResolvedMode = Literal["full", "incremental", "reconcile", "cdc"]


@dataclass(frozen=True)
class ModeRules:
    """What a request and a chunk message of one mode must hold, declared here, below everything that checks
    them (this module, ``target/names.py``); what the mode does is its module in ``pipeline/modes/``, which
    reads these through ``SyncMode.rules``."""

    needs_key: bool = False  # a primary or unique key (rows matched on it)
    needs_watermark: bool = False  # a watermark column (a window of changed rows)
    applies_batches: bool = False  # a chunk carries a batch of changes (``ChangeBatch``), not a key range
    request_fields: frozenset[str] = frozenset()  # the run request's fields only this mode takes
    merge_refused: str = ""  # why ``database_mapping`` 'merge' cannot go with the mode ('': it can)
    load_prefix: str = ""  # how the names of its runs' load tables of chunks start (``target/names.py``)


# every requested mode's rules (``auto`` resolves to full or incremental per table: ``pipeline/modes``)
MODE_RULES: dict[str, ModeRules] = {
    "full": ModeRules(load_prefix="_ASR_FULL_"),
    "incremental": ModeRules(needs_key=True, needs_watermark=True, load_prefix="_ASR_INC_"),
    "auto": ModeRules(),
    "reconcile": ModeRules(needs_key=True, load_prefix="_ASR_KEYS_"),
    "cdc": ModeRules(
        needs_key=True,
        applies_batches=True,
        request_fields=frozenset({"resnapshot", "start_position", "follow_seconds"}),
        merge_refused="each database's changes would need the merged table's key extended by _ASR_SOURCE_DATABASE "
        "in the change batches; use 'schema' or 'prefix' under cdc",
    ),
}
KeyValue = str
HEX_VALUE = re.compile(r"^(?:[0-9A-Fa-f]{2})*$")


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def shown(value: object, limit: int = 60) -> str:
    """A value as it was given (``repr``: quotes, escapes, ``True`` stays ``True``), cut to ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(what: str, error: ValidationError, fields: Iterable[str] = ()) -> str:
    """One line: each field that failed, the value it was given and what it must be. ``fields``: the
    top-level fields the shape has, named when an unknown one was given (a typo is the usual cause)."""
    parts = []
    known = sorted(fields)
    for e in error.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")  # a validator's own sentence, as it wrote it
        if e["type"] == "extra_forbidden":
            message = "unknown field" + (f"; the fields are {', '.join(known)}" if known and len(e["loc"]) == 1 else "")
        if e["type"] == "model_type":  # the whole value, or a nested one, is not an object
            message = "must be a JSON object"
        if (e["loc"] or e["type"] == "model_type") and e["type"] != "missing":
            parts.append(f"{loc}={shown(e['input'])}: {message}")
        else:
            parts.append(f"{loc}: {message}")
    return f"invalid {what}: " + "; ".join(parts)


def _distinct_names(names: list[str], kind: str) -> None:
    """Each of ``names`` a valid identifier, none twice (``kind``: "table", "database")."""
    seen: set[str] = set()
    for name in names:
        try:
            validate_identifier(name, f"{kind} name")
        except InvalidIdentifierError as e:
            raise ValueError(str(e)) from None
        if name in seen:
            raise ValueError(f"{kind} {name!r} is listed twice")
        seen.add(name)


class _Strict(BaseModel):
    """Every shape that crosses a boundary: unknown fields rejected, and types strict (``True`` is not
    the integer 1, ``"5"`` is not 5, ``1.0`` is not an integer): a value of the wrong type is a
    mistake to name, never one to guess the meaning of. Data read back from the ledger (DynamoDB's
    numbers are ``Decimal``) is validated with ``strict=False`` where it is read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TableOptions(_Strict):
    """Per-table transformation settings (see ``pipeline/transforms.py`` and docs/run-requests.md)."""

    exclude: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    mask: dict[str, Literal["sha256", "md5", "salted_sha256"]] = Field(default_factory=dict)
    cast: dict[str, str] = Field(default_factory=dict)
    where: str | None = Field(default=None, max_length=2000)
    transform: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
    # history mode (type-2): the target keeps every version of a row with its validity interval
    # (``target/history_sql.py``, docs/run-requests.md#history-mode)
    history: bool = False
    # a column dropped in MySQL: kept in the target (NULL for new rows), or dropped from it too
    # (``target/evolution.py``, docs/run-requests.md#columns-dropped-in-mysql)
    on_column_drop: Literal["keep", "drop"] = "keep"

    @model_validator(mode="after")
    def _names(self) -> TableOptions:
        for name in [*self.exclude, *self.rename, *self.rename.values(), *self.mask, *self.cast]:
            try:
                validate_identifier(name, "column name")
            except InvalidIdentifierError as e:
                raise ValueError(str(e)) from None
        return self


def load_json(text: str | bytes, what: str) -> Any:
    """JSON as RFC 8259 defines it, or a ``BadInputError`` of one line naming ``what``, where and why:
    no ``NaN`` or ``Infinity`` (Python's json module takes them), no key given twice (it keeps the
    last one without a word)."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON value")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                raise ValueError(f"key {key!r} is given twice")
            seen[key] = value
        return seen

    if not (text.strip() if isinstance(text, str) else text.strip()):
        raise BadInputError(f"{what} is not JSON: it is empty")
    try:
        return json.loads(text, parse_constant=constant, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise BadInputError(f"{what} is not JSON: {e.msg}: line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise BadInputError(f"{what} is not JSON: {e}") from None
    except RecursionError:
        raise BadInputError(f"{what} is not JSON we read: nested too deeply") from None


def new_run_id() -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxx``: the UTC time, then 6 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class RunRequest(_Strict):
    """What the scheduler is asked to do (the EventBridge Scheduler payload)."""

    tables: list[str] = Field(min_length=1)
    mode: Mode = "auto"
    chunk_rows: int | None = Field(default=None, ge=1, le=10_000_000)
    run_id: str | None = None
    watermark_columns: dict[str, str] = Field(default_factory=dict)
    table_options: dict[str, TableOptions] = Field(default_factory=dict)
    # cdc mode: take a new initial copy (and record a new binlog position first) even where one exists;
    # true: every table of the request; a list: those tables only (the others stream in the same run)
    resnapshot: bool | list[str] = False
    # cdc mode: where a table without a position (or one re-snapshotted) starts: "snapshot", an initial
    # copy after recording the position; "now", streaming from the server's position now, no copy
    start_position: Literal["snapshot", "now"] = "snapshot"
    # cdc mode: read windows back to back for about this many seconds of the invocation, each once the
    # last one's run has ended (``pipeline/modes/cdc/follow.py``); 0: one window
    follow_seconds: int = Field(default=0, ge=0, le=840)
    # several source databases of the server (names, or patterns with ``*`` and ``?``): one run of the
    # request's tables per database (``pipeline/databases.py``); None: the source secret's database
    databases: list[str] | None = Field(default=None, min_length=1)
    # where each database's tables go: ``schema``, a Snowflake schema of its own (named after the
    # database) in the target database; ``prefix``, the target schema with ``<database>__`` before each
    # table's name; ``merge``, the target schema, every database's rows in one table per source table with
    # ``_ASR_SOURCE_DATABASE`` (``target/snowflake/merged_sql.py``)
    database_mapping: Literal["schema", "prefix", "merge"] | None = None

    @field_validator("databases", mode="before")
    @classmethod
    def _split_databases(cls, v: object) -> object:
        if isinstance(v, str):  # the schedule's ScheduleDatabases, as ``tables`` is given
            v = [d.strip() for d in v.split(",") if d.strip()]
        return v

    @field_validator("databases")
    @classmethod
    def _valid_databases(cls, v: list[str] | None) -> list[str] | None:
        _distinct_names(v or [], "database")
        return v

    @model_validator(mode="after")
    def _database_fields(self) -> RunRequest:
        if self.databases is None:
            if self.database_mapping is not None:
                raise ValueError("database_mapping goes with databases: name the source databases it maps")
            return self
        if self.database_mapping is None:
            raise ValueError(
                "databases needs database_mapping: 'schema' (a Snowflake schema per database) or 'prefix' "
                "(one schema, each table's name after '<database>__')"
            )
        refused = MODE_RULES[self.mode].merge_refused
        if refused and self.database_mapping == "merge":
            raise ValueError(f"database_mapping 'merge' is not supported with mode {self.mode!r}: {refused}")
        return self

    @field_validator("resnapshot", mode="plain")
    @classmethod
    def _resnapshot(cls, v: object) -> bool | list[str]:
        if isinstance(v, bool) or (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            return v
        raise ValueError("must be true, false or a list of table names")

    def resnapshots(self, table: str) -> bool:
        """Whether this request re-snapshots ``table`` (cdc mode)."""
        return self.resnapshot is True or (isinstance(self.resnapshot, list) and table in self.resnapshot)

    @model_validator(mode="after")
    def _cdc_fields(self) -> RunRequest:
        given = [
            f
            for f, set_ in (
                ("resnapshot", self.resnapshot),
                ("follow_seconds", self.follow_seconds),
                ("start_position", self.start_position != "snapshot"),
            )
            if set_
        ]
        for field in given[:1]:
            if field not in MODE_RULES[self.mode].request_fields:
                owner = next(m for m, r in MODE_RULES.items() if field in r.request_fields)
                raise ValueError(
                    f"{field} is a field of {owner} runs: give it with mode {owner!r} (the mode is {self.mode!r})"
                )
        if isinstance(self.resnapshot, list):
            if not self.resnapshot:
                raise ValueError("resnapshot is an empty list: name the tables to re-snapshot, or give true or false")
            named = set(self.tables)
            for name in self.resnapshot:
                try:
                    validate_identifier(name, "table name")
                except InvalidIdentifierError as e:
                    raise ValueError(str(e)) from None
                if "*" not in named and name not in named:
                    raise ValueError(f"resnapshot names table {name!r}, which the request's tables do not list")
        return self

    @field_validator("tables", mode="before")
    @classmethod
    def _split_tables(cls, v: object) -> object:
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("tables")
    @classmethod
    def _valid_tables(cls, v: list[str]) -> list[str]:
        if "*" in v and len(v) > 1:
            raise ValueError("'*' means every table and cannot be combined with table names")
        _distinct_names([n for n in v if n != "*"], "table")
        return v

    @field_validator("run_id")
    @classmethod
    def _valid_run_id(cls, v: str | None) -> str | None:
        if v is not None and not RUN_ID_PATTERN.match(v):
            raise ValueError("run_id must be 1-64 letters, digits, '-' or '_', starting with a letter or digit")
        return v

    @field_validator("watermark_columns")
    @classmethod
    def _valid_watermarks(cls, v: dict[str, str]) -> dict[str, str]:
        for table, column in v.items():
            try:
                validate_identifier(table, "table name")
                validate_identifier(column, "watermark column")
            except InvalidIdentifierError as e:
                raise ValueError(str(e)) from None
        return v


class ResumeRequest(_Strict):
    """``{"resume_run": "<run id>"}``: send again what a stalled run misses (``pipeline/resume.py``)."""

    resume_run: str

    @field_validator("resume_run")
    @classmethod
    def _valid_run_id(cls, v: str) -> str:
        if not RUN_ID_PATTERN.match(v):
            raise ValueError("must be a run id: 1-64 letters, digits, '-' or '_', starting with a letter or digit")
        return v


def parse_run_request(event: object, default_mode: str) -> RunRequest:
    if not isinstance(event, dict):
        raise BadInputError(f"run request must be a JSON object, got {type(event).__name__} {shown(event)}")
    payload = dict(event)
    payload.setdefault("mode", default_mode)
    try:
        return RunRequest.model_validate(payload)
    except ValidationError as e:
        raise BadInputError(describe_validation_error("run request", e, RunRequest.model_fields)) from None


def parse_resume_request(event: object) -> str:
    """The id of the run a resume request names."""
    try:
        return ResumeRequest.model_validate(event).resume_run
    except ValidationError as e:
        raise BadInputError(describe_validation_error("resume request", e, ResumeRequest.model_fields)) from None


def parse_scheduler_event(event: object, default_mode: str) -> RunRequest | str:
    """What the scheduler is asked: a run (its request), or to resume a run (its id)."""
    if isinstance(event, dict) and "resume_run" in event:
        return parse_resume_request(event)
    return parse_run_request(event, default_mode)


class Column(_Strict):
    """One column of a plan, in neutral terms (``typemap``): how its value travels (``kind``) and the facts
    its warehouse type is made from; the warehouse maps them to its own type (``target/snowflake/types.py``)."""

    name: str
    kind: str
    target: str
    precision: int | None = None  # a number's digits; a datetime's fractional digits
    scale: int | None = None  # a number's fractional digits
    size: int | None = None  # the most bytes a text or binary value holds in MySQL (None: a short one)
    # a warehouse type named outright: the table options' ``cast`` (checked against the warehouse's types), or
    # the type a plan recorded before plans carried neutral kinds (read back from the ledger or a message)
    warehouse_type: str | None = None
    source_expr: str | None = None  # a masked column's MySQL expression (built by transforms, never user text)
    checksum: bool = True  # False for cast columns, whose text differs between the engines
    # a ZEROFILL number: MySQL's text of it is padded with zeros ('007'), so it is read as ``col + 0``
    zerofill: bool = False

    @model_validator(mode="before")
    @classmethod
    def _recorded_before_neutral_kinds(cls, data: Any) -> Any:
        """A plan written by an earlier version (a run resumed, a message in flight across a deploy) named the
        column's Snowflake type (``snowflake_type``): it is kept as the column's ``warehouse_type``, so the
        column is created, cast and compared exactly as that version planned it."""
        if isinstance(data, dict) and "snowflake_type" in data:
            data = dict(data)
            named = data.pop("snowflake_type")
            data.setdefault("warehouse_type", named)
        return data


class TablePlan(_Strict):
    """One table of one run: what to copy and how."""

    table: str
    target_table: str
    columns: list[Column] = Field(min_length=1)
    key: list[str] = Field(default_factory=list)
    watermark: str | None = None
    mode: ResolvedMode
    notes: list[str] = Field(default_factory=list)
    where: str | None = None
    transform: str | None = None
    zero_dates: Literal["null", "fail"] = "null"
    # history mode: the target holds one row per version (``target/history_sql.py``)
    history: bool = False
    # a run of a request naming several databases: the MySQL database the table is read from and the
    # Snowflake schema it is written to (``Services.locate``); None: the two secrets' database and schema
    source_database: str | None = None
    target_schema: str | None = None
    # what evolution does with a target column MySQL no longer has (``TableOptions.on_column_drop``)
    on_column_drop: Literal["keep", "drop"] = "keep"
    # target names of columns MySQL still has that the options exclude or rename: never taken for a drop
    kept_by_options: list[str] = Field(default_factory=list)
    # MySQL's NOT NULL columns, as planning read them: a planning fact, not sent in messages
    not_null: list[str] = Field(default_factory=list, exclude=True)
    # ``database_mapping: merge``: the target is shared by several source databases, each row carrying its
    # database (``source_database``) in ``_ASR_SOURCE_DATABASE``; every statement keeps to its rows
    merged: bool = False

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def keys_only(self) -> TablePlan:
        """The plan of a reconcile run's chunks: the key columns only, no Python transform."""
        return self.model_copy(update={"columns": [self.column(k) for k in self.key], "transform": None})


def _check_generated_sql(plan: TablePlan) -> None:
    """A message is data from a queue: re-check every SQL fragment it carries before it is used."""
    for c in plan.columns:
        if c.source_expr is not None and c.source_expr not in {m.format(mysql_ident(c.name)) for m in MASKS.values()}:
            raise ValueError(f"column {c.name!r} carries an unexpected source expression")
    if plan.where is not None:
        # the scheduler wrote the predicate in the canonical form safe_predicate produces
        try:
            rebuilt = safe_predicate(plan.where, None)
        except BadInputError as e:
            raise ValueError(str(e)) from None
        if rebuilt != plan.where:
            raise ValueError("the where predicate is not in the form the scheduler writes")


class ChangeBatch(_Strict):
    """One table's changes of one binlog window (cdc mode), staged as a file by the reader: its name
    is deterministic from the table and the window's start and end positions."""

    start: str = Field(pattern=r"^\d{10}:\d{12}:\d{6}$")  # source.binlog.Position.key of the window start
    end: str = Field(pattern=r"^\d{10}:\d{12}:\d{6}$")
    path: str = Field(pattern=r"^[A-Za-z0-9_/-]{1,400}$")  # stage path, below the stage
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    rows: int = Field(ge=0)
    # a table with one integer key: the batch's smallest and largest key, which its MERGE is bounded by
    # (``target/snowflake/cdc_sql.merge_changes``); None: not bounded (another key, or a batch written earlier)
    key_low: int | None = None
    key_high: int | None = None

    def key_range(self) -> tuple[int, int] | None:
        return (self.key_low, self.key_high) if self.key_low is not None and self.key_high is not None else None


class _ChunkAddress(_Strict):
    """Which unit of which run a message is about: the fields a reference and a full message share."""

    # plan: the run's tables from ``chunk_id`` (their position in the run's list) on are planned by a
    # worker, the scheduler having stopped inside its budget (``pipeline/scheduler.continue_planning``)
    kind: Literal["chunk", "finalise", "plan"] = "chunk"
    run_id: str
    chunk_id: int = Field(ge=0)
    chunk_count: int = Field(ge=0)
    window_from: str | None = None
    window_to: str | None = None
    # 0 for the run's first copy of a chunk; n for the n-th re-copy asked for by validation
    round: int = Field(default=0, ge=0, le=100)
    # cdc mode: the staged batch of changes this chunk applies
    batch: ChangeBatch | None = None

    @field_validator("run_id")
    @classmethod
    def _valid_run_id(cls, v: str) -> str:
        if not RUN_ID_PATTERN.match(v):
            raise ValueError("run_id must be 1-64 letters, digits, '-' or '_'")
        return v

    def _check_chunk_id(self) -> None:
        if self.kind == "chunk" and self.chunk_id >= max(self.chunk_count, 1):
            raise ValueError(f"chunk_id {self.chunk_id} is not below chunk_count {self.chunk_count}")


class ChunkRef(_ChunkAddress):
    """What an SQS message carries: a reference to a chunk (or a table's finalise step) of a run. The
    table's plan is stored once per run and table (its ``RUN#<run>``/``TABLE#<table>`` item) and the
    chunk's key range in its bounds page; the worker reads both (``pipeline/worker.py`` ``hydrate``), so
    a message stays a few hundred bytes however wide the table or its key, far below SQS's 256 KiB for
    one message and for a batch of ten."""

    table: str

    @model_validator(mode="after")
    def _consistent(self) -> ChunkRef:
        validate_identifier(self.table)
        self._check_chunk_id()
        return self

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.table}:{self.kind}:{self.chunk_id}:{self.round}"

    def resolve(self, plan: TablePlan | dict[str, object], bounds: tuple[object, object] | None) -> ChunkMessage:
        """The full message: this reference with the run's plan of the table and the chunk's range."""
        lower, upper = bounds if bounds is not None else (None, None)
        fields = self.model_dump(mode="json", exclude={"table"}, exclude_none=True)
        plan_data = plan.model_dump(mode="json") if isinstance(plan, TablePlan) else plan
        return ChunkMessage.model_validate({**fields, "plan": plan_data, "lower": lower, "upper": upper})


class ChunkMessage(_ChunkAddress):
    """A chunk to copy, or the finalise step of a table (``kind``), with its plan and key range: what
    the worker works on. On the queue it travels as its ``ChunkRef`` (``body``)."""

    plan: TablePlan
    lower: list[KeyValue] | None = None
    upper: list[KeyValue] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChunkMessage:
        names = [c.name for c in self.plan.columns]
        for n in [self.plan.table, *names]:
            validate_identifier(n)
        _check_generated_sql(self.plan)
        for k in self.plan.key:
            if k not in names:
                raise ValueError(f"key column {k!r} is not among the table's columns")
        nkey = len(self.plan.key)
        for label, bound in (("lower", self.lower), ("upper", self.upper)):
            if bound is not None and len(bound) != nkey:
                raise ValueError(f"{label} bound has {len(bound)} values but the key has {nkey} columns")
        for i, k in enumerate(self.plan.key):
            # a binary key's bound is hex, compared through UNHEX(): text that is not hex would be NULL
            # there and select no row; a float key's is a number's text, which MySQL would otherwise
            # read as 0 with a warning: both are refused here
            kind = self.plan.column(k).kind
            for label, bound in (("lower", self.lower), ("upper", self.upper)):
                if bound is None:
                    continue
                if kind == typemap.BINARY and not HEX_VALUE.match(bound[i]):
                    raise ValueError(f"{label} bound of binary key column {k!r} is not hexadecimal")
                if kind == typemap.FLOAT and not _is_finite_number(bound[i]):
                    raise ValueError(f"{label} bound of floating-point key column {k!r} is not a finite number")
        if (self.lower is not None or self.upper is not None) and not nkey:
            raise ValueError("a table without a key is copied as one chunk without bounds")
        self._check_chunk_id()
        rules = MODE_RULES[self.plan.mode]
        if (rules.needs_key and not self.plan.key) or (rules.needs_watermark and not self.plan.watermark):
            needs = "a key and a watermark column" if rules.needs_watermark else "a key"
            raise ValueError(f"{self.plan.mode} mode needs {needs}")
        if (self.batch is not None) != (rules.applies_batches and self.kind == "chunk"):
            batched = " or ".join(m for m, r in MODE_RULES.items() if r.applies_batches)
            raise ValueError(f"a batch of changes is what a {batched} chunk applies, and only a {batched} chunk")
        return self

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.plan.table}:{self.kind}:{self.chunk_id}:{self.round}"

    @property
    def table(self) -> str:
        return self.plan.table

    def ref(self) -> ChunkRef:
        shared = {name: getattr(self, name) for name in _ChunkAddress.model_fields}
        return ChunkRef(table=self.plan.table, **shared)

    def body(self) -> str:
        """The SQS message body: the reference, without the plan and the key range."""
        return self.ref().model_dump_json(exclude_none=True)


def parse_chunk_message(body: str | dict[str, Any]) -> ChunkMessage | ChunkRef:
    """A message body: a reference to a chunk (``ChunkRef``, what the pipeline sends), or a whole
    message with its plan (``ChunkMessage``: the sample events, and messages of earlier versions)."""
    data = load_json(body, "chunk message") if isinstance(body, str) else body
    shape: type[ChunkMessage] | type[ChunkRef] = ChunkMessage if isinstance(data, dict) and "plan" in data else ChunkRef
    try:
        return shape.model_validate(data)
    except ValidationError as e:
        raise BadInputError(describe_validation_error("chunk message", e, shape.model_fields)) from None
