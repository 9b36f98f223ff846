"""Statements that grow with the table, run asynchronously and polled across invocations.

A full run's publish (``INSERT OVERWRITE`` of the whole table), a MERGE and the check that follows it,
reconcile's delete: on a terabyte each can run longer than a Lambda invocation (900 s) and than the
connector waits for a synchronous statement (``network_timeout``, which cancels it). Each is sent with
``execute_async`` instead: Snowflake runs it to its end whether or not the session that sent it is
still there (ABORT_DETACHED_QUERY FALSE), for at most SNOWFLAKE_ASYNC_TIMEOUT_SECONDS. Its query id is
written to the run's ledger (the TABLE item, through ``Ledger``) before anything waits for it, so any
later invocation (the finaliser's own delayed message, a redelivery after a crash, a duplicate) polls
that query instead of starting another; the rows it returned are written there too once it ends, so
the steps after it run once even when the finaliser comes back.

How a statement ends, and what follows:

* SUCCESS: its rows (``run`` returns them).
* still running when the invocation may wait no longer: ``Pending`` (the finaliser sends its message
  again, delayed, and returns).
* cancelled (000604, by an operator or a client), aborted, or failed with an incident (Snowflake's side):
  started again, at most ``restarts`` times, then ``StatementInterrupted``, a one-line reason.
* out of time (000630: SNOWFLAKE_ASYNC_TIMEOUT_SECONDS, or a warehouse's own timeout):
  ``StatementTimedOut``, a one-line reason naming the setting; starting it again would time out again.
* any other error: raised as it is, its record cleared, so the message's retry starts it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import snowflake.connector.errors as sf_errors
from snowflake.connector import SnowflakeConnection
from snowflake.connector.constants import QueryStatus

from aurora_replication.cost import meter
from aurora_replication.target.snowflake import tagging
from aurora_replication.target.snowflake.statements import bindable, execute
from aurora_replication.target.warehouse import Pending, StatementInterrupted, StatementTimedOut
from aurora_replication.target.warehouse import StatementLedger as Ledger
from aurora_replication.target.warehouse import StatementRecord as Record

__all__ = ["Ledger", "LongStatements", "Pending", "Record", "StatementInterrupted", "StatementTimedOut"]

TIMEOUT_CODE = 630  # "Statement reached its statement or warehouse timeout of N second(s) and was canceled."
CANCELED_CODE = 604  # "SQL execution canceled"
# statuses after which starting the statement again may succeed (Snowflake's side stopped it)
INTERRUPTED = (QueryStatus.ABORTED, QueryStatus.ABORTING, QueryStatus.FAILED_WITH_INCIDENT, QueryStatus.DISCONNECTED)
POLL_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # the waits between two looks at a statement's status


def start(conn: SnowflakeConnection, statement: str, params: Sequence[object], timeout_seconds: int) -> str:
    """Send ``statement`` asynchronously with its own time limit (the session's STATEMENT_TIMEOUT_IN_SECONDS
    while it is sent: a statement keeps the limit it started with); returns its query id."""
    session_limit = conn.network_timeout  # ``connect`` set the session's limit to the connector's wait
    execute(conn, f"ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = {int(timeout_seconds)}")
    started = time.perf_counter()
    cur = conn.cursor()
    values = tuple(params)
    try:
        text = bindable(statement) if values else statement
        cur.execute_async(text, values or None, _statement_params=tagging.statement_params(tagging.statement_tag()))
        query_id = cur.sfqid
    finally:
        cur.close()
        meter.statement(statement, time.perf_counter() - started, tagging.statement_tag())
        if session_limit:
            execute(conn, f"ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = {int(session_limit)}")
    if not query_id:
        raise RuntimeError("Snowflake accepted an asynchronous statement without a query id")
    return str(query_id)


def status(conn: SnowflakeConnection, query_id: str) -> QueryStatus:
    """The statement's status; raises its error when it failed (``get_query_status_throw_if_error``)."""
    return conn.get_query_status_throw_if_error(query_id)


def rows_of(conn: SnowflakeConnection, query_id: str) -> list[list[Any]]:
    """What a finished statement returned (RESULT_SCAN of its query id)."""
    cur = conn.cursor()
    try:
        cur.get_results_from_sfqid(query_id)
        return [list(r) for r in cur.fetchall()]
    finally:
        cur.close()


def describe(name: str, query_id: str, error: BaseException) -> str:
    return f"the {name} statement (query {query_id}) failed: {type(error).__name__}: {error}"


class LongStatements:
    """Runs a table's long statements for one finaliser round (``round``), recorded in ``ledger``.

    ``wait_until``: the monotonic time past which this invocation does not wait for a statement (its
    deadline less a margin, and at most ASYNC_INLINE_WAIT_SECONDS from now); ``timeout_seconds``: each
    statement's limit (SNOWFLAKE_ASYNC_TIMEOUT_SECONDS); ``restarts``: how often a cancelled or aborted
    statement is started again."""

    def __init__(
        self,
        conn: SnowflakeConnection,
        ledger: Ledger,
        round: int,
        timeout_seconds: int,
        wait_until: Callable[[], float],
        restarts: int = 2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn = conn
        self.ledger = ledger
        self.round = round
        self.timeout_seconds = timeout_seconds
        self.wait_until = wait_until
        self.restarts = restarts
        self.sleep = sleep
        # seconds each statement ran, from its start to when a finaliser first saw it ended (the run's summary)
        self.seconds: dict[str, float] = {}

    def run(self, name: str, statement: str, params: Sequence[object] = (), rows: bool = True) -> list[list[Any]]:
        """The rows of ``statement`` once it has run to its end in Snowflake (once per round, whoever
        started it; ``rows=False``: none are read, for a statement whose answer is not used);
        ``Pending`` while it still runs and this invocation may wait no longer."""
        while True:
            text = self.ledger.read(name)
            record = Record.parse(text)
            if record is not None and record.round != self.round:
                record = None  # an earlier round's: this round runs its own
            if record is not None and record.rows is not None:
                self.seconds[name] = round((record.ended_at or record.started_at) - record.started_at, 3)
                return record.rows
            if record is None or record.query_id is None:
                query_id = start(self.conn, statement, params, self.timeout_seconds)
                new = Record(self.round, query_id, time.time(), record.restarts if record else 0)
                if not self.ledger.swap(name, new.text(), text):
                    continue  # another finaliser recorded its statement first: that one is polled (ours ends alike)
                record, text = new, new.text()
            assert record.query_id is not None
            try:
                state = self._wait(record.query_id)
            except sf_errors.Error as e:
                again = self._after_failure(name, record, text, e)
                if again:
                    continue
                raise
            if self.conn.is_still_running(state):
                raise Pending(name, record.query_id, record.started_at)
            if state != QueryStatus.SUCCESS:  # RESTARTED, or a status the connector does not call an error
                error = StatementInterrupted(f"the {name} statement (query {record.query_id}) ended {state.name}")
                if self._after_failure(name, record, text, error):
                    continue
                raise error
            answer = rows_of(self.conn, record.query_id) if rows else []
            done = Record(self.round, record.query_id, record.started_at, record.restarts, answer, time.time())
            self.ledger.swap(name, done.text(), text)  # a finaliser that lost this swap read the same rows
            self.seconds[name] = round(time.time() - record.started_at, 3)
            return answer

    def _wait(self, query_id: str) -> QueryStatus:
        """Look at the statement's status until it ends or this invocation may wait no longer."""
        i = 0
        while True:
            state = status(self.conn, query_id)
            if not self.conn.is_still_running(state):
                return state
            pause = POLL_SECONDS[min(i, len(POLL_SECONDS) - 1)]
            if time.monotonic() + pause > self.wait_until():
                return state
            self.sleep(pause)
            i += 1

    def _after_failure(self, name: str, record: Record, text: str | None, error: BaseException) -> bool:
        """The statement failed. Its record is cleared (a later attempt starts it again); returns whether to
        start it again now (it was cancelled or aborted, and has restarts left), or raises the one-line
        reason of a statement that cannot succeed by being started again."""
        assert record.query_id is not None
        cleared = Record(self.round, None, time.time(), record.restarts + 1)
        code = getattr(error, "errno", None)
        interrupted = isinstance(error, StatementInterrupted) or code == CANCELED_CODE
        if code == TIMEOUT_CODE:
            self.ledger.swap(name, cleared.text(), text)
            raise StatementTimedOut(
                f"the {name} statement (query {record.query_id}) ran out of time after about "
                f"{round(time.time() - record.started_at)} s and Snowflake cancelled it ({error}); raise "
                f"SNOWFLAKE_ASYNC_TIMEOUT_SECONDS (now {self.timeout_seconds}) or the warehouse's "
                "STATEMENT_TIMEOUT_IN_SECONDS, or use a larger warehouse, then run the table again"
            ) from error
        swapped = self.ledger.swap(name, cleared.text(), text)
        if interrupted and record.restarts < self.restarts:
            return swapped or True
        if interrupted:
            raise StatementInterrupted(
                f"the {name} statement (query {record.query_id}) was cancelled or aborted "
                f"{record.restarts + 1} times ({error}); find who cancels it (QUERY_HISTORY), then run the "
                "table again"
            ) from error
        return False
