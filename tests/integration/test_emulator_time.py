"""The emulator keeps Snowflake's documented time behaviour (``local/snowflake_emulator._timed_app``):
asynchronous statements run on after their session closes and report their status and errors;
STATEMENT_TIMEOUT_IN_SECONDS cancels with 000630; the connector's cancel with 000604; and an
INSERT OVERWRITE outside a transaction is all or nothing."""

from __future__ import annotations

import time

import pytest
import snowflake.connector
from snowflake.connector.constants import QueryStatus

# about two seconds of work for the emulator whatever the machine's other load is not: a cross join
# whose every pair is hashed
SLOW = (
    "SELECT COUNT(*) FROM (SELECT * FROM N WHERE ID < {n}) a, (SELECT * FROM N WHERE ID < {n}) b "
    "WHERE MD5(TO_VARCHAR(a.ID) || '-' || TO_VARCHAR(b.ID)) < '0001'"
)


def _connect(env, **options) -> snowflake.connector.SnowflakeConnection:
    return snowflake.connector.connect(
        user="fake",
        password="snow",
        account="emulator",
        host="127.0.0.1",
        port=env.sf.port,
        protocol="http",
        database="ANALYTICS",
        schema=env.schema,
        **options,
    )


@pytest.fixture
def numbers(env):
    conn = _connect(env)
    cur = conn.cursor()
    cur.execute("CREATE TABLE N (ID NUMBER(18,0))")
    cur.execute("INSERT INTO N SELECT SEQ8() FROM TABLE(GENERATOR(ROWCOUNT => 20000))")
    conn.close()
    return env


def _until_ended(conn, query_id: str, limit: float = 60) -> QueryStatus:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = conn.get_query_status(query_id)
        if not conn.is_still_running(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"query {query_id} still running after {limit} s")


def test_an_asynchronous_statement_runs_on_after_its_session_and_its_result_is_read_elsewhere(numbers):
    first = _connect(numbers)
    cur = first.cursor()
    query_id = cur.execute_async(SLOW.format(n=3000))["queryId"]
    first.close()  # the session that sent it is gone (ABORT_DETACHED_QUERY FALSE: it runs on)
    other = _connect(numbers)
    assert other.is_still_running(other.get_query_status(query_id))
    assert _until_ended(other, query_id) == QueryStatus.SUCCESS
    reader = other.cursor()
    reader.get_results_from_sfqid(query_id)
    (count,) = reader.fetchone()
    sync = other.cursor().execute(SLOW.format(n=3000)).fetchone()
    assert count == sync[0] and count > 0
    other.close()


def test_statement_timeouts_cancel_synchronous_and_asynchronous_statements(numbers):
    conn = _connect(numbers, session_parameters={"STATEMENT_TIMEOUT_IN_SECONDS": 1})
    started = time.monotonic()
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as sync:
        conn.cursor().execute(SLOW.format(n=6000))
    assert sync.value.errno == 630 and "timeout of 1 second(s)" in str(sync.value)
    assert time.monotonic() - started < 10
    cur = conn.cursor()
    cur.execute("ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = 1")
    query_id = cur.execute_async(SLOW.format(n=6000))["queryId"]
    assert _until_ended(conn, query_id) == QueryStatus.FAILED_WITH_ERROR
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as failed:
        conn.get_query_status_throw_if_error(query_id)
    assert failed.value.errno == 630
    conn.close()
    # the connector's own limit (network_timeout) cancels the statement in Snowflake: 000604
    waiting = _connect(numbers, network_timeout=1)
    with pytest.raises(snowflake.connector.errors.ProgrammingError) as cancelled:
        waiting.cursor().execute(SLOW.format(n=6000))
    assert cancelled.value.errno == 604
    waiting.close()


def test_an_insert_overwrite_outside_a_transaction_is_all_or_nothing(numbers):
    conn = _connect(numbers)
    cur = conn.cursor()
    cur.execute("CREATE TABLE T (ID NUMBER(18,0))")
    cur.execute("INSERT INTO T VALUES (1), (2)")
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        cur.execute("INSERT OVERWRITE INTO T SELECT ID FROM N WHERE CAST(TO_VARCHAR(ID) || 'x' AS NUMBER) = 1")
    assert cur.execute("SELECT ID FROM T ORDER BY ID").fetchall() == [(1,), (2,)]
    conn.close()
