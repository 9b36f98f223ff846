"""Everything that talks to Snowflake: connections and the load, merge, publish and checksum steps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection

from aurora_replication.checksums import checksum_columns, fold_sums
from aurora_replication.models import TablePlan
from aurora_replication.secrets import SnowflakeSettings
from aurora_replication.target import sql

# the connector logs request URLs and bodies at DEBUG; keep it quiet whatever the root level
logging.getLogger("snowflake.connector").setLevel(logging.WARNING)

AUTH_ERRNOS = {390100, 390144, 394304, 390318}
INSERT_BATCH_ROWS = 500
ATTEMPT_BATCH_ROWS = 1000


def _private_key_der(pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def connect(settings: SnowflakeSettings) -> SnowflakeConnection:
    kwargs: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "database": settings.database,
        "schema": settings.schema,
        "login_timeout": 30,
        "network_timeout": 600,
        "session_parameters": {"TIMEZONE": "UTC", "QUERY_TAG": "aurora-snowflake-replication"},
    }
    for name in ("role", "warehouse", "host", "port", "protocol"):
        if getattr(settings, name):
            kwargs[name] = getattr(settings, name)
    if settings.private_key:
        kwargs["private_key"] = _private_key_der(settings.private_key)
    else:
        kwargs["password"] = settings.password
    return snowflake.connector.connect(**kwargs)


def connect_with_rotation(get_settings: Callable[[bool], SnowflakeSettings]) -> SnowflakeConnection:
    try:
        return connect(get_settings(False))
    except snowflake.connector.errors.DatabaseError as e:
        if getattr(e, "errno", None) in AUTH_ERRNOS:
            return connect(get_settings(True))
        raise


def execute(conn: SnowflakeConnection, statement: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(statement, tuple(params) if params is not None else None)
        try:
            return list(cur.fetchall())
        except snowflake.connector.errors.InterfaceError:
            return []
    finally:
        cur.close()


class Target:
    """The Snowflake side of one worker: stage, load tables, target tables."""

    def __init__(self, conn: SnowflakeConnection, stage: str) -> None:
        self.conn = conn
        self.stage = stage
        self._stage_ready = False

    def ensure_stage(self) -> None:
        if not self._stage_ready:
            execute(self.conn, sql.create_stage(self.stage))
            self._stage_ready = True

    def ensure_load_table(self, plan: TablePlan, run_id: str) -> str:
        name = sql.load_table_name(plan, run_id)
        execute(self.conn, sql.create_load_table(plan, name))
        return name

    def ensure_target_table(self, plan: TablePlan) -> None:
        execute(self.conn, sql.create_target_table(plan))

    def put(self, local_path: str, path: str) -> None:
        self.ensure_stage()
        execute(self.conn, sql.put_file(local_path, self.stage, path))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` ... ``COMMIT`` around the block; ``ROLLBACK`` when it raises. DML only: a DDL
        statement inside commits the transaction (Snowflake runs each DDL as its own transaction)."""
        execute(self.conn, "BEGIN")
        try:
            yield
        except BaseException:
            execute(self.conn, "ROLLBACK")
            raise
        execute(self.conn, "COMMIT")

    def load_file(self, plan: TablePlan, load_table: str, path: str, file: str) -> None:
        """COPY one attempt's staged file into the load table (its rows carry the chunk and attempt
        ids). Nothing is deleted: earlier attempts stay, unread, since readers pick attempts by id."""
        execute(self.conn, sql.copy_into(plan, load_table, self.stage, path, file))

    def load_rows(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str, rows: list[list[Any]]) -> None:
        """The small-chunk path: multi-row INSERTs of bound values, tagged with the chunk and attempt.
        An attempt interrupted half way leaves rows no ledger entry names."""
        for i in range(0, len(rows), INSERT_BATCH_ROWS):
            batch = rows[i : i + INSERT_BATCH_ROWS]
            params = [v for row in batch for v in (*row, chunk_id, attempt)]
            execute(self.conn, sql.insert_values(plan, load_table, len(batch)), params)

    def record_attempts(self, plan: TablePlan, run_id: str, token: str, pairs: Sequence[tuple[int, str]]) -> str:
        """Write the (chunk, attempt) pairs of one finaliser's view of the ledger under ``token``;
        returns the attempts table every later read of the load table joins."""
        name = sql.attempts_table_name(plan, run_id)
        execute(self.conn, sql.create_attempts_table(name))
        for i in range(0, len(pairs), ATTEMPT_BATCH_ROWS):
            batch = pairs[i : i + ATTEMPT_BATCH_ROWS]
            params = [v for chunk, attempt in batch for v in (token, chunk, attempt)]
            execute(self.conn, sql.insert_attempts(name, len(batch)), params)
        return name

    def checksums_of_attempts(
        self, plan: TablePlan, load_table: str, attempts_table: str, token: str
    ) -> dict[int, tuple[int, str]]:
        """Count and checksum of each chunk's validated attempt in the load table, in one scan."""
        where = sql.validated(load_table, attempts_table)
        rows = execute(self.conn, sql.checksum_by_chunk_query(load_table, checksum_columns(plan), where), [token])
        return {int(chunk): fold_sums(count, high, low) for chunk, count, high, low in rows}

    def merge_validated(self, plan: TablePlan, load_table: str, attempts_table: str, token: str) -> None:
        execute(self.conn, sql.merge_validated(plan, load_table, attempts_table), [token])

    def merged_checksum(self, plan: TablePlan, load_table: str, attempts_table: str, token: str) -> tuple[int, str]:
        """Count and checksum of the target's rows whose key the validated attempts carry."""
        where = sql.merged_rows(plan, load_table, attempts_table)
        return self.checksum(plan, plan.target_table, where=where, params=[token])

    def publish(self, plan: TablePlan, load_table: str, attempts_table: str, token: str) -> None:
        execute(self.conn, sql.publish(plan, load_table, attempts_table), [token])

    def drop(self, table: str) -> None:
        execute(self.conn, sql.drop_table(table))

    def exists(self, table: str) -> bool:
        rows = execute(self.conn, sql.table_exists(), [table])
        return bool(rows and rows[0][0])

    def checksum(
        self,
        plan: TablePlan,
        table: str,
        load_table: bool = False,
        where: str = "",
        params: Sequence[object] = (),
    ) -> tuple[int, str]:
        statement = sql.checksum_aggregate_query(plan, table, checksum_columns(plan), load_table, where)
        return fold_sums(*execute(self.conn, statement, params or None)[0])

    def has_column(self, table: str, column: str) -> bool:
        rows = execute(self.conn, sql.column_exists(), [table, column])
        return bool(rows and rows[0][0])

    def columns(self, table: str) -> list[tuple[Any, ...]]:
        """The target table's columns, ``(name, data_type, precision, scale)``; empty if it does not exist."""
        return execute(self.conn, sql.target_columns(), [table])

    def alter(self, statements: Sequence[str]) -> None:
        """Schema evolution: the ``ALTER TABLE`` statements of ``evolution.alter_statements``, in order."""
        for statement in statements:
            execute(self.conn, statement)

    def close(self) -> None:
        self.conn.close()

    def range_checksum(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[int, str]:
        where, params = sql.target_range(plan, lower, upper)
        return self.checksum(plan, plan.target_table, where=where, params=params)

    def reconcile(self, plan: TablePlan, keys_table: str, attempts_table: str, token: str, action: str) -> int:
        """Delete (or mark) the target's rows whose key is not among the validated keys read from
        MySQL; returns how many rows were deleted or newly marked."""
        if action == "mark":
            execute(self.conn, sql.add_deleted_column(plan))
            with self.transaction():
                rows = execute(self.conn, sql.reconcile_mark(plan, keys_table, attempts_table), [token])
                execute(self.conn, sql.reconcile_unmark(plan, keys_table, attempts_table), [token])
        else:
            rows = execute(self.conn, sql.reconcile_delete(plan, keys_table, attempts_table), [token])
        return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0

    def keys_missing(self, plan: TablePlan, keys_table: str, attempts_table: str, token: str) -> int:
        rows = execute(self.conn, sql.keys_missing_in_target(plan, keys_table, attempts_table), [token])
        return int(rows[0][0]) if rows else 0
