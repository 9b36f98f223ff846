"""The warehouse interface: what the pipeline asks of the place it copies into.

``Warehouse`` is the protocol the sync modes, the chunk job, the finaliser, validation and cdc type
against; ``services.Services.warehouse`` builds the one in use on its warm connection. Snowflake's
implementation is ``target/snowflake/client.Target``, with its SQL, type forms, staging, tagging,
evolution and asynchronous statements beside it in ``target/snowflake/``. A second warehouse would be
a folder beside that one implementing this protocol (``tests/unit/test_warehouse_contract.py`` holds
Snowflake's to it; docs/code-map.md, "add a warehouse"). Names and shapes follow the project's
conventions, not Snowflake's: load tables are per run and table, every loaded row carries its chunk and
attempt ids, and ``Attempts`` is the warehouse's own handle on the (chunk, attempt) pairs a finaliser
validated, given back to it unread.

Nothing outside the warehouse's folder imports from it (``tests/unit/test_architecture.py``): what the
pipeline needs of its SQL, its type comparison or its session is a method here (schema evolution's diff
and statements, the target's shape, the condition on a plan's own rows, the schemas, the session check,
the long statements) or, for ``pipeline/diagnose.py``'s queries, ``Diagnosis``. A statement a method
returns as text (``alter_statements``, ``rename_statement``, ``validated``, ``Diagnosis``'s queries) is
given back to the same warehouse to run, never read. The types of the long statements (``Pending``,
``StatementRecord``...) are declared here, the runner that records them in the ledger in the folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from aurora_replication.models import Column, TablePlan
from aurora_replication.schema_changes import SchemaChange


class HistoryBroken(RuntimeError):
    """A history table does not keep its rules (``Warehouse.check_history``), or is not a history table."""


@dataclass(frozen=True)
class Attempts:
    """One finaliser's validated (chunk, attempt) pairs, as every statement that reads the load table
    selects them: ``source`` is a relation of (token, chunk, attempt) rows, either the run's attempts
    table (``table``) or the pairs themselves, bound; ``params`` are what the warehouse binds, in order."""

    source: str
    params: tuple[Any, ...]
    table: str | None = None  # the attempts table the pairs were written to (None: bound inline)


# statements that grow with the table, run asynchronously and recorded in the run's ledger (the finaliser's
# ``Warehouse.record_long_statements``; Snowflake's runner: ``target/snowflake/long_statements.py``)


class Pending(Exception):  # noqa: N818 - not an error: the statement goes on, and is polled later
    """The statement ``name`` still runs in the warehouse; the finaliser comes back for it later."""

    def __init__(self, name: str, query_id: str, started_at: float) -> None:
        super().__init__(f"the {name} statement (query {query_id}) is still running")
        self.name = name
        self.query_id = query_id
        self.started_at = started_at


class StatementTimedOut(RuntimeError):
    """A long statement reached its time limit and the warehouse cancelled it."""


class StatementInterrupted(RuntimeError):
    """A long statement was cancelled or aborted more often than it is started again."""


class StatementLedger(Protocol):
    """Where a table's long statements are recorded: one text value per statement name."""

    def read(self, name: str) -> str | None: ...

    def swap(self, name: str, new: str, old: str | None) -> bool:
        """Write ``new`` only while the value is ``old`` (None: absent); whether it was written."""
        ...


@dataclass
class StatementRecord:
    """One long statement of one finaliser round: its query (None: to be started), when it started, how
    often it was started again, and its rows once it ended."""

    round: int
    query_id: str | None
    started_at: float
    restarts: int = 0
    rows: list[list[Any]] | None = None
    ended_at: float | None = None  # when a finaliser first saw it ended (its rows read)

    def text(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=_plain)

    @classmethod
    def parse(cls, text: str | None) -> StatementRecord | None:
        if not text:
            return None
        return cls(**json.loads(text))


def _plain(value: Any) -> str:
    """Rows' values that JSON has no type for (Snowflake's NUMBER comes back as Decimal) as text."""
    return str(value) if isinstance(value, Decimal) else repr(value)


class Diagnosis(Protocol):
    """The warehouse's side of naming a mismatch (``pipeline/diagnose.py``): its own queries of a table's rows by
    key-MD5 bucket, each as text with ``%s`` placeholders (bind ``where``'s params first, then the query's own),
    run by ``query``. The canonical texts and hashes equal MySQL's for equal values (``checksums.py``)."""

    def chunk_filter(self) -> str:
        """A load table's rows of one chunk (param: the chunk id)."""
        ...

    def attempt_filter(self) -> str:
        """A load table's rows of one attempt (param: the attempt id)."""
        ...

    def key_range(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[str, list[object]]:
        """``lower < key <= upper`` on the target's key columns (only for ``Warehouse.order_safe`` plans)."""
        ...

    def bucket_checksums_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, depth: int, parents: int
    ) -> str: ...

    def row_hashes_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, depth: int, buckets: int
    ) -> str: ...

    def canonical_values_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, nkeys: int
    ) -> str: ...

    def json_values_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str
    ) -> str:
        """Key MD5, the key's values and each JSON column as JSON text, in key-MD5 order (read with the
        warehouse's connection's cursor: it streams)."""
        ...

    def query(self, statement: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]: ...


@runtime_checkable
class Warehouse(Protocol):
    """The target warehouse of one unit of work, on one connection."""

    conn: Any  # the driver's connection (its own statements: diagnose, the operator's checks)
    long: Any  # the finaliser's runner of statements that grow with the table, or None (synchronous)

    def run_long(self, name: str, statement: str, params: Sequence[object] = (), rows: bool = True) -> list[list[Any]]:
        """A statement that grows with the table: asynchronous and recorded under ``name`` when the finaliser set
        ``long`` (``Pending`` while it runs on), else synchronous. ``rows=False``: its answer is not
        used (nor read, when it ran asynchronously)."""
        ...

    def ensure_stage(self) -> None: ...

    def ensure_load_table(self, plan: TablePlan, run_id: str) -> str: ...

    def ensure_target_table(self, plan: TablePlan) -> None: ...

    def put(self, local_path: str, path: str) -> None:
        """PUT a local file, or every file a wildcard (``*``) in its name matches, to the stage path: the connector
        expands the wildcard and uploads the files in parallel (PUT's ``PARALLEL``)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """``BEGIN`` ... ``COMMIT`` around the block; ``ROLLBACK`` when it raises. DML only: a DDL statement inside
        commits the transaction (Snowflake runs each DDL as its own transaction)."""
        ...

    def load_file(self, plan: TablePlan, load_table: str, path: str, files: Sequence[str]) -> None:
        """COPY one attempt's staged files (one, or one per part of a chunk read in parts) into the load table in
        one statement (their rows carry the chunk and attempt ids). Nothing is deleted: earlier attempts stay,
        unread, since readers pick attempts by id. The load table is made first where this container has not made it
        yet."""
        ...

    def load_rows(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str, rows: list[list[Any]]) -> None:
        """The small-chunk path: multi-row INSERTs of bound values, tagged with the chunk and attempt, into the
        run's load table of the table. Where this container has not made the load table yet, the first statement
        creates it with the first rows in it (``CREATE TABLE ... AS SELECT``: one statement and round trip instead
        of two, for every small table); if it exists already (another chunk, an earlier attempt, another container)
        the rows are inserted into it. An attempt interrupted half way leaves rows no ledger entry names."""
        ...

    def record_attempts(self, plan: TablePlan, run_id: str, token: str, pairs: Sequence[tuple[int, str]]) -> Attempts:
        """The (chunk, attempt) pairs of one finaliser's view of the ledger, under ``token``, as every later read of
        the load table selects them: up to ``sql.INLINE_ATTEMPTS`` pairs are bound into those statements (no
        statement here); more are written to the run's attempts table."""
        ...

    def attempt_sums(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str) -> dict[str, Any]:
        """Count and checksum, computed by Snowflake, of the rows one attempt of one chunk loaded (read right after
        it loaded: the ledger entry records them with the attempt, and validation compares them with the chunk's
        snapshot). JSON columns count as the text the load table holds, as in the snapshot's checksum; where the
        plan has any, a second checksum leaves them out (``target_checksum_no_json``: what a MERGE's check compares
        the target's VARIANT rows with). Snowflake prunes the load table's micro-partitions to the attempt's own
        (each COPY or INSERT writes new ones): the scan is the chunk's, whatever the table's size."""
        ...

    def checksums_of_attempts(
        self, plan: TablePlan, load_table: str, attempts: Attempts, json_text: bool = True
    ) -> dict[int, tuple[int, str]]:
        """Count and checksum of each chunk's validated attempt in the load table, in one scan. JSON columns count
        as the text the load table holds (``json_text``), as in the chunk's source checksum; ``json_text=False``
        leaves them out, to compare with a target's VARIANT rows."""
        ...

    def merge_validated(self, plan: TablePlan, load_table: str, attempts: Attempts) -> None:
        """MERGE the validated attempts into the target: a long statement (it grows with the window)."""
        ...

    def merged_checksum(self, plan: TablePlan, load_table: str, attempts: Attempts) -> tuple[int, str]:
        """Count and checksum of the target's rows whose key the validated attempts carry (a long statement: it
        joins the target with the window's keys)."""
        ...

    def row_count(self, table: str) -> int: ...

    def table_rows(self, plan: TablePlan) -> int:
        """How many rows of the plan's the target holds: the whole table's, or a merged table's rows of the plan's
        database (``database_mapping: merge``)."""
        ...

    def database_row_counts(self, tables: Sequence[str], database: str) -> dict[str, int]:
        """Each (existing) merged table's rows of ``database`` (the whole-target check of a merged run)."""
        ...

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` exist in the session's schema (one query per hundred names)."""
        ...

    def row_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Each (existing) table's row count, a hundred tables per statement."""
        ...

    def audit_differences(
        self, plan: TablePlan, load_table: str, attempts: Attempts, first_chunk: int, watermark_bound: str | None
    ) -> int:
        """How many audited rows (chunks from ``first_chunk`` on, watermark at or below ``watermark_bound``) the
        target does not hold as they are (``sql.audit_differences``)."""
        ...

    def publish(self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int) -> None:
        """Recreate the target (``CREATE OR REPLACE ... COPY GRANTS``): only when ``overwrite`` cannot do. A DDL
        statement cannot be rolled back, so the rows go to a copy first, which is counted: the target is recreated
        only from ``expected_rows`` rows (``RowCountMismatch`` otherwise). Both copies are long statements; the copy
        is named by the finaliser's round, so that a finaliser that comes back for them finds it."""
        ...

    def overwrite(self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int) -> None:
        """Replace the target's rows with the validated attempts (``INSERT OVERWRITE``, one statement that is its
        own transaction: a failure leaves the old contents whole; the table object and everything attached to it
        stay), as a long statement. The statement fails unless the load table holds exactly ``expected_rows``
        validated rows (``sql.guard_rows``): ``RowCountMismatch``."""
        ...

    def replace_database_rows(
        self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int, dropped: Sequence[str] = ()
    ) -> None:
        """A merged table's full copy of one database: its rows become the validated attempts and no other
        database's row is touched, in one statement (a long one); ``dropped`` columns set NULL in its updated rows.
        It fails unless the load table holds exactly ``expected_rows`` validated rows: ``RowCountMismatch``."""
        ...

    def drop(self, table: str) -> None: ...

    def exists(self, table: str) -> bool: ...

    def checksum(
        self,
        plan: TablePlan,
        table: str,
        load_table: bool = False,
        where: str = "",
        params: Sequence[object] = (),
        json_text: bool = False,
    ) -> tuple[int, str]:
        """``json_text``: include JSON columns (only where ``table`` holds them as text: a load table)."""
        ...

    def columns(self, table: str) -> list[tuple[Any, ...]]:
        """The target table's columns, ``(name, data_type, precision, scale)``; empty if it does not exist."""
        ...

    def alter(self, statements: Sequence[str]) -> None:
        """Schema evolution: the statements of ``alter_statements`` (or ``rename_statement``,
        ``add_version_statement``), in order."""
        ...

    def close(self) -> None: ...

    def range_checksum(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[int, str]: ...

    def reconcile(self, plan: TablePlan, keys_table: str, attempts: Attempts, action: str, expected_keys: int) -> int:
        """Delete (or mark) the target's rows whose key is not among the validated keys read from MySQL; returns how
        many rows were deleted or newly marked. Only while the keys table holds ``expected_keys`` validated keys (a
        guard in the statement): otherwise ``RowCountMismatch``."""
        ...

    def keys_missing(self, plan: TablePlan, keys_table: str, attempts: Attempts) -> int: ...

    def load_changes(
        self, plan: TablePlan, load_table: str, chunk_id: int, path: str, file: str, audit: bool = False
    ) -> int:
        """COPY a staged batch of changes into the run's load table (a repeat loads nothing more); returns how many
        distinct changes of the batch the load table holds (``audit``: distinct keys, the rolling audit's rows
        sharing one position)."""
        ...

    def audit_changes(self, plan: TablePlan, load_table: str, chunk_id: int, action: str) -> int:
        """How many rows of a cdc table's audit batch (``chunk_id``) the target does not hold as they are."""
        ...

    def prepare_changes(self, plan: TablePlan, action: str) -> None:
        """The target's hidden columns (``_ASR_POS``; ``_ASR_DELETED_AT`` when deletes are marked) and, when deletes
        delete, the tombstone table."""
        ...

    def merge_tombstones(self, plan: TablePlan, load_table: str, chunk_id: int) -> None: ...

    def merge_changes(
        self, plan: TablePlan, load_table: str, chunk_id: int, action: str, key_range: tuple[int, int] | None = None
    ) -> None:
        """MERGE a cdc batch; ``key_range``: the batch's smallest and largest key (a table with one integer
        key), which the statement may use to read only that part of a large target."""
        ...

    def truncate_before(self, plan: TablePlan, action: str, position: str) -> None:
        """Empty the target as a ``TRUNCATE`` at ``position`` did (``cdc_sql.truncate_before``)."""
        ...

    def null_rows(self, plan: TablePlan, column: str, action: str) -> int:
        """How many live rows hold NULL in the target column ``column`` (a NOT NULL added in MySQL)."""
        ...

    def fill_version(self, plan: TablePlan, load_table: str, chunk_id: int, column: Column) -> None:
        """A column version's page (``plan``: the key columns and ``column``, loaded in ``load_table``) written
        into the target's rows by key (``cdc_sql.fill_version``)."""
        ...

    def prune_tombstones(self, plan: TablePlan, older_than_seconds: int) -> None: ...

    def ensure_history_table(self, plan: TablePlan) -> list[tuple[Any, ...]]:
        """The history table (created when missing), checked to be one; returns its columns. A plain target of the
        same name (copied before history mode was chosen) is refused: its rows carry no versions."""
        ...

    def history_view(self, plan: TablePlan) -> None:
        """The current-state view, made again (its columns follow the table's)."""
        ...

    def history_cdc_merge(self, plan: TablePlan, load_table: str, chunk_id: int) -> None: ...

    def history_truncate(self, plan: TablePlan, position: str, at: int) -> None:
        """A ``TRUNCATE`` at ``position`` (``at``: its time, epoch seconds) in history mode: every key live before
        it gets a delete marker there, and the version before the marker ends at it."""
        ...

    def history_settle(self, plan: TablePlan, load_table: str, below_chunk: int) -> None:
        """Every batch of the window (chunk ids below ``below_chunk``) once more: the chains of the keys they touch
        derived from all of them (``history_sql.cdc_merge``)."""
        ...

    def history_snapshot(
        self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object], at: str, pos: str
    ) -> None:
        """New versions from the copied rows ``rows`` picks (bind ``params``), at time ``at`` (text) and ``pos``."""
        ...

    def history_changed(self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object]) -> int:
        """How many copied rows ``rows`` picks differ from their key's current version (or have none)."""
        ...

    def history_close_absent(
        self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object], at: str, pos: str
    ) -> None: ...

    def check_history(self, plan: TablePlan, keys_from: str | None = None, params: Sequence[object] = ()) -> None:
        """The history's invariants over the keys ``keys_from`` names (None: all); ``HistoryBroken`` naming each
        broken rule."""
        ...

    def current_rows(self, plan: TablePlan) -> int: ...

    # ---- schema evolution: the warehouse compares the plan with its table and changes it (``schema_changes``
    # holds what a change is and what is recorded of it) ----

    def schema_diff(self, plan: TablePlan, columns: list[tuple[Any, ...]]) -> SchemaChange:
        """Compare the plan with the target's ``columns`` rows (``columns()``): what to add, widen, keep or drop,
        and the conflicts (a type that cannot change in place)."""
        ...

    def alter_statements(self, plan: TablePlan, change: SchemaChange) -> list[str]:
        """The statements that make the target follow ``change``, for ``alter``."""
        ...

    def renamed_column(
        self, plan: TablePlan, columns: list[tuple[Any, ...]], change: SchemaChange
    ) -> tuple[str, str] | None:
        """``(old, new)`` target names when the target's columns are the plan's but for one, at the same place and
        of the same type, whose name differs (a rename, or a drop and an add in its place)."""
        ...

    def rename_statement(self, table: str, old: str, new: str) -> str:
        """The statement renaming a target column, its values kept, for ``alter``."""
        ...

    def add_version_statement(self, table: str, column: Column) -> str:
        """The statement adding a column version's target column (NULL in every row; a repeat is a no-op)."""
        ...

    def widens_losslessly(self, old: str, new: str) -> bool:
        """Whether MySQL's ``COLUMN_TYPE`` ``old`` changing to ``new`` keeps every value as it was, in MySQL and in
        the warehouse's column (which evolution widens where needed)."""
        ...

    def shape_mismatch(self, plan: TablePlan, columns: Sequence[Sequence[object]]) -> str | None:
        """Why ``plan`` cannot write into an existing target with ``columns`` (None: it can): history versions
        against plain rows, or a merged database's rows against a whole copy, either way round."""
        ...

    def is_history_table(self, columns: Sequence[Sequence[object]]) -> bool:
        """Whether a target's ``(name, ...)`` column rows are a history table's."""
        ...

    # ---- reading the target's rows of a plan ----

    def order_safe(self, plan: TablePlan) -> bool:
        """Whether a key range means the same rows in the warehouse as in MySQL."""
        ...

    def own_rows(self, plan: TablePlan, where: str) -> str:
        """``where`` on the target, kept to the plan's database's rows when the target is merged."""
        ...

    def validated(self, load_table: str, attempts: Attempts) -> str:
        """The condition picking the load table's rows of exactly the validated attempts (bind ``attempts.params``)."""
        ...

    def diagnosis(self) -> Diagnosis:
        """The queries that name which rows and columns differ (``pipeline/diagnose.py``)."""
        ...

    # ---- the session, the schemas and the long statements ----

    def check_session(self, settings: Any) -> None:
        """The session uses what the target secret's ``settings`` name (the warehouse's own settings type, read by
        the wiring: Snowflake's ``secrets.SnowflakeSettings``, its database, schema and warehouse);
        ``EndpointError`` otherwise."""
        ...

    def ensure_schemas(self, schemas: Sequence[str]) -> None:
        """Each schema (one per source database, ``database_mapping: schema``) made where it does not exist yet."""
        ...

    def record_long_statements(
        self, ledger: StatementLedger, heal_round: int, timeout_seconds: int, wait_until: Callable[[], float]
    ) -> None:
        """From now on ``run_long`` runs asynchronously, each statement recorded in ``ledger`` for the finaliser's
        round ``heal_round`` (``Pending`` while it runs past ``wait_until``; ``StatementTimedOut`` past
        ``timeout_seconds``; ``StatementInterrupted`` when cancelled too often)."""
        ...

    def still_running(self, query_id: str) -> bool:
        """Whether a long statement (``StatementRecord.query_id``) still runs; raises its error if it failed."""
        ...
