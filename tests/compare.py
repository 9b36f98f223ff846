"""Row-by-row comparison of a MySQL table with its Snowflake copy, value by value."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pymysql

from aurora_replication import typemap
from aurora_replication.identifiers import target_name
from aurora_replication.source import connect as source_connect
from aurora_replication.source import discover as source_discover
from aurora_replication.source import sql as source_sql


def _norm(kind: str, v: Any, from_mysql: bool) -> Any:
    if v is None:
        return None
    if kind in (typemap.BINARY, typemap.SPATIAL):
        return bytes(v) if isinstance(v, (bytes, bytearray)) else bytes.fromhex(v)
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode()
    if kind in (typemap.INTEGER, typemap.BIT, typemap.YEAR):
        return int(v)
    if kind == typemap.DECIMAL:
        return Decimal(str(v))
    if kind == typemap.FLOAT:
        return float(v)
    if kind == typemap.JSON:
        return json.loads(v)
    if kind == typemap.DATE:
        if from_mysql and typemap.is_zero_date(v):
            return None
        return v if isinstance(v, dt.date) else dt.date.fromisoformat(v)
    if kind == typemap.DATETIME:
        if from_mysql and typemap.is_zero_date(v):
            return None
        return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v)
    return str(v)


def fetch_pair(
    conn_mysql: Any, database: str, sf_conn: Any, table: str, case: str = "upper", targets: dict[str, str] | None = None
) -> tuple[list[Any], list[Any]]:
    """``targets``: MySQL column -> target column, where it is not the column's name (a column version)."""
    plan = source_discover.discover_table(conn_mysql, database, table, identifier_case=case)
    targets = targets or {}
    plan = plan.model_copy(
        update={"columns": [c.model_copy(update={"target": targets.get(c.name, c.target)}) for c in plan.columns]}
    )
    kinds = [c.kind for c in plan.columns]
    raw = pymysql.connect(
        host=conn_mysql.host,
        port=conn_mysql.port,
        user=conn_mysql.user,
        password=conn_mysql.password,
        database=database,
        charset="utf8mb4",
        conv=source_connect.ENCODERS_ONLY,
        init_command="SET time_zone = '+00:00'",
    )
    cols = ", ".join(source_sql._select_expr(c) for c in plan.columns)
    with raw.cursor() as cur:
        # the source builders double % for pymysql's formatting, which needs arguments (none here) to apply
        cur.execute(f"SELECT {cols} FROM {source_sql.mysql_ident(table)}", ())
        mysql_rows = [tuple(_norm(k, v, True) for k, v in zip(kinds, r, strict=True)) for r in cur.fetchall()]
    raw.close()
    cur = sf_conn.cursor()
    tcols = ", ".join('"' + c.target.replace('"', '""') + '"' for c in plan.columns)
    cur.execute(f'SELECT {tcols} FROM "{target_name(table, case)}"')
    sf_rows = [tuple(_norm(k, v, False) for k, v in zip(kinds, r, strict=True)) for r in cur.fetchall()]
    return sorted(mysql_rows, key=repr), sorted(sf_rows, key=repr)


def assert_same(env: Any, table: str, targets: dict[str, str] | None = None) -> int:
    sf = env.snowflake()
    try:
        mysql_rows, sf_rows = fetch_pair(env.db.connect(env.database), env.database, sf, table, targets=targets)
    finally:
        sf.close()
    if len(sf_rows) != len(mysql_rows):
        only_sf = [r for r in sf_rows if r not in mysql_rows][:10]
        only_mysql = [r for r in mysql_rows if r not in sf_rows][:10]
        raise AssertionError(
            f"{table}: {len(sf_rows)} rows in Snowflake, {len(mysql_rows)} in MySQL; "
            f"only in Snowflake: {only_sf!r}; only in MySQL: {only_mysql!r}"
        )
    for m, s in zip(mysql_rows, sf_rows, strict=True):
        assert m == s, f"{table}: MySQL row {m!r} != Snowflake row {s!r}"
    return len(mysql_rows)
