"""Every statement of a run carries a QUERY_TAG naming its run, table and step (``meter.query_tag``).

The tag is a session parameter: before a statement whose work differs from the session's current
tag, one ``ALTER SESSION SET QUERY_TAG`` moves it (a connection reused across tables or steps
follows along); outside a run's work the session goes back to the application's plain tag, which
``connect`` sets at login. The ALTER statement itself is counted as one of our statements.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aurora_replication import meter
from aurora_replication.target import cost_sql

_session_tags: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
# connections inside an explicit transaction, which should hold only DML and queries (Snowflake's
# "Transactions"): the tag is not moved there; the statements keep the tag the transaction began with
_in_transaction: weakref.WeakSet[Any] = weakref.WeakSet()


@contextmanager
def held(conn: Any) -> Iterator[None]:
    """Within the block (an explicit transaction) the session's tag stays as it is."""
    try:
        _in_transaction.add(conn)
    except TypeError:
        yield
        return
    try:
        yield
    finally:
        _in_transaction.discard(conn)


def _current(conn: Any) -> str:
    try:
        return _session_tags.get(conn, meter.APP_TAG)
    except TypeError:  # an object that cannot be weakly referenced: never cached
        return ""


def _remember(conn: Any, tag: str) -> None:
    try:
        _session_tags[conn] = tag
    except TypeError:
        pass


def before(conn: Any) -> str:
    """Set the session's QUERY_TAG for the work in scope when it differs; returns the tag in force."""
    wanted = meter.current_tag() or meter.APP_TAG
    current = _current(conn)
    if current == wanted:
        return wanted
    try:
        if conn in _in_transaction:
            return current
    except TypeError:
        pass
    statement = cost_sql.set_query_tag(wanted)
    started = time.perf_counter()
    cur = conn.cursor()
    try:
        cur.execute(statement)
    finally:
        cur.close()
    _remember(conn, wanted)
    meter.statement(statement, time.perf_counter() - started, wanted)
    return wanted
