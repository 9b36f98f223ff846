"""Schema discovery from information_schema: columns, types, key and watermark of a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pymysql

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import target_name
from aurora_replication.models import Column, TablePlan
from aurora_replication.source.sql import mysql_ident
from aurora_replication.source.statements import query

WATERMARK_NAMES = ("updated_at", "modified_at", "last_modified", "last_updated", "update_time", "updated", "modified")


def list_tables(conn: pymysql.Connection[Any], database: str) -> list[str]:
    rows = query(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_NAME",
        [database],
    )
    return [r[0] for r in rows]


def not_base_tables(conn: pymysql.Connection[Any], database: str, names: list[str]) -> BadInputError:
    """The refusal of ``names``, none of them a base table of ``database``: a view (or a sequence, or any
    other object that is not a base table) is said to be one, with what to do instead, since "unknown
    table" of a view the user can see in ``SHOW TABLES`` sends them looking for a typo."""
    found = {
        name: kind
        for name, kind in query(
            conn,
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE <> 'BASE TABLE'",
            [database],
        )
        if name in names
    }
    unknown = [n for n in names if n not in found]
    views = [n for n in names if str(found.get(n, "")).upper() == "VIEW"]
    others = [n for n in names if n in found and n not in views]
    parts = []
    if unknown:
        parts.append(f"unknown table(s) {', '.join(repr(t) for t in unknown)} in database {database!r}")
    if views:
        parts.append(
            f"{', '.join(repr(t) for t in views)} in database {database!r} "
            f"{'is a view' if len(views) == 1 else 'are views'}, and views are not copied (only base tables are, "
            "which is what '*' takes): copy the tables the view reads (SHOW CREATE VIEW names them) and define the "
            "view over their copies in Snowflake"
        )
    for t in others:
        kind = str(found[t]).upper()
        what = "system-versioned table (WITH SYSTEM VERSIONING)" if kind == "SYSTEM VERSIONED" else kind.lower()
        parts.append(f"{t!r} in database {database!r} is a {what}, which is not replicated (only base tables are)")
    return BadInputError("; ".join(parts))


def _json_checked_columns(conn: pymysql.Connection[Any], database: str, table: str) -> set[str]:
    """MariaDB stores JSON as LONGTEXT with a json_valid(`col`) check constraint."""
    try:
        rows = query(
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


@dataclass(frozen=True)
class Indexes:
    """A table's indexes: the columns of each, in order, and whether it is unique over non-null columns."""

    columns: dict[str, list[str]]
    unique_not_null: dict[str, bool]

    def leading(self, column: str) -> bool:
        """Whether an index starts with ``column`` (``MAX(column)`` is then one dive)."""
        return any(cols and cols[0] == column for cols in self.columns.values())

    def key(self, unusable: set[str]) -> tuple[list[str], str]:
        """The first unique index over non-null columns (the primary key first) with no column in
        ``unusable``, and what it is ("primary key", "unique index 'x'"); ``([], "")`` when none."""
        for name, cols in self.columns.items():
            if self.unique_not_null[name] and not set(cols) & unusable:
                return list(cols), ("primary key" if name == "PRIMARY" else f"unique index {name!r}")
        return [], ""


def _indexes(conn: pymysql.Connection[Any], database: str, table: str) -> Indexes:
    rows = query(
        conn,
        "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, NULLABLE FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        [database, table],
    )
    columns: dict[str, list[str]] = {}
    unique: dict[str, bool] = {}
    for name, col, non_unique, nullable in rows:
        columns.setdefault(name, []).append(col)
        unique[name] = unique.get(name, True) and str(non_unique) == "0" and nullable != "YES"
    return Indexes(columns, unique)


def rows_estimate(conn: pymysql.Connection[Any], table: str) -> int:
    """The storage engine's estimate of a table's rows now (``EXPLAIN`` of a scan; 0 when unknown)."""
    with conn.cursor() as cur:
        cur.execute(f"EXPLAIN SELECT 1 FROM {mysql_ident(table)}", ())  # noqa: S608 (a quoted name)
        names = [str(d[0]).lower() for d in cur.description or ()]
        found = list(cur.fetchall())
    if not found or "rows" not in names:
        return 0
    return int(found[0][names.index("rows")] or 0)


NO_KEY_FIX = "add a primary key or a unique index over NOT NULL columns"


def discover_table(
    conn: pymysql.Connection[Any],
    database: str,
    table: str,
    *,
    identifier_case: str = "upper",
    watermark: str | None = None,
    full_scan_max_rows: int | None = None,
) -> TablePlan:
    """Columns, types, key and watermark of one table, as a full-mode plan.

    ``full_scan_max_rows`` (``FULL_SCAN_MAX_ROWS``; None: no limit) is the most rows, by the storage
    engine's estimate, of a table one statement may read whole: a table without a usable key (copied
    as one chunk) above it is refused, and a watermark column that no index starts with is not used
    above it (``MAX`` of it would scan the table inside the scheduler; ``_pick_watermark``)."""
    rows = query(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, EXTRA, "
        "IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        [database, table],
    )
    if not rows:
        raise BadInputError(f"table {table!r} does not exist in database {database!r}; check the name and its case")
    json_cols = _json_checked_columns(conn, database, table)
    columns: list[Column] = []
    on_update: list[str] = []
    targets: dict[str, str] = {}
    not_null: list[str] = []
    for name, data_type, column_type, prec, scale, dt_prec, extra, nullable in rows:
        if str(nullable).upper() == "NO":
            not_null.append(str(name))
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
        columns.append(
            Column(
                name=name,
                kind=ct.kind,
                target=tname,
                precision=ct.precision,
                scale=ct.scale,
                size=ct.size,
                zerofill=ct.zerofill,
            )
        )
        if "on update" in str(extra or "").lower():
            on_update.append(name)
    indexes = _indexes(conn, database, table)
    scan = _ScanLimit(conn, table, full_scan_max_rows)
    # a JSON value has no order a key range can use (MySQL 8 cannot index one; MariaDB's is text
    # whose order is not the value's): such a key is not used to chunk or to match rows
    unusable = {c.name for c in columns if c.kind == typemap.JSON}
    key, key_source = indexes.key(unusable)
    notes: list[str] = []
    if not key:
        json_key = bool(indexes.key(set())[0])
        why = "its only unique key has a JSON column" if json_key else "no primary key or unique NOT NULL index"
        if not scan.fits():
            raise BadInputError(
                f"table {table!r} has {why}, so it can only be copied whole as one chunk, and it holds about "
                f"{scan.rows:,} rows (FULL_SCAN_MAX_ROWS={full_scan_max_rows:,}): refused; {NO_KEY_FIX}"
            )
        notes.append(f"table {table!r} has {why}; replicating it whole as one chunk ({NO_KEY_FIX} to chunk it)")
    elif key_source != "primary key":
        notes.append(f"table {table!r} has no primary key; using its {key_source}")
    wm = _pick_watermark(table, columns, on_update, watermark, indexes, scan, notes)
    return TablePlan(
        table=table,
        target_table=target_name(table, identifier_case),
        columns=columns,
        key=key,
        watermark=wm,
        mode="full",
        notes=notes,
        not_null=not_null,
    )


class _ScanLimit:
    """Whether a statement that reads the whole table fits ``FULL_SCAN_MAX_ROWS`` (None: no limit),
    by the row estimate of ``EXPLAIN``, read once when first needed. Not
    ``information_schema.TABLES.TABLE_ROWS``: MySQL 8 caches that for
    ``information_schema_stats_expiry`` (24 h by default); EXPLAIN asks the storage engine now."""

    def __init__(self, conn: pymysql.Connection[Any], table: str, limit: int | None) -> None:
        self.conn, self.table, self.limit = conn, table, limit
        self.rows: int | None = None

    def fits(self) -> bool:
        if self.limit is None:
            return True
        if self.rows is None:
            self.rows = rows_estimate(self.conn, self.table)
        return self.rows <= self.limit


def _pick_watermark(
    table: str,
    columns: list[Column],
    on_update: list[str],
    requested: str | None,
    indexes: Indexes,
    scan: _ScanLimit,
    notes: list[str],
) -> str | None:
    """The watermark column: the one ``watermark_columns`` names, else the first candidate (an
    ``ON UPDATE`` column, then a usual name). The scheduler reads ``MAX(column)`` while it plans:
    through an index that starts with the column that is one dive; without one it scans the table,
    which is done only for a table within ``FULL_SCAN_MAX_ROWS`` (seconds). A candidate without such
    an index on a larger table is passed over with a note naming it and the fix; a column named in
    ``watermark_columns`` there is an error instead (the request asked for it: it is not dropped
    silently, and not scanned past the limit either)."""
    usable = {c.name: c for c in columns if c.kind in (typemap.DATETIME, typemap.INTEGER, typemap.DATE)}
    fix = "add an index that starts with it"
    if requested:
        if requested not in usable:
            raise BadInputError(
                f"watermark column {requested!r} of table {table!r} does not exist or is not a "
                "date, datetime, timestamp or integer column"
            )
        if not indexes.leading(requested) and not scan.fits():
            raise BadInputError(
                f"table {table!r}: no index starts with watermark column {requested!r} (named in "
                f"watermark_columns) and the table holds about {scan.rows:,} rows (FULL_SCAN_MAX_ROWS="
                f"{scan.limit:,}), so MAX({requested}) would scan it inside the scheduler: refused; {fix}"
            )
        return requested
    lowered = {n.lower(): n for n in usable}
    candidates = [n for n in on_update if n in usable]
    candidates += [lowered[n] for n in WATERMARK_NAMES if n in lowered and lowered[n] not in candidates]
    for name in candidates:
        if indexes.leading(name) or scan.fits():
            return name
        notes.append(
            f"table {table!r}: {name!r} is not used as a watermark: no index starts with it and the table holds "
            f"about {scan.rows:,} rows (FULL_SCAN_MAX_ROWS={scan.limit:,}), so MAX({name}) would scan it; {fix}, "
            "then runs can be incremental"
        )
    return None


def avg_row_length(conn: pymysql.Connection[Any], database: str, table: str) -> int:
    """InnoDB's estimate of a row's size in bytes (0 when unknown, e.g. a table never analysed)."""
    rows = query(
        conn,
        "SELECT AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        [database, table],
    )
    return int(rows[0][0] or 0) if rows else 0
