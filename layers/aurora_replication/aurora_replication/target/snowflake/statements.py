"""Running one statement: the connector's binding, the statement's query tag and its metered time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection

from aurora_replication.cost import meter
from aurora_replication.target.snowflake import tagging


def bindable(statement: str) -> str:
    """``statement`` ready for the connector's client-side binding, which %-formats the whole text
    when values are given: every ``%`` that is not a ``%s`` placeholder is doubled. Placeholders are
    only ever outside quotes; a ``%`` in a quoted name or string (a table called ``growth%``, a
    column ``a%sb``) is always literal."""
    out: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(statement):
        ch = statement[i]
        if quote is not None:
            if ch == "\\" and quote == "'" and i + 1 < len(statement):  # an escaped character in a string
                out.append(statement[i : i + 2].replace("%", "%%"))
                i += 2
                continue
            if ch == quote:
                quote = None  # a doubled quote closes and reopens: same result
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "%" and statement.startswith("%s", i):
            out.append("%s")
            i += 2
            continue
        else:
            out.append("%%" if ch == "%" else ch)
        i += 1
    return "".join(out)


def execute(conn: SnowflakeConnection, statement: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement; ``%s`` placeholders take ``params`` (bound by the connector). The statement
    carries the query tag of the work in scope, and its elapsed time is metered (target/tagging.py)."""
    tag = tagging.statement_tag()
    started = time.perf_counter()
    cur = conn.cursor()
    values = tuple(params) if params is not None else ()
    try:
        # the connector formats the statement only when there are values; then every literal % doubles
        cur.execute(
            bindable(statement) if values else statement,
            values or None,
            _statement_params=tagging.statement_params(tag),
        )
        try:
            return list(cur.fetchall())
        except snowflake.connector.errors.InterfaceError:
            return []
    finally:
        cur.close()
        meter.statement(statement, time.perf_counter() - started, tag)
