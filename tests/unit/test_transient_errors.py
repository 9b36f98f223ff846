"""Which errors are retried in place: each driver's side classifies its own, ``Services`` joins them."""

from __future__ import annotations

import pymysql
import pytest
import snowflake.connector.errors as sf_errors

from aurora_replication import retry
from aurora_replication.services.connections import TRANSIENT
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target_client


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), True),
        (pymysql.err.OperationalError(1213, "Deadlock found"), True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), True),
        (pymysql.err.OperationalError(1045, "Access denied"), False),  # re-reads the secret instead
        (pymysql.err.ProgrammingError(1064, "syntax"), False),
        (pymysql.err.InterfaceError(0, ""), True),
        (sf_errors.OperationalError(msg="service unavailable"), True),
        (sf_errors.ProgrammingError(msg="SQL compilation error"), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("x"), False),
    ],
)
def test_the_union_retries_each_drivers_transient_errors_only(error: BaseException, transient: bool) -> None:
    assert TRANSIENT(error) is transient


def test_each_side_knows_only_its_own_driver() -> None:
    assert source_connect.is_transient(pymysql.err.OperationalError(2006, "gone away"))
    assert not source_connect.is_transient(sf_errors.OperationalError(msg="x"))
    assert target_client.is_transient(sf_errors.OperationalError(msg="x"))
    assert not target_client.is_transient(pymysql.err.OperationalError(2006, "gone away"))
    assert not retry.is_transient(pymysql.err.OperationalError(2006, "gone away"))


def test_call_with_retries_uses_the_classifier_it_is_given() -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise pymysql.err.OperationalError(2013, "lost")
        return "ok"

    assert retry.call_with_retries(flaky, 5, 0.001, 0.001, "test", transient=TRANSIENT) == "ok" and calls["n"] == 3
    calls["n"] = 0
    with pytest.raises(pymysql.err.OperationalError):
        retry.call_with_retries(flaky, 5, 0.001, 0.001, "test")  # the network-only default: not retried
    assert calls["n"] == 1
