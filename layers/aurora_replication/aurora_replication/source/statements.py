"""One statement run on a MySQL connection and its rows: what every source module that reads a few rows
uses. Its own module, importing nothing of the package's, so a binlog decoding process
(``source/binlog_parallel.py``) starts without the pydantic models ``source.read`` brings (about 0.1 s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pymysql

Row = tuple[Any, ...]


def query(conn: pymysql.Connection[Any], statement: str, params: Sequence[object] = ()) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(statement, tuple(params))
        return list(cur.fetchall())
