"""Everything that talks to Snowflake: connections and the load, merge, publish and checksum steps."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
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

    def _in_transaction(self, steps: Callable[[], None]) -> None:
        execute(self.conn, "BEGIN")
        try:
            steps()
        except BaseException:
            execute(self.conn, "ROLLBACK")
            raise
        execute(self.conn, "COMMIT")

    def load_file(self, plan: TablePlan, load_table: str, chunk_id: int, path: str, file: str) -> None:
        """Replace the chunk's rows in the load table with the staged file, atomically."""

        def steps() -> None:
            execute(self.conn, sql.delete_chunk(load_table), [chunk_id])
            execute(self.conn, sql.copy_into(plan, load_table, self.stage, path, file))

        self._in_transaction(steps)

    def load_rows(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str, rows: list[list[Any]]) -> None:
        """The small-chunk path: multi-row INSERTs of bound values, atomically with the delete."""

        def steps() -> None:
            execute(self.conn, sql.delete_chunk(load_table), [chunk_id])
            for i in range(0, len(rows), INSERT_BATCH_ROWS):
                batch = rows[i : i + INSERT_BATCH_ROWS]
                params = [v for row in batch for v in (*row, chunk_id, attempt)]
                execute(self.conn, sql.insert_values(plan, load_table, len(batch)), params)

        self._in_transaction(steps)

    def merge_chunk(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str) -> None:
        execute(self.conn, sql.merge_chunk(plan, load_table), [chunk_id, attempt])

    def publish(self, plan: TablePlan, load_table: str) -> None:
        execute(self.conn, sql.publish(plan, load_table))

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
        json_text: bool = False,
    ) -> tuple[int, str]:
        """``json_text``: include JSON columns (only where ``table`` holds them as text: a load table)."""
        statement = sql.checksum_aggregate_query(plan, table, checksum_columns(plan, json_text), load_table, where)
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

    def checksums_by_chunk(
        self, plan: TablePlan, load_table: str, json_text: bool = False
    ) -> dict[int, tuple[int, str]]:
        """Count and checksum of each chunk's rows in a load table, in one scan (``json_text``: JSON
        columns included, as the load table holds them as MySQL's text)."""
        rows = execute(self.conn, sql.checksum_by_chunk_query(load_table, checksum_columns(plan, json_text)))
        return {int(chunk): fold_sums(count, high, low) for chunk, count, high, low in rows}

    def range_checksum(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[int, str]:
        where, params = sql.target_range(plan, lower, upper)
        return self.checksum(plan, plan.target_table, where=where, params=params)

    def delete_missing_in_range(
        self,
        plan: TablePlan,
        load_table: str,
        chunk_id: int,
        attempt: str,
        lower: Sequence[object] | None,
        upper: Sequence[object] | None,
    ) -> None:
        where, params = sql.target_range(plan, lower, upper, alias="t.")
        execute(self.conn, sql.delete_missing_in_range(plan, load_table, where), [*params, chunk_id, attempt])

    def reconcile(self, plan: TablePlan, keys_table: str, action: str) -> int:
        """Delete (or mark) the target's rows whose key is not among the keys copied from MySQL;
        returns how many rows were deleted or newly marked."""
        if action == "mark":
            execute(self.conn, sql.add_deleted_column(plan))
            rows = execute(self.conn, sql.reconcile_mark(plan, keys_table))
            execute(self.conn, sql.reconcile_unmark(plan, keys_table))
        else:
            rows = execute(self.conn, sql.reconcile_delete(plan, keys_table))
        return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0
