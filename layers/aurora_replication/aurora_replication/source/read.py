"""Reading MySQL: chunk bounds, watermarks, streaming a chunk's rows, and checksums of key ranges."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from aurora_replication import typemap
from aurora_replication.keyset import range_predicate
from aurora_replication.models import TablePlan
from aurora_replication.source import sql
from aurora_replication.source.sql import mysql_ident

FETCH_BATCH = 5000
Row = tuple[Any, ...]


def query(conn: pymysql.Connection[Any], statement: str, params: Sequence[object] = ()) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(statement, tuple(params))
        return list(cur.fetchall())


def is_empty(conn: pymysql.Connection[Any], table: str) -> bool:
    return not query(conn, sql.is_empty_query(table))


def chunk_bounds(
    conn: pymysql.Connection[Any], table: str, key: list[str], chunk_rows: int
) -> list[tuple[list[str] | None, list[str] | None]]:
    """Key ranges of about ``chunk_rows`` rows, found by walking the key index (one probe per chunk)."""
    if not key:
        return [(None, None)]
    bounds: list[tuple[list[str] | None, list[str] | None]] = []
    lower: list[str] | None = None
    while True:
        statement, params = sql.bound_probe_query(table, key, lower, int(chunk_rows) - 1)
        rows = query(conn, statement, params)
        if not rows:
            bounds.append((lower, None))
            return bounds
        upper = [str(v) for v in rows[0]]
        bounds.append((lower, upper))
        lower = upper


def max_watermark(conn: pymysql.Connection[Any], table: str, column: str) -> str | None:
    rows = query(conn, sql.max_query(table, column))
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def window_start(
    conn: pymysql.Connection[Any], plan: TablePlan, stored: str | None, overlap_seconds: int
) -> str | None:
    """The lower edge of an incremental window: the stored watermark less the overlap for late commits."""
    if stored is None or not plan.watermark:
        return stored
    kind = plan.column(plan.watermark).kind
    if kind == typemap.DATETIME and overlap_seconds:
        rows = query(conn, "SELECT CAST(%s AS DATETIME(6)) - INTERVAL %s SECOND", [stored, overlap_seconds])
        return str(rows[0][0])
    return stored


def stream_rows(conn: pymysql.Connection[Any], sql: str, params: Sequence[object]) -> Generator[Row]:
    """Rows from an unbuffered cursor: memory stays flat whatever the chunk size."""
    cur = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cur.execute(sql, tuple(params))
        while batch := cur.fetchmany(FETCH_BATCH):
            yield from batch
    finally:
        cur.close()


ER_WARN_ALLOWED_PACKET_OVERFLOWED = 1301


def _aggregate_checksum(
    conn: pymysql.Connection[Any], plan: TablePlan, sql: str, params: Sequence[object]
) -> tuple[int, str]:
    """Run ``checksum_aggregate_query``; a row whose text overflows max_allowed_packet hashes to NULL
    (MySQL warns 1301) and would be left out of the sum: that is an error that says so."""
    with conn.cursor() as cur:
        cur.execute(sql, tuple(params))
        count, total = cur.fetchone()
        if cur.warning_count:
            cur.execute("SHOW WARNINGS")
            if any(int(w[1]) == ER_WARN_ALLOWED_PACKET_OVERFLOWED for w in cur.fetchall()):
                raise RuntimeError(
                    f"table {plan.table!r} has rows longer than MySQL's max_allowed_packet, so MySQL cannot "
                    "checksum them (CONCAT returns NULL); raise max_allowed_packet (the DB parameter group) "
                    "above the longest row"
                )
    return int(count or 0), f"{int(total or 0) & 0xFFFFFFFFFFFFFFFF:016x}"


def table_checksum(conn: pymysql.Connection[Any], plan: TablePlan, json_text: bool = False) -> tuple[int, str]:
    """``json_text``: include JSON columns (the Snowflake side is a load table, see ``checksums``)."""
    return _aggregate_checksum(conn, plan, sql.checksum_aggregate_query(plan, json_text=json_text), [])


def range_checksums(
    conn: pymysql.Connection[Any],
    plan: TablePlan,
    bounds: Sequence[tuple[Sequence[object] | None, Sequence[object] | None]],
    json_text: bool = False,
) -> list[tuple[int, str]]:
    """Row count and checksum of every chunk's key range (one index range scan each); ``json_text``
    includes JSON columns (the Snowflake side is a load table, see ``checksums``)."""
    out = []
    for lower, upper in bounds:
        where, params = range_predicate(plan.key, lower, upper, mysql_ident) if plan.key else ("", [])
        out.append(_aggregate_checksum(conn, plan, sql.checksum_aggregate_query(plan, where, json_text), params))
    return out
