"""Everything that reads MySQL: connections, schema discovery, chunk bounds, streaming, checksums."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pymysql
import pymysql.converters
import pymysql.cursors

from aurora_replication import typemap
from aurora_replication.identifiers import mysql_ident as _mysql_ident
from aurora_replication.identifiers import target_name
from aurora_replication.keyset import range_predicate
from aurora_replication.models import BadInputError, Column, TablePlan
from aurora_replication.secrets import MySQLSettings

AUTH_ERRORS = {1045, 1044, 1698}
WATERMARK_NAMES = ("updated_at", "modified_at", "last_modified", "last_updated", "update_time", "updated", "modified")
FETCH_BATCH = 5000
Row = tuple[Any, ...]
# parameters are still escaped by type; results are never converted (text stays text, exactly)
ENCODERS_ONLY: dict[Any, Any] = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def mysql_ident(name: str) -> str:
    """A quoted identifier safe inside pymysql's %-formatted query text (``%`` doubled)."""
    return _mysql_ident(name).replace("%", "%%")


def connect(settings: MySQLSettings, read_timeout: int = 600) -> pymysql.Connection[Any]:
    """A connection that returns every value as text (no client-side conversion), in UTC.

    With TLS (the default except for loopback hosts) the server's certificate must chain to the
    CA bundle (the RDS global bundle unless ``MYSQL_CA_BUNDLE`` says otherwise) and name the host.
    """
    ssl_ctx: ssl.SSLContext | None = None
    if settings.tls:
        bundle = settings.ca_bundle or str(MySQLSettings.PACKAGED_CA_BUNDLE)
        if bundle == MySQLSettings.SYSTEM_CA_STORE:
            ssl_ctx = ssl.create_default_context()
        elif not os.path.isfile(bundle):
            raise BadInputError(
                f"MySQL TLS CA bundle {bundle!r} does not exist: run `make ca-bundle` before `sam build` (it puts "
                "the RDS global bundle into the layer), or set MYSQL_CA_BUNDLE to a PEM file (`system` for the "
                "system CA store), or set \"tls\": false in the source secret"
            )
        else:
            ssl_ctx = ssl.create_default_context(cafile=bundle)
        ssl_ctx.check_hostname = True
        ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.username,
        password=settings.password,
        database=settings.dbname,
        charset="utf8mb4",
        autocommit=True,
        conv=ENCODERS_ONLY,
        ssl=ssl_ctx,
        connect_timeout=10,
        read_timeout=read_timeout,
        init_command="SET time_zone = '+00:00'",
    )


def connect_with_rotation(get_settings: Callable[[bool], MySQLSettings]) -> pymysql.Connection[Any]:
    """Connect; after an authentication failure re-read the secret once (it may have rotated)."""
    try:
        return connect(get_settings(False))
    except pymysql.err.OperationalError as e:
        if e.args and e.args[0] in AUTH_ERRORS:
            return connect(get_settings(True))
        raise


def _query(conn: pymysql.Connection[Any], sql: str, params: Sequence[object] = ()) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(sql, tuple(params))
        return list(cur.fetchall())


def list_tables(conn: pymysql.Connection[Any], database: str) -> list[str]:
    rows = _query(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_NAME",
        [database],
    )
    return [r[0] for r in rows]


def _json_checked_columns(conn: pymysql.Connection[Any], database: str, table: str) -> set[str]:
    """MariaDB stores JSON as LONGTEXT with a json_valid(`col`) check constraint."""
    try:
        rows = _query(
            conn,
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            [database, table],
        )
    except pymysql.err.MySQLError:
        return set()  # MySQL 8 has no TABLE_NAME there, and reports JSON columns as json
    found = set()
    for (clause,) in rows:
        text = str(clause).strip()
        if text.lower().startswith("json_valid(`") and text.endswith("`)"):
            found.add(text[len("json_valid(`") : -2].replace("``", "`"))
    return found


def _key_columns(conn: pymysql.Connection[Any], database: str, table: str) -> tuple[list[str], str]:
    rows = _query(
        conn,
        "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        [database, table],
    )
    indexes: dict[str, list[tuple[str, bool, bool]]] = {}
    for name, col, non_unique, nullable in rows:
        indexes.setdefault(name, []).append((col, str(non_unique) == "0", nullable == "YES"))
    for name, cols in indexes.items():
        if all(unique and not nullable for _, unique, nullable in cols):
            return [c for c, _, _ in cols], ("primary key" if name == "PRIMARY" else f"unique index {name!r}")
    return [], ""


def discover_table(
    conn: pymysql.Connection[Any],
    database: str,
    table: str,
    *,
    identifier_case: str = "upper",
    watermark: str | None = None,
) -> TablePlan:
    """Columns, types, key and watermark of one table, as a full-mode plan."""
    rows = _query(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, EXTRA "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        [database, table],
    )
    if not rows:
        raise BadInputError(f"table {table!r} does not exist in database {database!r}; check the name and its case")
    json_cols = _json_checked_columns(conn, database, table)
    columns: list[Column] = []
    on_update: list[str] = []
    targets: dict[str, str] = {}
    for name, data_type, column_type, prec, scale, dt_prec, extra in rows:
        ct = typemap.map_column(
            name,
            data_type,
            column_type,
            int(prec) if prec is not None else None,
            int(scale) if scale is not None else None,
            int(dt_prec) if dt_prec is not None else None,
            is_json=name in json_cols,
        )
        tname = target_name(name, identifier_case)
        if tname in targets:
            raise BadInputError(
                f"columns {targets[tname]!r} and {name!r} of table {table!r} both map to {tname!r} in Snowflake; "
                "set TARGET_IDENTIFIER_CASE=preserve"
            )
        targets[tname] = name
        columns.append(Column(name=name, kind=ct.kind, snowflake_type=ct.snowflake_type, target=tname))
        if "on update" in str(extra or "").lower():
            on_update.append(name)
    key, key_source = _key_columns(conn, database, table)
    notes: list[str] = []
    by_name = {c.name: c for c in columns}
    if key and any(by_name[k].kind in (typemap.BINARY, typemap.FLOAT, typemap.JSON) for k in key):
        notes.append(f"{key_source} of table {table!r} has a binary or float column; copying it whole as one chunk")
        key = []
    elif not key:
        notes.append(f"table {table!r} has no primary key; replicating it whole as one chunk")
    elif key_source != "primary key":
        notes.append(f"table {table!r} has no primary key; using its {key_source}")
    wm = _pick_watermark(table, columns, on_update, watermark)
    return TablePlan(
        table=table,
        target_table=target_name(table, identifier_case),
        columns=columns,
        key=key,
        watermark=wm,
        mode="full",
        notes=notes,
    )


def _pick_watermark(table: str, columns: list[Column], on_update: list[str], requested: str | None) -> str | None:
    usable = {c.name: c for c in columns if c.kind in (typemap.DATETIME, typemap.INTEGER, typemap.DATE)}
    if requested:
        if requested not in usable:
            raise BadInputError(
                f"watermark column {requested!r} of table {table!r} does not exist or is not a "
                "date, datetime, timestamp or integer column"
            )
        return requested
    for name in on_update:
        if name in usable:
            return name
    lowered = {n.lower(): n for n in usable}
    for candidate in WATERMARK_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    return None


def avg_row_length(conn: pymysql.Connection[Any], database: str, table: str) -> int:
    """InnoDB's estimate of a row's size in bytes (0 when unknown, e.g. a table never analysed)."""
    rows = _query(
        conn,
        "SELECT AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        [database, table],
    )
    return int(rows[0][0] or 0) if rows else 0


def adaptive_chunk_rows(avg_row_bytes: int, target_bytes: int, fallback: int) -> int:
    """Rows per chunk so that a chunk holds about ``target_bytes`` of table data: wide rows get
    fewer rows per chunk, narrow rows more (1,000 to 10,000,000); ``fallback`` when the row size is
    unknown or the target is 0 (off)."""
    if avg_row_bytes <= 0 or target_bytes <= 0:
        return fallback
    return max(1_000, min(10_000_000, target_bytes // avg_row_bytes))


def is_empty(conn: pymysql.Connection[Any], table: str) -> bool:
    return not _query(conn, f"SELECT 1 FROM {mysql_ident(table)} LIMIT 1")


def chunk_bounds(
    conn: pymysql.Connection[Any], table: str, key: list[str], chunk_rows: int
) -> list[tuple[list[str] | None, list[str] | None]]:
    """Key ranges of about ``chunk_rows`` rows, found by walking the key index (one probe per chunk)."""
    if not key:
        return [(None, None)]
    cols = ", ".join(mysql_ident(k) for k in key)
    bounds: list[tuple[list[str] | None, list[str] | None]] = []
    lower: list[str] | None = None
    while True:
        where, params = range_predicate(key, lower, None, mysql_ident)
        rows = _query(
            conn,
            f"SELECT {cols} FROM {mysql_ident(table)} WHERE {where} ORDER BY {cols} LIMIT 1 OFFSET {int(chunk_rows) - 1}",
            params,
        )
        if not rows:
            bounds.append((lower, None))
            return bounds
        upper = [str(v) for v in rows[0]]
        bounds.append((lower, upper))
        lower = upper


def max_watermark(conn: pymysql.Connection[Any], table: str, column: str) -> str | None:
    rows = _query(conn, f"SELECT MAX({mysql_ident(column)}) FROM {mysql_ident(table)}")
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def window_start(
    conn: pymysql.Connection[Any], plan: TablePlan, stored: str | None, overlap_seconds: int
) -> str | None:
    """The lower edge of an incremental window: the stored watermark less the overlap for late commits."""
    if stored is None or not plan.watermark:
        return stored
    kind = plan.column(plan.watermark).kind
    if kind == typemap.DATETIME and overlap_seconds:
        rows = _query(conn, "SELECT CAST(%s AS DATETIME(6)) - INTERVAL %s SECOND", [stored, overlap_seconds])
        return str(rows[0][0])
    return stored


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


def _chunk_source(
    plan: TablePlan,
    lower: list[str] | None,
    upper: list[str] | None,
    window: tuple[str | None, str | None] | None,
) -> tuple[str, list[object]]:
    """``FROM table WHERE ...`` of one chunk: its key range, watermark window and row filter."""
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
    if plan.where:
        where += f" AND ({plan.where.replace('%', '%%')})"
    return f"FROM {mysql_ident(plan.table)} WHERE {where}", params


def stream_rows(conn: pymysql.Connection[Any], sql: str, params: Sequence[object]) -> Iterator[Row]:
    """Rows from an unbuffered cursor: memory stays flat whatever the chunk size."""
    cur = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cur.execute(sql, tuple(params))
        while batch := cur.fetchmany(FETCH_BATCH):
            yield from batch
    finally:
        cur.close()


# ---- validation ------------------------------------------------------------------------------

CHECKSUM_KINDS = frozenset(
    {
        typemap.INTEGER,
        typemap.DECIMAL,
        typemap.BIT,
        typemap.YEAR,
        typemap.TEXT,
        typemap.TIME,
        typemap.DATE,
        typemap.DATETIME,
    }
)


def checksum_columns(plan: TablePlan) -> list[Column]:
    """Columns whose canonical text both engines produce identically (floats, JSON and binary are counted only)."""
    return [c for c in plan.columns if c.checksum and c.kind in CHECKSUM_KINDS]


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


def fold_sums(count: Any, high: Any, low: Any) -> tuple[int, str]:
    """The ``fold_hashes`` result from the in-database sums of the 32-bit halves."""
    total = ((int(high or 0) << 32) + int(low or 0)) & 0xFFFFFFFFFFFFFFFF
    return int(count or 0), f"{total:016x}"


def fold_hashes(hashes: Iterator[str] | list[str]) -> tuple[int, str]:
    """Row count and an order-independent checksum from per-row MD5 hex digests."""
    total = 0
    count = 0
    for h in hashes:
        total = (total + int(h[:16], 16)) & 0xFFFFFFFFFFFFFFFF
        count += 1
    return count, f"{total:016x}"


def table_checksum(conn: pymysql.Connection[Any], plan: TablePlan) -> tuple[int, str]:
    return _aggregate_checksum(conn, plan, checksum_aggregate_query(plan), [])


def range_checksums(
    conn: pymysql.Connection[Any], plan: TablePlan, bounds: Sequence[tuple[Sequence[object] | None, Sequence[object] | None]]
) -> list[tuple[int, str]]:
    """Row count and checksum of every chunk's key range (one index range scan each)."""
    out = []
    for lower, upper in bounds:
        where, params = range_predicate(plan.key, lower, upper, mysql_ident) if plan.key else ("", [])
        out.append(_aggregate_checksum(conn, plan, checksum_aggregate_query(plan, where), params))
    return out


def add_checksums(parts: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """The table's count and checksum from its chunks' (the fold is a sum, so it adds up)."""
    total = sum(int(h, 16) for _, h in parts) & 0xFFFFFFFFFFFFFFFF
    return sum(c for c, _ in parts), f"{total:016x}"


def stage_path_component(name: str) -> str:
    """A stage-path-safe, unique spelling of a table name."""
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)[:40]
    return f"{safe}_{hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]}"
