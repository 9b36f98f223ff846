"""Long statements (``target/long_statements.py``): started once per round, recorded before anything
waits for them, polled across invocations, and classified when they fail; without any server."""

from __future__ import annotations

import json
from typing import Any

import pytest
import snowflake.connector.errors as sf_errors
from snowflake.connector.constants import QueryStatus

from aurora_replication.pipeline import finalise, worker
from aurora_replication.target.snowflake import long_statements
from aurora_replication.target.snowflake.long_statements import (
    LongStatements,
    Pending,
    Record,
    StatementInterrupted,
    StatementTimedOut,
)


class Ledger:
    """The TABLE item's text attributes, with the conditional write DynamoDB makes."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.swaps = 0

    def read(self, name: str) -> str | None:
        return self.values.get(name)

    def swap(self, name: str, new: str, old: str | None) -> bool:
        if self.values.get(name) != old:
            return False
        self.values[name] = new
        self.swaps += 1
        return True


class Snowflake:
    """Statements started asynchronously and their statuses, as a script: each query id answers the
    statuses listed for it, one per look (the last one from then on), then its rows."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.script = script  # per started statement: statuses (QueryStatus or an error to raise)
        self.started: list[str] = []
        self.looks: dict[str, int] = {}
        self.statements: list[str] = []
        self.network_timeout = 600

    def is_still_running(self, status: QueryStatus) -> bool:
        return status in (QueryStatus.RUNNING, QueryStatus.QUEUED, QueryStatus.NO_DATA)

    def status(self, query_id: str) -> QueryStatus:
        statuses = self.script[self.started.index(query_id)]
        n = self.looks.get(query_id, 0)
        self.looks[query_id] = n + 1
        answer = statuses[min(n, len(statuses) - 1)]
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture
def snowflake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(script: list[list[Any]]) -> Snowflake:
        sf = Snowflake(script)

        def start(conn: Any, statement: str, params: Any, timeout: int) -> str:
            sf.statements.append(statement)
            sf.started.append(f"q{len(sf.started)}")
            return sf.started[-1]

        monkeypatch.setattr(long_statements, "start", start)
        monkeypatch.setattr(long_statements, "status", lambda conn, qid: sf.status(qid))
        monkeypatch.setattr(long_statements, "rows_of", lambda conn, qid: [[qid, 7]])
        return sf

    return use


def runner(sf: Snowflake, ledger: Ledger, round: int = 0, wait: float = 0.0) -> LongStatements:
    import time

    until = time.monotonic() + wait
    return LongStatements(sf, ledger, round, 3600, lambda: until, sleep=lambda s: None)  # type: ignore[arg-type]


def test_a_statement_is_started_once_recorded_and_polled_by_later_invocations(snowflake):
    sf = snowflake([[QueryStatus.RUNNING, QueryStatus.RUNNING, QueryStatus.SUCCESS]])
    ledger = Ledger()
    with pytest.raises(Pending) as first:
        runner(sf, ledger).run("publish", "INSERT OVERWRITE ...")
    assert first.value.query_id == "q0" and sf.started == ["q0"]
    # recorded before anything waited for it: the next invocation finds it
    assert json.loads(ledger.values["publish"])["query_id"] == "q0"
    with pytest.raises(Pending):
        runner(sf, ledger).run("publish", "INSERT OVERWRITE ...")
    assert runner(sf, ledger).run("publish", "INSERT OVERWRITE ...") == [["q0", 7]]
    assert sf.started == ["q0"]  # never a second statement
    # its rows are in the record: a finaliser that comes back later reads them, not Snowflake
    looks = dict(sf.looks)
    again = runner(sf, ledger)
    assert again.run("publish", "INSERT OVERWRITE ...") == [["q0", 7]] and sf.looks == looks
    assert "publish" in again.seconds


def test_a_statement_that_ends_within_the_wait_returns_in_the_same_invocation(snowflake):
    sf = snowflake([[QueryStatus.RUNNING, QueryStatus.RUNNING, QueryStatus.SUCCESS]])
    assert runner(sf, Ledger(), wait=60).run("merge", "MERGE ...", rows=False) == []


def test_an_earlier_rounds_record_is_not_this_rounds(snowflake):
    sf = snowflake([[QueryStatus.SUCCESS], [QueryStatus.SUCCESS]])
    ledger = Ledger()
    runner(sf, ledger, round=0).run("publish", "X")
    runner(sf, ledger, round=1).run("publish", "X")
    assert sf.started == ["q0", "q1"] and json.loads(ledger.values["publish"])["round"] == 1


def test_a_finaliser_that_loses_the_race_polls_the_winners_statement(snowflake):
    sf = snowflake([[QueryStatus.SUCCESS], [QueryStatus.SUCCESS]])
    ledger = Ledger()
    theirs = Record(0, "q9", 1.0).text()
    real_swap = ledger.swap

    def swap(name: str, new: str, old: str | None) -> bool:
        if old is None and name not in ledger.values:  # another finaliser records its statement first
            ledger.values[name] = theirs
            sf.started.append("q9")
            sf.script.append([QueryStatus.SUCCESS])
        return real_swap(name, new, old)

    ledger.swap = swap  # type: ignore[method-assign]
    assert runner(sf, ledger).run("publish", "X") == [["q9", 7]]
    assert sf.looks == {"q9": 1}  # ours (q0) runs to the same end; the recorded one is the one polled


def test_a_statement_out_of_time_fails_the_table_with_the_setting_to_raise(snowflake):
    timeout = sf_errors.ProgrammingError(msg="Statement reached its statement or warehouse timeout", errno=630)
    sf = snowflake([[timeout]])
    ledger = Ledger()
    with pytest.raises(StatementTimedOut, match="SNOWFLAKE_ASYNC_TIMEOUT_SECONDS"):
        runner(sf, ledger).run("publish", "X")
    assert json.loads(ledger.values["publish"])["query_id"] is None  # a later run starts it afresh
    assert sf.started == ["q0"]


def test_a_cancelled_statement_is_started_again_twice_then_surfaced(snowflake):
    cancelled = sf_errors.ProgrammingError(msg="SQL execution canceled", errno=604)
    sf = snowflake([[QueryStatus.SUCCESS]])
    sf.script = [[cancelled], [QueryStatus.RUNNING, QueryStatus.SUCCESS]]
    ledger = Ledger()
    assert runner(sf, ledger, wait=60).run("merge", "X") == [["q1", 7]]
    assert sf.started == ["q0", "q1"]
    sf2 = snowflake([[cancelled], [QueryStatus.ABORTED], [cancelled]])
    with pytest.raises(StatementInterrupted, match="cancelled or aborted 3 times"):
        runner(sf2, Ledger()).run("merge", "X")
    assert sf2.started == ["q0", "q1", "q2"]


def test_any_other_error_is_raised_and_its_record_cleared_for_the_retry(snowflake):
    error = sf_errors.ProgrammingError(msg="Object 'L' does not exist", errno=2003)
    sf = snowflake([[error], [QueryStatus.SUCCESS]])
    ledger = Ledger()
    with pytest.raises(sf_errors.ProgrammingError, match="does not exist"):
        runner(sf, ledger).run("publish", "X")
    assert runner(sf, ledger).run("publish", "X") == [["q1", 7]]  # the message's retry starts it again


@pytest.mark.parametrize("running, delay", [(0.2, 1), (3.4, 4), (50, 50), (3600, 60)])
def test_a_running_statement_is_looked_at_again_after_as_long_as_it_has_run(running, delay):
    assert finalise.poll_delay(running, 60) == delay


def test_a_polling_finalise_is_not_kept_under_its_idempotency_key():
    assert not worker.settled({"status": finalise.POLLING, "statement": "publish", "query_id": "q"})


def test_validation_reads_both_sides_from_the_ledger():
    chunks = {
        0: {"attempt": "a", "target_rows": 3, "target_checksum": "00000000000000aa"},
        1: {"attempt": "b", "target_rows": 2, "target_checksum": "00000000000000bb", "target_checksum_no_json": "0b"},
        2: {"attempt": "c"},  # recorded by a worker of an earlier version
    }
    loaded, no_json, missing = finalise.ledger_sums(chunks, 3)
    assert loaded == {0: (3, "00000000000000aa"), 1: (2, "00000000000000bb")}
    assert no_json == {0: (3, "00000000000000aa"), 1: (2, "0b")}
    assert missing == [2]
