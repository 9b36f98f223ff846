"""Settings from environment variables, validated once at cold start."""

from __future__ import annotations

import os
import re
import types
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aurora_replication.errors import BadInputError
from aurora_replication.models import describe_validation_error


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    state_table: str = Field(alias="STATE_TABLE", min_length=1)
    chunk_queue_url: str = Field(alias="CHUNK_QUEUE_URL", min_length=1)
    dlq_url: str = Field(default="", alias="DLQ_URL")
    source_secret_arn: str = Field(alias="SOURCE_SECRET_ARN", min_length=1)
    target_secret_arn: str = Field(alias="TARGET_SECRET_ARN", min_length=1)
    # where the source secret has no host, port or dbname (an RDS-managed secret): see secrets.py
    source_host: str = Field(default="", alias="SOURCE_HOST")
    source_port: str = Field(default="", alias="SOURCE_PORT", pattern=r"^[0-9]{0,5}$")
    source_dbname: str = Field(default="", alias="SOURCE_DBNAME")
    default_mode: Literal["full", "incremental", "auto"] = Field(default="auto", alias="DEFAULT_MODE")
    default_chunk_rows: int = Field(default=100_000, alias="DEFAULT_CHUNK_ROWS", ge=1, le=10_000_000)
    # rows per chunk when a request gives none: about this many MB of table data per chunk, from
    # the table's average row length (0: always DEFAULT_CHUNK_ROWS, which is also the fallback)
    chunk_target_mb: int = Field(default=64, alias="CHUNK_TARGET_MB", ge=0, le=4096)
    # the most rows (InnoDB's estimate) of a table one statement may read whole: a table without a
    # usable key (copied as one chunk) above it is refused, and so is an explicitly named watermark
    # column that no index starts with (the scheduler's MAX of it would scan the table)
    full_scan_max_rows: int = Field(default=5_000_000, alias="FULL_SCAN_MAX_ROWS", ge=0)
    small_chunk_rows: int = Field(default=200, alias="SMALL_CHUNK_ROWS", ge=0, le=100_000)
    # a full copy of at most this many validated rows publishes with one synchronous statement (its work is
    # bounded by these rows, far inside SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS); above it, asynchronously and
    # polled (target/long_statements.py). 0: always asynchronously
    sync_commit_max_rows: int = Field(default=1_000, alias="SYNC_COMMIT_MAX_ROWS", ge=0, le=100_000)
    stage_name: str = Field(default="AURORA_REPLICATION_STAGE", alias="STAGE_NAME", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    identifier_case: Literal["upper", "preserve"] = Field(default="upper", alias="TARGET_IDENTIFIER_CASE")
    zero_date_policy: Literal["null", "fail"] = Field(default="null", alias="ZERO_DATE_POLICY")
    watermark_overlap_seconds: int = Field(default=300, alias="WATERMARK_OVERLAP_SECONDS", ge=0)
    # renewed as the run makes progress (each chunk done, each finalise), so it bounds the time a run may
    # go without progress: longer than a crashed invocation's message waits (the queue's 5400 s visibility
    # timeout) and than STALL_SECONDS (a stalled run is resumed once before it loses its table); at least
    # the worker's 900 s timeout: a finaliser renews it before it publishes, which must cover the invocation
    lease_seconds: int = Field(default=7200, alias="LEASE_SECONDS", ge=1)
    # the worker's Lambda timeout (the template's WorkerTimeout): the limits on either side of it are checked
    # against it at cold start (LEASE_SECONDS above it, SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS below it)
    worker_timeout_seconds: int = Field(default=900, alias="WORKER_TIMEOUT_SECONDS", ge=1, le=900)
    min_interval_seconds: int = Field(default=0, alias="MIN_INTERVAL_SECONDS", ge=0)
    secret_max_age_seconds: int = Field(default=300, alias="SECRET_MAX_AGE_SECONDS", ge=0)
    idempotency_enabled: bool = Field(default=True, alias="IDEMPOTENCY_ENABLED")
    work_dir: str = Field(default="/tmp", alias="WORK_DIR")
    retry_attempts: int = Field(default=4, alias="RETRY_ATTEMPTS", ge=1, le=20)
    retry_base_seconds: float = Field(default=0.5, alias="RETRY_BASE_SECONDS", gt=0, le=60)
    retry_max_seconds: float = Field(default=20.0, alias="RETRY_MAX_SECONDS", gt=0, le=900)
    # worker: MySQL sends a plain SELECT of the chunk's columns to the C client (source/bulk.py) and the
    # worker makes each line and checksum term from the values (pipeline/rowcodec.py): the least work for
    # MySQL; server: MySQL formats each row as one staging-file line with its checksum term; python: the
    # worker encodes each value from pymysql and MySQL checksums the chunk in a second query (used anyway
    # for Python transforms, and for ZERO_DATE_POLICY=fail and rows over max_allowed_packet on server)
    extract_format: Literal["worker", "server", "python"] = Field(default="worker", alias="EXTRACT_FORMAT")
    # a large chunk is read in this many parts at once, each on its own MySQL connection and, past
    # the first, in a helper process of the worker's (pipeline/extract_parts.py): MySQL formats a
    # query's rows on one thread. 1: one query per chunk. About the worker's vCPUs (memory / 1,769 MB)
    extract_processes: int = Field(default=1, alias="EXTRACT_PROCESSES", ge=1, le=16)
    # no part of fewer rows than this (by MySQL's estimate): a smaller one is not worth its process and file
    extract_part_min_rows: int = Field(default=20_000, alias="EXTRACT_PART_MIN_ROWS", ge=1, le=10_000_000)
    # the chunk queue's maxReceiveCount (the template sets both): a chunk that fails its last receive
    # goes to the DLQ, and its table is reported failed until a redrive copies it
    max_receive_count: int = Field(default=5, alias="MAX_RECEIVE_COUNT", ge=1, le=1000)
    # a failed chunk comes back after this many seconds, doubling per receive up to the maximum
    # (pipeline/redelivery.py); 0: at once
    redelivery_base_seconds: int = Field(default=30, alias="REDELIVERY_BASE_SECONDS", ge=0, le=43200)
    redelivery_max_seconds: int = Field(default=900, alias="REDELIVERY_MAX_SECONDS", ge=0, le=43200)
    # Snowflake's time limits (docs/scale.md). A synchronous statement (a chunk's COPY and checksum, the
    # finaliser's small statements) runs at most this long: the session's STATEMENT_TIMEOUT_IN_SECONDS,
    # and the connector's network_timeout; keep it below the worker's timeout, so that a statement that
    # runs out of time fails inside the invocation, with its reason, instead of the invocation being killed
    snowflake_statement_timeout_seconds: int = Field(
        default=600, alias="SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS", ge=1, le=604800
    )
    # a statement that grows with the table (a full run's publish, a MERGE and its check, reconcile's
    # delete) runs asynchronously (``execute_async``), polled across invocations, for at most this long
    snowflake_async_timeout_seconds: int = Field(
        default=86400, alias="SNOWFLAKE_ASYNC_TIMEOUT_SECONDS", ge=1, le=604800
    )
    # how long a finaliser waits for such a statement in its own invocation (never past its deadline less
    # DEADLINE_MARGIN_SECONDS) before it hands the wait to a delayed finalise message (SQS DelaySeconds: as
    # long as the statement has run so far, from 1 s up to ASYNC_POLL_SECONDS, at most 900), and so on
    # until the statement ends
    async_inline_wait_seconds: float = Field(default=30.0, alias="ASYNC_INLINE_WAIT_SECONDS", ge=0, le=900)
    async_poll_seconds: int = Field(default=60, alias="ASYNC_POLL_SECONDS", ge=0, le=900)
    # an invocation starts no step it may not finish this close to its deadline (the Lambda context's
    # remaining time): the scheduler stops planning, a finaliser stops waiting
    deadline_margin_seconds: float = Field(default=30.0, alias="DEADLINE_MARGIN_SECONDS", ge=0, le=600)
    # validation that heals: how many rounds of re-copying the chunks whose ranges differ
    heal_attempts: int = Field(default=2, alias="HEAL_ATTEMPTS", ge=0, le=10)
    # a running table with no chunk done for this long is reported as stalled (2 x the worker timeout)
    stall_seconds: int = Field(default=1800, alias="STALL_SECONDS", ge=1)
    # how long a run's ledger items (run, tables, chunks, bounds, attempts) stay in the state table
    # (DynamoDB TTL); longer than a run's lease, so that a run in progress never loses its ledger
    run_retention_days: int = Field(default=30, alias="RUN_RETENTION_DAYS", ge=1, le=3650)
    # the rolling audit (pipeline/audit.py): each incremental run re-reads a slice of the table's key
    # space in full and merges it, so that the whole table is re-verified within this period (0: off);
    # a slice is taken once it holds AUDIT_MIN_ROWS rows' worth of the period (or the period has
    # passed), and holds at most AUDIT_MAX_ROWS rows per table and run
    audit_period_seconds: int = Field(default=86400, alias="AUDIT_PERIOD_SECONDS", ge=0)
    audit_min_rows: int = Field(default=10_000, alias="AUDIT_MIN_ROWS", ge=1, le=100_000_000)
    audit_max_rows: int = Field(default=1_000_000, alias="AUDIT_MAX_ROWS", ge=1, le=1_000_000_000)
    # reconcile mode: delete the rows MySQL no longer has, or mark them (a _ASR_DELETED_AT column)
    reconcile_action: Literal["delete", "mark"] = Field(default="delete", alias="RECONCILE_ACTION")
    # change data capture (cdc mode): one binlog window per run, bounded in time and bytes; the server
    # id the reader presents to MySQL (unique among the server's replicas); rows per staged batch
    cdc_max_seconds: float = Field(default=120.0, alias="CDC_MAX_SECONDS", gt=0, le=840)
    cdc_max_bytes: int = Field(default=64 * 1024 * 1024, alias="CDC_MAX_BYTES", ge=1024)
    cdc_batch_rows: int = Field(default=100_000, alias="CDC_BATCH_ROWS", ge=1, le=10_000_000)
    # a column version (a type change that is not a lossless widening, docs/cdc.md#schema-changes) is
    # filled from MySQL in key-ordered pages of CDC_FILL_PAGE_ROWS, at most CDC_FILL_ROWS rows or
    # CDC_FILL_SECONDS per window; the rest in later windows, from a cursor in the table's cdc state
    cdc_fill_page_rows: int = Field(default=50_000, alias="CDC_FILL_PAGE_ROWS", ge=1, le=10_000_000)
    cdc_fill_rows: int = Field(default=1_000_000, alias="CDC_FILL_ROWS", ge=1, le=1_000_000_000)
    cdc_fill_seconds: float = Field(default=60.0, alias="CDC_FILL_SECONDS", gt=0, le=600)
    cdc_server_id: int = Field(default=4_236_001, alias="CDC_SERVER_ID", ge=1, le=4_294_967_295)
    # a window decoded by up to CDC_DECODE_PROCESSES processes (source/binlog_parallel.py): transaction-aligned
    # segments of at least CDC_DECODE_MIN_BYTES, segment k read as server id CDC_SERVER_ID + k; 1: one reader.
    # Worth it only with more than one vCPU (SchedulerMemorySize above 3,538 MB gives two), docs/cdc.md
    cdc_decode_processes: int = Field(default=1, alias="CDC_DECODE_PROCESSES", ge=1, le=6)
    cdc_decode_min_bytes: int = Field(default=8 * 1024 * 1024, alias="CDC_DECODE_MIN_BYTES", ge=1)
    # a cdc request with follow_seconds (pipeline/modes/cdc/follow.py): the time a window's apply is given before
    # the invocation ends (a next window starts only with CDC_MAX_SECONDS plus this left), and the pause
    # between two looks at a binlog that has not moved
    cdc_follow_apply_seconds: float = Field(default=30.0, alias="CDC_FOLLOW_APPLY_SECONDS", ge=0, le=840)
    cdc_follow_pause_seconds: float = Field(default=2.0, alias="CDC_FOLLOW_PAUSE_SECONDS", gt=0, le=60)
    # health: warn when a stored position is this close (fraction of the retention) to being purged
    cdc_retention_warn_fraction: float = Field(default=0.25, alias="CDC_RETENTION_WARN_FRACTION", ge=0, le=1)
    table_options_file: str | None = Field(default=None, alias="TABLE_OPTIONS_FILE")
    # comma-separated tables replicated in history mode (type-2: every version kept), as if their
    # table_options said "history": true (docs/run-requests.md#history-mode)
    history_tables: str = Field(default="", alias="HISTORY_TABLES", pattern=r"^[A-Za-z0-9_$, -]*$")
    # comma-separated tables whose columns dropped in MySQL are dropped from the target too, as if their
    # table_options said "on_column_drop": "drop" (docs/run-requests.md#columns-dropped-in-mysql)
    column_drop_tables: str = Field(default="", alias="COLUMN_DROP_TABLES", pattern=r"^[A-Za-z0-9_$, -]*$")
    # comma-separated modules whose @register(...) Python transforms the scheduler checks and the worker runs
    transform_modules: str = Field(default="", alias="TRANSFORM_MODULES")
    # CAs MySQL TLS trusts: a PEM file, `system`, or empty for the RDS bundle packaged in the layer
    mysql_ca_bundle: str = Field(default="", alias="MYSQL_CA_BUNDLE")
    # the prices the cost estimate uses (docs/cost.md): list prices of us-east-1 as defaults; set your
    # region's and your contract's. Lambda per GB-second (x86; arm64 is about 20% less) and per million
    # requests, SQS per million requests (standard queue), DynamoDB on-demand per million read and write
    # request units, Snowflake per credit, and the warehouse size (its credits per hour)
    price_lambda_gb_second: float = Field(default=0.0000166667, alias="PRICE_LAMBDA_GB_SECOND", ge=0)
    price_lambda_million_requests: float = Field(default=0.20, alias="PRICE_LAMBDA_MILLION_REQUESTS", ge=0)
    price_sqs_million_requests: float = Field(default=0.40, alias="PRICE_SQS_MILLION_REQUESTS", ge=0)
    price_dynamodb_million_reads: float = Field(default=0.125, alias="PRICE_DYNAMODB_MILLION_READ_UNITS", ge=0)
    price_dynamodb_million_writes: float = Field(default=0.625, alias="PRICE_DYNAMODB_MILLION_WRITE_UNITS", ge=0)
    price_snowflake_credit: float = Field(default=3.00, alias="PRICE_SNOWFLAKE_CREDIT", ge=0)
    snowflake_warehouse_size: Literal[
        "XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "XXLARGE", "XXXLARGE", "X4LARGE", "X5LARGE", "X6LARGE"
    ] = Field(default="XSMALL", alias="SNOWFLAKE_WAREHOUSE_SIZE")

    @model_validator(mode="after")
    def _limits_around_the_worker_timeout(self) -> Settings:
        if self.lease_seconds < self.worker_timeout_seconds:
            raise ValueError(
                f"LEASE_SECONDS={self.lease_seconds} is shorter than the worker's timeout (WORKER_TIMEOUT_SECONDS="
                f"{self.worker_timeout_seconds}): a finaliser's renewal must cover its whole invocation; raise it"
            )
        if self.snowflake_statement_timeout_seconds >= self.worker_timeout_seconds:
            raise ValueError(
                f"SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS={self.snowflake_statement_timeout_seconds} is not below the "
                f"worker's timeout (WORKER_TIMEOUT_SECONDS={self.worker_timeout_seconds}): a statement out of time "
                "would be killed with its invocation instead of failing with its reason; lower it"
            )
        return self

    @model_validator(mode="after")
    def _retention_outlasts_lease(self) -> Settings:
        if self.run_retention_days * 86400 <= self.lease_seconds:
            raise ValueError(
                f"RUN_RETENTION_DAYS={self.run_retention_days} would let a run's ledger expire before its lease "
                f"(LEASE_SECONDS={self.lease_seconds}) does; keep the retention longer than the lease"
            )
        return self

    @property
    def run_retention_seconds(self) -> int:
        return self.run_retention_days * 86400

    @property
    def source_fallback(self) -> dict[str, str]:
        """``MySQLSettings.from_secret``'s fallback: the source connection fields set here."""
        return {"host": self.source_host, "port": self.source_port, "dbname": self.source_dbname}


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return settings_from(dict(os.environ))


def settings_from(env: Mapping[str, str]) -> Settings:
    return parse_environment(Settings, env)


_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _scalar(annotation: Any) -> Any:
    """``int`` of ``int``, ``int | None`` and ``Optional[int]``; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def environment_value(name: str, raw: str, annotation: Any) -> Any:
    """One variable's text as its field's type, strictly: ``true``/``false`` for a boolean (any case;
    not ``yes``, ``1`` or ``on``), digits for an integer (not ``1.5``, ``1e3`` or `` 5``), a decimal
    number for a float. Anything else is refused with the variable, its value and the fix."""
    kind = _scalar(annotation)
    if kind is bool:
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise BadInputError(f"environment variable {name}={raw!r} is not a boolean; set it to true or false")
    if kind is int:
        if _INTEGER.fullmatch(raw):
            return int(raw)
        raise BadInputError(f"environment variable {name}={raw!r} is not a whole number; set it to digits only")
    if kind is float:
        if _NUMBER.fullmatch(raw):
            return float(raw)
        raise BadInputError(f"environment variable {name}={raw!r} is not a number; set it to a decimal such as 0.5")
    return raw


def parse_environment[M: BaseModel](model: type[M], env: Mapping[str, str]) -> M:
    """The model's fields from environment variables (their aliases). Every value there is text, so
    each is parsed here by its field's type (``environment_value``), then the model is validated
    strictly: pydantic's lax mode would take ``yes`` for true and ``1.0`` for 1. A value that is not
    text (a test's) is validated as it is."""
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        if alias in env:
            raw = env[alias]
            values[alias] = environment_value(alias, raw, field.annotation) if isinstance(raw, str) else raw
    try:
        return model.model_validate(values, strict=True)
    except ValidationError as e:
        raise BadInputError(describe_validation_error("environment", e)) from None
