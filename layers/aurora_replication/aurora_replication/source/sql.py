"""Pure builders of the MySQL statements, from a table plan. No connection here.

Identifiers are quoted by ``mysql_ident`` (with ``%`` doubled, as pymysql %-formats the text);
values are bound (``%s``), never pasted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aurora_replication import typemap
from aurora_replication.checksums import checksum_columns
from aurora_replication.identifiers import mysql_ident as _mysql_ident
from aurora_replication.keyset import compare_predicate, range_predicate
from aurora_replication.models import Column, TablePlan


def mysql_ident(name: str) -> str:
    """A quoted identifier safe inside pymysql's %-formatted query text (``%`` doubled)."""
    return _mysql_ident(name).replace("%", "%%")


# one chunk, one consistent view: its rows and its checksum are read in the same snapshot
SNAPSHOT_ISOLATION = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
START_SNAPSHOT = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
# the server's clock (epoch seconds), read just before the snapshot starts: every change committed
# before this instant is in the snapshot
SERVER_CLOCK = "SELECT UNIX_TIMESTAMP(NOW(6))"
# MySQL: the GTIDs executed before the snapshot (a lower bound of what it holds)
SERVER_CLOCK_AND_GTIDS = "SELECT UNIX_TIMESTAMP(NOW(6)), @@global.gtid_executed"
# MariaDB: the binlog position of the snapshot itself (empty without a binlog)
SNAPSHOT_BINLOG_POSITION = "SHOW STATUS LIKE 'binlog_snapshot_%'"


def is_empty_query(table: str) -> str:
    return f"SELECT 1 FROM {mysql_ident(table)} LIMIT 1"


def max_query(table: str, column: str) -> str:
    return f"SELECT MAX({mysql_ident(column)}) FROM {mysql_ident(table)}"


def bound_probe_query(
    table: str, key: list[str], lower: list[str] | None, offset: int, before: list[str] | None = None
) -> tuple[str, list[object]]:
    """The key of the row ``offset`` rows past ``lower`` in key order (below ``before`` when given).

    MySQL reads every row it skips: this walk costs ``offset`` rows per probe, so it is kept for
    small tables and for single ranges that estimates cannot split (``source.bounds``)."""
    cols = ", ".join(mysql_ident(k) for k in key)
    where, params = key_range_predicate(key, after=lower, before=before)
    return f"SELECT {cols} FROM {mysql_ident(table)} WHERE {where} ORDER BY {cols} LIMIT 1 OFFSET {int(offset)}", params


# ---- planning: estimates and single-row index dives (source.bounds) ----------------------------

# charset and collation names come from information_schema; they are pasted (COLLATE takes no
# parameter), so only plain names pass
_CHARSET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def index_hint(index: str | None) -> str:
    """``FORCE INDEX (...)``: estimates and dives must use the key's own index, never a table scan."""
    if not index:
        return ""
    return " FORCE INDEX (PRIMARY)" if index == "PRIMARY" else f" FORCE INDEX ({mysql_ident(index)})"


def key_range_predicate(
    key: Sequence[str],
    *,
    after: Sequence[object] | None = None,
    before: Sequence[object] | None = None,
    at_most: Sequence[object] | None = None,
    at_least: Sequence[object] | None = None,
) -> tuple[str, list[object]]:
    """``after < key < before`` (strict at both ends) and, on a prefix of the key's columns,
    ``key[:n] <= at_most`` and ``key[:n] >= at_least``; every part is optional."""
    parts: list[str] = []
    params: list[object] = []
    for op, bound in ((">", after), ("<", before), ("<=", at_most), (">=", at_least)):
        if bound is not None:
            text, values = compare_predicate(key, op, bound, mysql_ident)
            parts.append(text)
            params.extend(values)
    return (" AND ".join(parts) or "1 = 1"), params


def row_estimate_query(table: str, index: str | None) -> str:
    """EXPLAIN of a scan of the key's index: its ``rows`` is InnoDB's row count estimate (stat_n_rows)."""
    return f"EXPLAIN SELECT 1 FROM {mysql_ident(table)}{index_hint(index)}"


def range_estimate_query(
    table: str,
    index: str | None,
    key: list[str],
    ranges: Sequence[tuple[Sequence[object] | None, Sequence[object] | None]],
) -> tuple[str, list[object]]:
    """EXPLAIN of one ``SELECT`` per range ``lower < key <= upper``, joined by UNION ALL: the
    ``rows`` of the n-th (``id`` n) is the storage engine's records_in_range estimate of the n-th
    range (two index dives each); nothing is read. One statement for many ranges."""
    selects: list[str] = []
    params: list[object] = []
    for lower, upper in ranges:
        where, values = range_predicate(key, lower, upper, mysql_ident)
        selects.append(f"SELECT 1 FROM {mysql_ident(table)}{index_hint(index)} WHERE {where}")
        params.extend(values)
    return "EXPLAIN " + " UNION ALL ".join(selects), params


def edge_key_query(
    table: str,
    index: str | None,
    key: list[str],
    *,
    last: bool,
    after: Sequence[object] | None = None,
    before: Sequence[object] | None = None,
    at_most: Sequence[object] | None = None,
    at_least: Sequence[object] | None = None,
) -> tuple[str, list[object]]:
    """The first (or ``last``) key in a range (see ``key_range_predicate``): one index dive."""
    cols = ", ".join(mysql_ident(k) for k in key)
    order = ", ".join(f"{mysql_ident(k)}{' DESC' if last else ''}" for k in key)
    where, params = key_range_predicate(key, after=after, before=before, at_most=at_most, at_least=at_least)
    return f"SELECT {cols} FROM {mysql_ident(table)}{index_hint(index)} WHERE {where} ORDER BY {order} LIMIT 1", params


def last_keys_query(
    table: str,
    index: str | None,
    key: list[str],
    *,
    after: Sequence[object] | None,
    before: Sequence[object] | None,
    at_most: Sequence[Sequence[object]],
) -> tuple[str, list[object]]:
    """For each prefix bound in ``at_most``, the last key in ``after < key < before`` at or below
    it (``edge_key_query``), joined by UNION ALL: one statement, one dive per bound."""
    selects: list[str] = []
    params: list[object] = []
    for bound in at_most:
        text, values = edge_key_query(table, index, key, last=True, after=after, before=before, at_most=bound)
        selects.append(f"({text})")
        params.extend(values)
    return " UNION ALL ".join(selects), params


def ordered_keys_query(
    table: str, index: str | None, key: list[str], keys: Sequence[Sequence[object]]
) -> tuple[str, list[object]]:
    """The given keys that exist, in the server's key order (one point lookup each)."""
    cols = ", ".join(mysql_ident(k) for k in key)
    params: list[object] = []
    if len(key) == 1:
        where = f"{mysql_ident(key[0])} IN ({', '.join(['%s'] * len(keys))})"
        params.extend(k[0] for k in keys)
    else:
        point = "(" + " AND ".join(f"{mysql_ident(k)} = %s" for k in key) + ")"
        where = " OR ".join([point] * len(keys))
        for k in keys:
            params.extend(k)
    return f"SELECT {cols} FROM {mysql_ident(table)}{index_hint(index)} WHERE {where} ORDER BY {cols}", params


def key_columns_query() -> str:
    """Type, character set and collation of a table's columns (the key's are picked by name)."""
    return (
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
    )


def key_indexes_query() -> str:
    """The columns of each index of a table, in index order (to name the key's index in hints)."""
    return (
        "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX"
    )


def weights_query(charset: str, collation: str, n: int) -> str:
    """The collation weight (hex) of each of ``n`` bound strings: their order is the server's order."""
    if not (_CHARSET_NAME.match(charset) and _CHARSET_NAME.match(collation)):
        raise ValueError(f"unexpected character set {charset!r} or collation {collation!r}")
    one = f"HEX(WEIGHT_STRING(CONVERT(%s USING {charset}) COLLATE {collation}))"
    return "SELECT " + ", ".join([one] * int(n))


def _select_expr(c: Column) -> str:
    if c.source_expr:
        return c.source_expr.replace("%", "%%")
    q = mysql_ident(c.name)
    if c.kind == typemap.BINARY:
        return f"HEX({q})"
    if c.kind == typemap.BIT:
        return f"CAST({q} AS UNSIGNED)"
    return q


# the staging file's NULL, \\N, spelled without a backslash escape (NO_BACKSLASH_ESCAPES may be on)
_CSV_NULL = "CONCAT(CHAR(92 USING ascii), 'N')"


def _csv_field(c: Column) -> str:
    """One column as its staging-file field, spelled by MySQL exactly as ``staging`` spells it in
    Python: NULL as an unquoted ``\\N``, text and JSON double-quoted with quotes doubled, zero dates
    as NULL, binary as hex, BIT as a number, everything else as MySQL's own text of the value."""
    value = _select_expr(c)
    null = f"{value} IS NULL"
    expr = value
    if c.kind in (typemap.TEXT, typemap.JSON):
        expr = f"CONCAT('\"', REPLACE({value}, '\"', '\"\"'), '\"')"
    elif c.kind in (typemap.DATE, typemap.DATETIME) and not c.source_expr:
        null += f" OR YEAR({value}) = 0 OR MONTH({value}) = 0 OR DAYOFMONTH({value}) = 0"
    # a value whose formatting overflows max_allowed_packet becomes NULL, and so does the whole
    # line (CONCAT): the worker then encodes the chunk value by value instead
    return f"CASE WHEN {null} THEN {_CSV_NULL} ELSE {expr} END"


def line_query(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[str, list[object]]:
    """``chunk_query`` with each row formatted by the server as one staging-file line (without the
    chunk and attempt fields): the worker then only writes and compresses text."""
    source, params = _chunk_source(plan, lower, upper, window)
    fields = ", ',', ".join(_csv_field(c) for c in plan.columns)
    return f"SELECT CONCAT({fields}) {source}", params


def chunk_query(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[str, list[object]]:
    """The SELECT that extracts one chunk (and, in incremental mode, one watermark window)."""
    source, params = _chunk_source(plan, lower, upper, window)
    return f"SELECT {', '.join(_select_expr(c) for c in plan.columns)} {source}", params


def chunk_predicate(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[str, list[object]]:
    """The rows of one chunk: its key range and (incremental) watermark window, without the table's
    row filter (``plan.where``, which the chunk and checksum queries add themselves)."""
    where, params = range_predicate(plan.key, lower, upper, mysql_ident)
    if window is not None and plan.watermark:
        wm = mysql_ident(plan.watermark)
        lo, hi = window
        if lo is not None:
            where += f" AND {wm} > %s"
            params.append(lo)
        if hi is not None:
            where += f" AND ({wm} <= %s" + (f" OR {wm} IS NULL)" if lo is None else ")")
            params.append(hi)
    return where, params


def _chunk_source(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None,
) -> tuple[str, list[object]]:
    """``FROM table WHERE ...`` of one chunk: its key range, watermark window and row filter."""
    where, params = chunk_predicate(plan, lower, upper, window)
    if plan.where:
        where += f" AND ({plan.where.replace('%', '%%')})"
    return f"FROM {mysql_ident(plan.table)} WHERE {where}", params


# ---- validation ------------------------------------------------------------------------------


def _canonical_expr(c: Column) -> str:
    if c.source_expr:
        return _select_expr(c)
    q = mysql_ident(c.name)
    zero = f"YEAR({q}) = 0 OR MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0"
    if c.kind == typemap.BIT:
        return f"CAST(CAST({q} AS UNSIGNED) AS CHAR)"
    if c.kind == typemap.DATE:
        return f"CASE WHEN {zero} THEN NULL ELSE DATE_FORMAT({q}, '%%Y-%%m-%%d') END"
    if c.kind == typemap.DATETIME:
        # microseconds since the epoch: the one spelling both engines print identically
        return (
            f"CASE WHEN {zero} THEN NULL ELSE CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {q}) AS CHAR) END"
        )
    if c.kind == typemap.TEXT:
        return q
    return f"CAST({q} AS CHAR)"


def _row_md5(plan: TablePlan) -> str:
    parts = [f"COALESCE({_canonical_expr(c)}, CHAR(30))" for c in checksum_columns(plan)] or ["''"]
    return f"MD5(CONCAT_WS(CHAR(31), {', '.join(parts)}))"


def _checksum_source(plan: TablePlan, key_range: str) -> str:
    conditions = [key_range] if key_range else []
    if plan.where:
        conditions.append(f"({plan.where.replace('%', '%%')})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"FROM {mysql_ident(plan.table)}{where}"


def checksum_query(plan: TablePlan, key_range: str = "") -> str:
    """Per-row MD5 of each row's canonical text; ``key_range`` (from ``range_predicate``) limits the rows."""
    return f"SELECT {_row_md5(plan)} {_checksum_source(plan, key_range)}"


def checksum_aggregate_query(plan: TablePlan, key_range: str = "") -> str:
    """Count and checksum folded inside MySQL: the sum of the first 64 bits of each row's MD5 (exact:
    SUM of integers is a DECIMAL), so one row comes back, not one per row; one MD5 per row."""
    folded = f"SUM(CAST(CONV(SUBSTRING({_row_md5(plan)}, 1, 16), 16, 10) AS UNSIGNED))"
    return f"SELECT COUNT(*), {folded} {_checksum_source(plan, key_range)}"
