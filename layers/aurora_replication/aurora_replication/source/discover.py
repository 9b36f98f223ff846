"""Schema discovery from information_schema: columns, types, key and watermark of a table."""

from __future__ import annotations

from typing import Any

import pymysql

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import target_name
from aurora_replication.models import Column, TablePlan
from aurora_replication.source.read import query

WATERMARK_NAMES = ("updated_at", "modified_at", "last_modified", "last_updated", "update_time", "updated", "modified")


def list_tables(conn: pymysql.Connection[Any], database: str) -> list[str]:
    rows = query(
        conn,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_NAME",
        [database],
    )
    return [r[0] for r in rows]


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


def _key_columns(conn: pymysql.Connection[Any], database: str, table: str) -> tuple[list[str], str]:
    rows = query(
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
    rows = query(
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
        columns.append(
            Column(name=name, kind=ct.kind, snowflake_type=ct.snowflake_type, target=tname, zerofill=ct.zerofill)
        )
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
    rows = query(
        conn,
        "SELECT AVG_ROW_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        [database, table],
    )
    return int(rows[0][0] or 0) if rows else 0
