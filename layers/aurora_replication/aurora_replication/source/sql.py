"""Pure builders of the MySQL statements, from a table plan. No connection here.

Identifiers are quoted by ``mysql_ident`` (with ``%`` doubled, as pymysql %-formats the text);
values are bound (``%s``), never pasted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aurora_replication import typemap
from aurora_replication.checksums import checksum_columns
from aurora_replication.identifiers import mysql_ident as _mysql_ident
from aurora_replication.keyset import compare_predicate, range_predicate
from aurora_replication.models import Column, TablePlan


def mysql_ident(name: str) -> str:
    """A quoted identifier safe inside pymysql's %-formatted query text (``%`` doubled)."""
    return _mysql_ident(name).replace("%", "%%")


# ---- key values as text ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyForm:
    """How a key's values travel as text (chunk bounds live in the ledger and messages as JSON text):
    a binary column's as hexadecimal, selected with ``HEX()`` and compared as bytes through
    ``UNHEX(%s)`` (the bound is a parameter, never pasted); a FLOAT or DOUBLE column's as the
    shortest text of its value as a double (``col + 0e0``), which names the stored value exactly
    (MySQL prints a FLOAT with 6 digits); a BIT column's as its number (``col + 0``: MySQL sends a BIT
    value as raw bytes, which are not text), compared as that number (``CAST(%s AS UNSIGNED)``; a
    BIT compared with a string would be compared as a binary string); every other column as
    MySQL's own text of it."""

    binary: frozenset[str] = frozenset()
    floats: frozenset[str] = frozenset()
    bits: frozenset[str] = frozenset()

    def select(self, column: str) -> str:
        q = mysql_ident(column)
        if column in self.binary:
            return f"HEX({q})"
        if column in self.floats:
            return f"({q} + 0e0)"
        if column in self.bits:
            return f"({q} + 0)"
        return q

    def placeholder(self, column: str) -> str:
        if column in self.binary:
            return "UNHEX(%s)"
        if column in self.bits:
            return "CAST(%s AS UNSIGNED)"
        return "%s"


PLAIN = KeyForm()


def key_form(plan: TablePlan) -> KeyForm:
    """The form of a plan's key (its columns' kinds)."""
    kinds = {k: plan.column(k).kind for k in plan.key}
    return KeyForm(
        binary=frozenset(k for k, kind in kinds.items() if kind == typemap.BINARY),
        floats=frozenset(k for k, kind in kinds.items() if kind == typemap.FLOAT),
        bits=frozenset(k for k, kind in kinds.items() if kind == typemap.BIT),
    )


def _key_select(key: Sequence[str], form: KeyForm) -> str:
    return ", ".join(form.select(k) for k in key)


def _key_order(key: Sequence[str], desc: bool = False) -> str:
    return ", ".join(f"{mysql_ident(k)}{' DESC' if desc else ''}" for k in key)


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


def max_query(table: str, column: str, key: str | None = None) -> str:
    """``MAX(column)``, and with ``key`` ``MAX(key)`` beside it in the same statement (an index's end)."""
    extra = f", MAX({mysql_ident(key)})" if key else ""
    return f"SELECT MAX({mysql_ident(column)}){extra} FROM {mysql_ident(table)}"


def bound_probe_query(
    table: str,
    key: list[str],
    lower: list[str] | None,
    offset: int,
    before: list[str] | None = None,
    form: KeyForm = PLAIN,
) -> tuple[str, list[object]]:
    """The key of the row ``offset`` rows past ``lower`` in key order (below ``before`` when given).

    MySQL reads every row it skips: this walk costs ``offset`` rows per probe, so it is kept for
    small tables and for single ranges that estimates cannot split (``source.bounds``)."""
    where, params = key_range_predicate(key, after=lower, before=before, form=form)
    return (
        f"SELECT {_key_select(key, form)} FROM {mysql_ident(table)} WHERE {where} ORDER BY {_key_order(key)} "
        f"LIMIT 1 OFFSET {int(offset)}",
        params,
    )


def _utf8(expr: str) -> str:
    """Text in utf8mb4 whatever the column's character set (latin1, utf8mb3, ...): CONCAT of mixed
    character sets and MD5 of a latin1 value would otherwise see latin1 bytes, not Snowflake's UTF-8."""
    return f"CONVERT({expr} USING utf8mb4)"


def _spatial_hex(q: str) -> str:
    """A geometry as hex EWKB: MySQL stores a geometry as its SRID (4 bytes, little-endian) followed by
    little-endian WKB; EWKB carries the SRID inside the WKB header (type flag 0x20000000, then the
    SRID), as Snowflake's TO_GEOMETRY and TO_GEOGRAPHY read it. SRID 0 gives plain WKB."""
    h = f"HEX({q})"
    return (
        f"IF(SUBSTRING({h}, 1, 8) = '00000000', SUBSTRING({h}, 9), "
        f"CONCAT(SUBSTRING({h}, 9, 8), '20', SUBSTRING({h}, 1, 8), SUBSTRING({h}, 19)))"
    )


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
    form: KeyForm = PLAIN,
) -> tuple[str, list[object]]:
    """``after < key < before`` (strict at both ends) and, on a prefix of the key's columns,
    ``key[:n] <= at_most`` and ``key[:n] >= at_least``; every part is optional."""
    parts: list[str] = []
    params: list[object] = []
    for op, bound in ((">", after), ("<", before), ("<=", at_most), (">=", at_least)):
        if bound is not None:
            text, values = compare_predicate(key, op, bound, mysql_ident, form.placeholder)
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
    form: KeyForm = PLAIN,
) -> tuple[str, list[object]]:
    """EXPLAIN of one ``SELECT`` per range ``lower < key <= upper``, joined by UNION ALL: the
    ``rows`` of the n-th (``id`` n) is the storage engine's records_in_range estimate of the n-th
    range (two index dives each); nothing is read. One statement for many ranges."""
    selects: list[str] = []
    params: list[object] = []
    for lower, upper in ranges:
        where, values = range_predicate(key, lower, upper, mysql_ident, form.placeholder)
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
    form: KeyForm = PLAIN,
) -> tuple[str, list[object]]:
    """The first (or ``last``) key in a range (see ``key_range_predicate``): one index dive."""
    where, params = key_range_predicate(key, after=after, before=before, at_most=at_most, at_least=at_least, form=form)
    return (
        f"SELECT {_key_select(key, form)} FROM {mysql_ident(table)}{index_hint(index)} WHERE {where} "
        f"ORDER BY {_key_order(key, desc=last)} LIMIT 1",
        params,
    )


def last_keys_query(
    table: str,
    index: str | None,
    key: list[str],
    *,
    after: Sequence[object] | None,
    before: Sequence[object] | None,
    at_most: Sequence[Sequence[object]],
    form: KeyForm = PLAIN,
) -> tuple[str, list[object]]:
    """For each prefix bound in ``at_most``, the last key in ``after < key < before`` at or below
    it (``edge_key_query``), joined by UNION ALL: one statement, one dive per bound."""
    selects: list[str] = []
    params: list[object] = []
    for bound in at_most:
        text, values = edge_key_query(
            table, index, key, last=True, after=after, before=before, at_most=bound, form=form
        )
        selects.append(f"({text})")
        params.extend(values)
    return " UNION ALL ".join(selects), params


def ordered_keys_query(
    table: str, index: str | None, key: list[str], keys: Sequence[Sequence[object]], form: KeyForm = PLAIN
) -> tuple[str, list[object]]:
    """The given keys that exist, in the server's key order (one point lookup each)."""
    params: list[object] = []
    if len(key) == 1:
        where = f"{mysql_ident(key[0])} IN ({', '.join([form.placeholder(key[0])] * len(keys))})"
        params.extend(k[0] for k in keys)
    else:
        point = "(" + " AND ".join(f"{mysql_ident(k)} = {form.placeholder(k)}" for k in key) + ")"
        where = " OR ".join([point] * len(keys))
        for k in keys:
            params.extend(k)
    return (
        f"SELECT {_key_select(key, form)} FROM {mysql_ident(table)}{index_hint(index)} WHERE {where} "
        f"ORDER BY {_key_order(key)}",
        params,
    )


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
    """A column as extracted: binary and geometries as hex, BIT and YEAR as numbers (YEAR 0 is 0, not
    '0000'), FLOAT widened exactly to DOUBLE (MySQL prints a FLOAT with 6 digits, losing the rest), a
    ZEROFILL number as the number (MySQL's text of it is padded: '007', '00000001.50'; ``col + 0`` keeps
    every digit and the scale, and drops the padding)."""
    if c.source_expr:
        return c.source_expr.replace("%", "%%")
    q = mysql_ident(c.name)
    if c.zerofill and c.kind in (typemap.INTEGER, typemap.DECIMAL, typemap.TEXT):
        return f"({q} + 0)"
    if c.kind == typemap.BINARY:
        return f"HEX({q})"
    if c.kind == typemap.SPATIAL:
        return _spatial_hex(q)
    if c.kind in (typemap.BIT, typemap.YEAR):
        return f"CAST({q} AS UNSIGNED)"
    if c.kind == typemap.FLOAT:
        return f"({q} + 0e0)"
    return q


def _length_guard(c: Column) -> str | None:
    """A condition true when the column's value is longer than Snowflake holds (None: it never is)."""
    limit = typemap.value_limit(c)
    if limit is None or c.source_expr:
        return None
    q = mysql_ident(c.name)
    size = f"LENGTH({_utf8(q)})" if c.kind in (typemap.TEXT, typemap.JSON) else f"LENGTH({q})"
    return f"{size} > {int(limit)}"


def _csv_field(c: Column) -> str:
    """One column as its staging-file field, spelled by MySQL exactly as ``staging`` spells it in
    Python: NULL as an empty unquoted field; text, JSON, binary (hex) and geometries (hex EWKB)
    double-quoted with quotes doubled, so the empty string is ``""``; zero dates as NULL; a datetime
    loaded as a timestamp with six fractional digits (the file format's ``TIMESTAMP_FORMAT``);
    everything else as MySQL's own text of the value (see ``staging`` for the file format and why)."""
    value = _select_expr(c)
    null = f"{value} IS NULL"
    expr = value
    if c.kind in (typemap.TEXT, typemap.JSON):
        expr = f"CONCAT('\"', REPLACE({_utf8(value)}, '\"', '\"\"'), '\"')"
    elif c.kind in (typemap.BINARY, typemap.SPATIAL):
        expr = f"CONCAT('\"', {value}, '\"')"
    elif c.kind in (typemap.DATE, typemap.DATETIME) and not c.source_expr:
        null += f" OR YEAR({value}) = 0 OR MONTH({value}) = 0 OR DAYOFMONTH({value}) = 0"
        if typemap.staged_with_micros(c):  # the file format's TIMESTAMP_FORMAT: always six digits
            expr = f"DATE_FORMAT({value}, '{typemap.STAGED_TIMESTAMP_MYSQL}')"
    # a value whose formatting overflows max_allowed_packet becomes NULL, and so does the whole
    # line (CONCAT); so does a value longer than Snowflake holds: the worker then encodes the chunk
    # value by value, which names the row and column of an oversized value
    guard = _length_guard(c)
    too_long = f" WHEN {guard} THEN NULL" if guard else ""
    return f"CASE WHEN {null} THEN ''{too_long} ELSE {expr} END"


def line_query(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
    hashed: bool = False,
) -> tuple[str, list[object]]:
    """``chunk_query`` with each row formatted by the server as one staging-file line (without the
    chunk and attempt fields): the worker then only writes and compresses text. ``hashed`` adds each
    row's checksum term (``row_hash_hex``, JSON as its text) as a second column, so the chunk's source
    checksum comes from the same scan as its rows (``source.read.RowHashes``)."""
    source, params = _chunk_source(plan, lower, upper, window)
    fields = ", ',', ".join(_csv_field(c) for c in plan.columns)
    hash_column = f", {row_hash_hex(plan, json_text=True)}" if hashed else ""
    return f"SELECT CONCAT({fields}){hash_column} {source}", params


def chunk_query(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[str, list[object]]:
    """The SELECT that extracts one chunk (and, in incremental mode, one watermark window)."""
    source, params = _chunk_source(plan, lower, upper, window)
    return f"SELECT {', '.join(_select_expr(c) for c in plan.columns)} {source}", params


def page_query(plan: TablePlan, after: list[Any] | None, rows: int) -> tuple[str, list[object]]:
    """The next ``rows`` rows of ``plan``'s columns after the key ``after`` (None: from the start), in key
    order: one page of a key-ordered walk (a column version's fill, ``pipeline/modes/cdc/reader.py``)."""
    query, params = chunk_query(plan, after, None, None)
    return f"{query} ORDER BY {_key_order(plan.key)} LIMIT %s", [*params, int(rows)]


def chunk_predicate(
    plan: TablePlan,
    lower: Sequence[object] | None,
    upper: Sequence[object] | None,
    window: tuple[str | None, str | None] | None = None,
) -> tuple[str, list[object]]:
    """The rows of one chunk: its key range and (incremental) watermark window, without the table's
    row filter (``plan.where``, which the chunk and checksum queries add themselves)."""
    where, params = range_predicate(plan.key, lower, upper, mysql_ident, key_form(plan).placeholder)
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


def window_estimate_query(plan: TablePlan, window: tuple[str | None, str | None]) -> tuple[str, list[object]]:
    """``EXPLAIN`` of an incremental window's rows over the whole key space: through an index led by
    the watermark column, MySQL estimates them by index dives (records_in_range), not statistics."""
    where, params = chunk_predicate(plan, None, None, window)
    return f"EXPLAIN SELECT 1 FROM {mysql_ident(plan.table)} WHERE {where}", params


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
#
# Each kind has one canonical spelling that Snowflake's side (``target.sql._canonical``) produces
# byte for byte; docs/types.md lists them. Text is length-prefixed, so a value containing the
# separators (CHAR(31), CHAR(30) for NULL) cannot collide with another row's columns.

TWO_52 = 4503599627370496


def _float_canonical(x: str) -> str:
    """A double as ``[-]m'p'e`` with ``|x| = m * 2^(e-52)``, ``2^52 <= m < 2^53``: exact, and built
    only from steps IEEE 754 makes exact in any engine (ABS, division and multiplication by powers of
    two); LOG2 may be one off near a power of two, which one normalising step corrects (and the
    exponent is kept within -1074..1023, so POW(2, e) never leaves the doubles). Both
    engines' decimal spellings of a double differ (and Snowflake's keeps about 15 digits), so the
    text of the value cannot be compared; its bits can."""
    e0 = f"LEAST(GREATEST(FLOOR(LOG2(ABS({x}))), -1074), 1023)"
    m0 = f"(ABS({x}) / POW(2, {e0}) * {TWO_52})"
    # MySQL evaluates each reference to m0 anew (LOG2 and POW each time): a simple CASE evaluates its
    # operand once, so FLOOR(m0 / 2^52) (1 in range, 0 below, 2 or 3 above) costs one evaluation where
    # the two searched conditions cost two. Dividing by 2^52 is exact
    k = f"FLOOR({m0} / {TWO_52})"
    m = f"CASE {k} WHEN 1 THEN {m0} WHEN 0 THEN {m0} * 2 ELSE {m0} / 2 END"
    e = f"{e0} + CASE {k} WHEN 1 THEN 0 WHEN 0 THEN -1 ELSE 1 END"
    # m is a whole number below 2^53, which a double holds exactly: its cast to an integer is exact
    # whatever rounding the engine applies. (A cast to DECIMAL gives the same digits at about twice
    # the cost of the whole expression: MySQL converts a double to DECIMAL through its text.)
    return (
        f"CASE WHEN {x} = 0 THEN '0' ELSE CONCAT(IF({x} < 0, '-', ''), CAST(CAST({m} AS UNSIGNED) AS CHAR), "
        f"'p', CAST(CAST({e} AS SIGNED) AS CHAR)) END"
    )


def _prefixed(text: str) -> str:
    return f"CONCAT(CHAR_LENGTH({text}), ':', {text})"


def canonical_expr(c: Column) -> str:
    """The column's canonical text (NULL for NULL and for zero dates, which are copied as NULL). A JSON
    column's is its text, which a load table holds as it is (``checksums.checksum_columns``)."""
    if c.source_expr:
        return _prefixed(_utf8(_select_expr(c)))
    q = mysql_ident(c.name)
    zero = f"YEAR({q}) = 0 OR MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0"
    if c.kind in (typemap.BIT, typemap.YEAR):
        return f"CAST(CAST({q} AS UNSIGNED) AS CHAR)"
    if c.kind == typemap.DATE:
        return f"CASE WHEN {zero} THEN NULL ELSE DATE_FORMAT({q}, '%%Y-%%m-%%d') END"
    if c.kind == typemap.DATETIME:
        # microseconds since the epoch: the one spelling both engines print identically. The epoch is
        # a temporal literal: a string there is parsed again for every row
        return (
            f"CASE WHEN {zero} THEN NULL ELSE "
            f"CAST(TIMESTAMPDIFF(MICROSECOND, TIMESTAMP '1970-01-01 00:00:00', {q}) AS CHAR) END"
        )
    if c.zerofill and c.kind in (typemap.INTEGER, typemap.DECIMAL, typemap.TEXT):
        # the number without MySQL's padding ('007' is 7 in Snowflake)
        text = f"CAST({_select_expr(c)} AS CHAR)"
        return _prefixed(_utf8(text)) if c.kind == typemap.TEXT else text
    if c.kind in (typemap.TEXT, typemap.JSON):
        return _prefixed(_utf8(q))
    if c.kind in (typemap.BINARY, typemap.SPATIAL):
        return _select_expr(c)  # upper-case hex, as Snowflake's HEX_ENCODE
    if c.kind == typemap.FLOAT:
        return _float_canonical(_select_expr(c))
    return f"CAST({q} AS CHAR)"


def _md5_of(parts: list[str]) -> str:
    return f"MD5(CONCAT_WS(CHAR(31), {', '.join(parts) or chr(39) * 2}))"


def _row_md5(plan: TablePlan, json_text: bool = False) -> str:
    return _md5_of([f"COALESCE({canonical_expr(c)}, CHAR(30))" for c in checksum_columns(plan, json_text)])


def key_md5(plan: TablePlan) -> str:
    """MD5 of the key's canonical text: the same in both engines, so rows are matched (and bucketed,
    see ``pipeline.diagnose``) by it whatever order the engines sort the key in."""
    return _md5_of([canonical_expr(plan.column(k)) for k in plan.key])


def _checksum_source(plan: TablePlan, key_range: str) -> str:
    conditions = [key_range] if key_range else []
    if plan.where:
        conditions.append(f"({plan.where.replace('%', '%%')})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"FROM {mysql_ident(plan.table)}{where}"


def checksum_query(plan: TablePlan, key_range: str = "", json_text: bool = False) -> str:
    """Per-row MD5 of each row's canonical text; ``key_range`` (from ``range_predicate``) limits the rows."""
    return f"SELECT {_row_md5(plan, json_text)} {_checksum_source(plan, key_range)}"


def _first64(md5: str) -> str:
    return f"CAST(CONV(SUBSTRING({md5}, 1, 16), 16, 10) AS UNSIGNED)"


def _folded(md5: str) -> str:
    return f"SUM({_first64(md5)})"


def row_hash_hex(plan: TablePlan, json_text: bool = False) -> str:
    """One row's term of the checksum as 16 hexadecimal digits: the first 64 bits of its MD5, the
    number ``checksum_aggregate_query`` sums (NULL when the row's text overflows max_allowed_packet).
    The worker converts the digits (``source.read.RowHashes``): the server's conversion to a number
    and back to text cost it about 0.3 s a million rows (docs/performance.md)."""
    return f"LEFT({_row_md5(plan, json_text)}, 16)"


def checksum_aggregate_query(plan: TablePlan, key_range: str = "", json_text: bool = False) -> str:
    """Count and checksum folded inside MySQL: the sum of the first 64 bits of each row's MD5 (exact:
    SUM of integers is a DECIMAL), so one row comes back, not one per row; one MD5 per row."""
    return f"SELECT COUNT(*), {_folded(_row_md5(plan, json_text))} {_checksum_source(plan, key_range)}"


# ---- naming differences (pipeline.diagnose) ---------------------------------------------------


def _in_prefixes(expr: str, depth: int, count: int) -> str:
    return f"LEFT({expr}, {int(depth)}) IN ({', '.join(['%s'] * count)})" if count else ""


def _and(*conditions: str) -> str:
    return " AND ".join(c for c in conditions if c)


def bucket_checksums_query(plan: TablePlan, key_range: str, depth: int, parents: int, json_text: bool = False) -> str:
    """Count and checksum per bucket of rows, a bucket being the first ``depth`` hex digits of the
    key's MD5, over the buckets under ``parents`` bound prefixes of ``depth - 1`` digits (all when 0).
    Params: the key range's, then the parent prefixes."""
    key = key_md5(plan)
    where = _and(key_range, _in_prefixes(key, depth - 1, parents))
    return (
        f"SELECT LEFT({key}, {int(depth)}), COUNT(*), {_folded(_row_md5(plan, json_text))} "
        f"{_checksum_source(plan, where)} GROUP BY 1"
    )


def row_hashes_query(plan: TablePlan, key_range: str, depth: int, buckets: int, json_text: bool = False) -> str:
    """Key MD5, row MD5 and the key's values of the rows in ``buckets`` bound prefixes of ``depth`` digits."""
    key = key_md5(plan)
    form = key_form(plan)
    keys = ", ".join(f"CAST({form.select(k)} AS CHAR)" for k in plan.key)
    where = _and(key_range, _in_prefixes(key, depth, buckets))
    return f"SELECT {key}, {_row_md5(plan, json_text)}, {keys} {_checksum_source(plan, where)}"


def canonical_values_query(plan: TablePlan, columns: list[Column], key_range: str, nkeys: int) -> str:
    """Key MD5 and each column's canonical text, for the rows whose key MD5 is among ``nkeys`` bound ones."""
    key = key_md5(plan)
    values = ", ".join(canonical_expr(c) for c in columns)
    where = _and(key_range, f"{key} IN ({', '.join(['%s'] * nkeys)})")
    return f"SELECT {key}, {values} {_checksum_source(plan, where)}"


def json_values_query(plan: TablePlan, columns: list[Column], key_range: str) -> str:
    """Key MD5, the key's values and the JSON columns' text, in key-MD5 order (``diagnose.json_differences``
    merges it with Snowflake's, which sorts the hex digests alike)."""
    key = key_md5(plan)
    form = key_form(plan)
    keys = ", ".join(f"CAST({form.select(k)} AS CHAR)" for k in plan.key)
    values = ", ".join(_utf8(mysql_ident(c.name)) for c in columns)
    return f"SELECT {key} AS k, {keys}, {values} {_checksum_source(plan, key_range)} ORDER BY k"
