"""Reading MySQL: chunk bounds, watermarks, consistent snapshots, streaming a chunk's rows, and
checksums of chunks and key ranges."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from aurora_replication import checksums, typemap
from aurora_replication.keyset import range_predicate
from aurora_replication.models import TablePlan
from aurora_replication.source import bounds, sql
from aurora_replication.source.sql import mysql_ident
from aurora_replication.source.statements import query as query  # source_read.query, as before

FETCH_BATCH = 5000
Row = tuple[Any, ...]


def is_empty(conn: pymysql.Connection[Any], table: str) -> bool:
    return not query(conn, sql.is_empty_query(table))


def chunk_bounds(
    conn: pymysql.Connection[Any],
    table: str,
    key: list[str],
    chunk_rows: int,
    *,
    stats: bounds.PlanStats | None = None,
) -> list[tuple[list[str] | None, list[str] | None]]:
    """Key ranges of about ``chunk_rows`` rows covering the whole key space, planned from index
    estimates and dives (``source.bounds``): a few statements per chunk, not a read of the rows."""
    return bounds.plan_bounds(conn, table, key, chunk_rows, stats)


@dataclass(frozen=True)
class Snapshot:
    """A consistent read view of the source: every change committed before ``taken_at`` (epoch
    seconds, the server's clock read just before the snapshot started) is in it, none committed
    after the snapshot started. ``position`` is the binary-log position it corresponds to, where the
    server can tell: ``binlog:<file>:<offset>`` (MariaDB, exact) or ``gtid<=:<set>`` (MySQL: the GTIDs
    executed before the snapshot, a lower bound); None otherwise."""

    taken_at: float
    position: str | None = None


def _is_mariadb(conn: pymysql.Connection[Any]) -> bool:
    return "mariadb" in _text(conn.get_server_info()).lower()  # type: ignore[no-untyped-call]  # pymysql's stubs


def _text(value: Any) -> str:
    """A value as text, whether the driver decoded it (pymysql) or not (``source.bulk``: bytes)."""
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


@contextmanager
def snapshot(conn: pymysql.Connection[Any]) -> Iterator[Snapshot]:
    """``START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`` at REPEATABLE READ: every query on
    ``conn`` inside the block reads the same view, which is released (COMMIT) when the block ends.
    Keep the block short (read one chunk, checksum it): an open snapshot holds back InnoDB's purge.
    ``conn`` is pymysql's or the bulk reader's (``source.bulk``, whose values are bytes)."""
    mariadb = _is_mariadb(conn)
    with conn.cursor() as cur:
        if mariadb:
            cur.execute(sql.SERVER_CLOCK)
            (clock,) = cur.fetchone()
            gtids = None
        else:
            cur.execute(sql.SERVER_CLOCK_AND_GTIDS)
            clock, gtids = cur.fetchone()
        cur.execute(sql.SNAPSHOT_ISOLATION)
        cur.execute(sql.START_SNAPSHOT)
        position = f"gtid<=:{_text(gtids)}" if gtids else None
        if mariadb:
            cur.execute(sql.SNAPSHOT_BINLOG_POSITION)
            status = {_text(k).lower(): _text(v) for k, v in cur.fetchall()}
            if status.get("binlog_snapshot_file"):
                position = f"binlog:{status['binlog_snapshot_file']}:{status.get('binlog_snapshot_position', '')}"
    taken_at = float(clock) if clock is not None else time.time()
    try:
        yield Snapshot(taken_at, position)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def chunk_checksum(
    conn: pymysql.Connection[Any],
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[int, str]:
    """Row count and checksum of exactly the rows a chunk extracts (key range, window, row filter);
    inside ``snapshot`` it describes the same view the chunk's rows were read from. Every column is
    covered, JSON as MySQL's text: it is compared with the chunk's rows in the load table, which
    holds JSON as that text (``checksums.checksum_columns``)."""
    where, params = sql.chunk_predicate(plan, lower, upper, window)
    return _aggregate_checksum(conn, plan, sql.checksum_aggregate_query(plan, where, json_text=True), params)


# EXPLAIN access types that read an index range: their row estimate is MySQL's index dives into
# that range. A table scan's estimate is the table statistics, which may be stale by any amount.
INDEX_ACCESS = frozenset({"range", "ref", "ref_or_null", "eq_ref", "const"})


def window_rows_estimate(
    conn: pymysql.Connection[Any], plan: TablePlan, window: tuple[str | None, str | None]
) -> int | None:
    """MySQL's estimate of the rows in an incremental window when it would read them through an
    index (one led by the watermark column); None when it would scan the table instead."""
    statement, params = sql.window_estimate_query(plan, window)
    with conn.cursor() as cur:
        cur.execute(statement, tuple(params))
        names = [str(d[0]).lower() for d in cur.description or ()]
        found = list(cur.fetchall())
    if len(found) != 1 or not {"type", "key", "rows"} <= set(names):
        return None
    row = dict(zip(names, found[0], strict=True))
    if str(row["type"] or "") not in INDEX_ACCESS or not row["key"] or row["rows"] is None:
        return None
    return int(row["rows"])


def max_watermark(conn: pymysql.Connection[Any], table: str, column: str) -> str | None:
    rows = query(conn, sql.max_query(table, column))
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def max_watermark_and_key(
    conn: pymysql.Connection[Any], table: str, column: str, key: str
) -> tuple[str | None, str | None]:
    """The largest watermark and the largest value of the (integer) key column ``key``, in one statement."""
    rows = query(conn, sql.max_query(table, column, key))
    if not rows:
        return None, None
    return tuple(None if v is None else str(v) for v in rows[0][:2])  # type: ignore[return-value]


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


def _unhashable(plan: TablePlan) -> RuntimeError:
    return RuntimeError(
        f"table {plan.table!r} has rows longer than MySQL's max_allowed_packet, so MySQL cannot "
        "checksum them (CONCAT returns NULL); raise max_allowed_packet (the DB parameter group) "
        "above the longest row"
    )


class RowHashes:
    """The count and checksum of a chunk taken from the rows of ``sql.line_query(hashed=True)`` (each
    row's term as 16 hexadecimal digits, ``sql.row_hash_hex``) as they stream past (``feed``), so
    the chunk's source is scanned once, not once for the rows and again for ``chunk_checksum``: the
    same sum of each row's 64-bit MD5 term that MySQL folds there, over exactly the rows read, in the
    same snapshot. A row MySQL cannot hash (NULL term) is an error, as in ``chunk_checksum``."""

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan
        self.rows = 0
        self.total = 0
        self.complete = False

    def feed(self, rows: Iterator[Row]) -> Generator[Row]:
        """``rows`` (line, term) passed on as they come; the sum is ``checksum()`` once all have passed."""
        total = count = 0
        try:
            for row in rows:
                term = row[1]
                if term is None:
                    raise _unhashable(self.plan)
                total += int(term, 16)
                count += 1
                yield row
            self.complete = True
        finally:
            self.rows, self.total = count, total

    def sums(self) -> tuple[int, int]:
        """The row count and the unfolded sum of the terms: the parts of one chunk add these."""
        if not self.complete:
            raise RuntimeError("the chunk's rows were not all read: no checksum of a partial read")
        return self.rows, self.total

    def checksum(self) -> tuple[int, str]:
        return checksums.fold_sums(*self.sums())


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
                raise _unhashable(plan)
    return checksums.fold_sums(count, total)


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
        where, params = (
            range_predicate(plan.key, lower, upper, mysql_ident, sql.key_form(plan).placeholder)
            if plan.key
            else ("", [])
        )
        out.append(_aggregate_checksum(conn, plan, sql.checksum_aggregate_query(plan, where, json_text), params))
    return out
