"""Snowflake's side of naming a mismatch (``pipeline/diagnose.py``, through ``Warehouse.diagnosis``): the
queries of a table's rows by key-MD5 bucket, built by ``sql.py``, run on the warehouse's connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from snowflake.connector import SnowflakeConnection

from aurora_replication.models import Column, TablePlan
from aurora_replication.target.snowflake import sql
from aurora_replication.target.snowflake.statements import execute


class Diagnosis:
    """``target/warehouse.py``'s ``Diagnosis`` on one Snowflake connection."""

    def __init__(self, conn: SnowflakeConnection) -> None:
        self.conn = conn

    def chunk_filter(self) -> str:
        return sql.chunk_filter()

    def attempt_filter(self) -> str:
        return sql.attempt_filter()

    def key_range(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[str, list[object]]:
        return sql.target_range(plan, lower, upper)

    def bucket_checksums_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, depth: int, parents: int
    ) -> str:
        return sql.bucket_checksums_query(plan, table, columns, load_table, where, depth, parents)

    def row_hashes_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, depth: int, buckets: int
    ) -> str:
        return sql.row_hashes_query(plan, table, columns, load_table, where, depth, buckets)

    def canonical_values_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, nkeys: int
    ) -> str:
        return sql.canonical_values_query(plan, table, columns, load_table, where, nkeys)

    def json_values_query(
        self, plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str
    ) -> str:
        return sql.json_values_query(plan, table, columns, load_table, where)

    def query(self, statement: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        return execute(self.conn, statement, params)
