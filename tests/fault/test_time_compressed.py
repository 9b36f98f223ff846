"""A terabyte's copy, time-compressed: every time limit divided by 100, a table and a database shaped so
that each limit is crossed, and the run still ends published and exact (docs/scale.md).

The limits (template parameters and settings): the worker's timeout 9 s (900), the scheduler's 3 s (300),
a synchronous Snowflake statement's 6 s (600), the chunk queue's visibility 54 s (5,400), a table's lease
72 s (7,200), the stall check 18 s (1,800), a finaliser's wait 0.3 s (30), the deadline margin 0.3 s (30).
Worker containers are processes, whose invocations the local stack ends at their deadline as Lambda does.

What crosses them. The emulator runs a statement in milliseconds where Snowflake takes minutes on a
terabyte, so the test gives it Snowflake's durations at this scale (``StatementDelays`` of the launcher:
when a statement runs, never what it does): the big table's publish runs 25 s, longer than a worker's
whole invocation and than any synchronous statement may; one chunk's first COPY runs past the statement
timeout; another chunk's first attempt outlives its invocation and is ended at its deadline, its message
coming back after the visibility timeout. The run lasts longer than a table's lease, and 31 tables take
longer to plan than the scheduler may.
"""

from __future__ import annotations

import json
import time

from aurora_replication.ledger.store import StateStore
from compare import assert_same

SMALL = [f"s{i:02d}" for i in range(30)]
ROWS = 300_000
CHUNK_ROWS = 20_000  # 15 chunks of the big table, each a second or so of work
PUBLISH_SECONDS = 25

LIMITS = {
    "WorkerTimeout": "9",
    "SchedulerTimeout": "3",
    "ChunkVisibilityTimeout": "54",
    "LeaseSeconds": "72",
    "SnowflakeStatementTimeout": "6",
    "SnowflakeAsyncTimeout": "864",
}
SETTINGS = {
    "DEADLINE_MARGIN_SECONDS": "0.3",
    "ASYNC_INLINE_WAIT_SECONDS": "0.3",
    "ASYNC_POLL_SECONDS": "1",
    "STALL_SECONDS": "18",
    "REDELIVERY_BASE_SECONDS": "0",
    "REDELIVERY_MAX_SECONDS": "9",
}


def _build(env) -> None:
    env.sql(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(40), n DECIMAL(12,2), d DATETIME(6))",
        f"INSERT INTO big SELECT seq, CONCAT('value ', seq, REPEAT('x', seq % 17)), seq / 7, "
        f"'2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )
    for t in SMALL:
        env.sql(
            f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))",
            f"INSERT INTO {t} SELECT seq, CONCAT('{t}-', seq) FROM seq_1_to_3",
        )


def _delays(env) -> None:
    """Snowflake's durations at this scale, for the test's schema only."""
    rules = [
        # the terabyte's publish: longer than a worker's invocation and than a synchronous statement may run
        {"match": r'^INSERT OVERWRITE INTO "BIG"', "seconds": PUBLISH_SECONDS, "times": -1},
        # chunk 3's first COPY runs past the statement timeout (6 s): cancelled, retried
        {"match": r'^COPY INTO "_ASR_FULL_[^"]*_BIG" .*/3/data-', "seconds": 8, "times": 1},
        # chunk 5's first attempt: a COPY and a checksum of 4.5 s each, both inside the statement timeout,
        # together past the worker's: the invocation is ended at its deadline
        {"match": r'^COPY INTO "_ASR_FULL_[^"]*_BIG" .*/5/data-', "seconds": 4.5, "times": 1},
        {
            "match": r'^SELECT COUNT\(\*\), SUM\(.*"_ASR_FULL_[^"]*_BIG" WHERE "_ASR_CHUNK" = 5 AND',
            "seconds": 4.5,
            "times": 1,
        },
    ]
    (env.sf.base / "db" / "statement_delays.json").write_text(json.dumps({env.schema: rules}))


# planning a table at scale: about 30 ms measured here, plus AWS's and Aurora's latencies; at this pace
# 31 tables take longer than the scheduler's 2.7 s on any machine (on a quiet one they took about 1 s)
PLAN_SECONDS = 0.12


def _slow_planning(monkeypatch) -> None:
    from aurora_replication.pipeline import scheduler

    original = scheduler.plan_table

    def planned_at_scale(*args, **kwargs):
        time.sleep(PLAN_SECONDS)  # a modelled duration, as the emulator's statement delays are
        return original(*args, **kwargs)

    monkeypatch.setattr(scheduler, "plan_table", planned_at_scale)


def test_a_terabyte_shaped_copy_with_every_limit_divided_by_100_ends_published_and_exact(env, monkeypatch):
    _build(env)
    _delays(env)
    _slow_planning(monkeypatch)
    try:
        stack = env.start_stack(SETTINGS, parameters=LIMITS)
        started = time.monotonic()
        scheduled: list[dict] = []
        outcome = stack.run(
            {"tables": ",".join(["big", *SMALL]), "mode": "full", "chunk_rows": CHUNK_ROWS},
            workers=2,
            processes=True,
            timeout=240,
            on_scheduled=scheduled.append,
        )
        seconds = time.monotonic() - started
    finally:
        (env.sf.base / "db" / "statement_delays.json").unlink(missing_ok=True)
    states = outcome.run["table_states"]
    assert outcome.ok, {
        t: (s.get("status"), s.get("reason")) for t, s in states.items() if s.get("status") != "published"
    }
    assert outcome.run["status"] == "succeeded"
    # exact: every table equal to its source, value by value
    assert assert_same(env, "big") == ROWS
    for t in SMALL:
        assert assert_same(env, t) == 3

    state = StateStore(stack.table_name, stack.session.resource("dynamodb"))
    attempts = state.get_attempts(outcome.run_id)
    big = [a for a in attempts if a["table"] == "big"]
    # the scheduler's budget: it planned what it could in 3 s, a worker planned the rest
    assert "continued" in scheduled[0] and len(scheduled[0]["tables"]) < 1 + len(SMALL), scheduled[0]
    assert state.run_item(outcome.run_id)["planned"] == 1 + len(SMALL)
    # a statement's timeout: chunk 3's first COPY was cancelled (000630 by Snowflake, or 000604 by the
    # connector at its network_timeout), and the chunk copied again
    failed = [a for a in big if a["kind"] == "chunk" and a["status"] == "failed"]
    assert any(a["chunk"] == 3 and ("000630" in a["error"] or "000604" in a["error"]) for a in failed), failed
    # the worker's timeout: chunk 5's first invocation was ended at its deadline (nothing of it recorded); its
    # message came back when the visibility timeout ended, 54 s after it was received (about 9 s before the
    # deadline), and the chunk was copied then
    assert stack.timed_out, "no invocation reached its deadline"
    fives = [float(a["start"]) for a in big if a["kind"] == "chunk" and a["chunk"] == 5 and a["status"] != "failed"]
    assert fives and min(fives) - stack.timed_out[0] >= 54 - 9 - 2, (fives, stack.timed_out)
    # the publish ran 25 s in Snowflake, longer than an invocation (9 s) and than a synchronous statement
    # may (6 s): started by one finaliser, polled by its message sent again, several times, never twice
    table = states["big"]
    assert float(table["statement_seconds"]["publish"]) >= PUBLISH_SECONDS, table.get("statement_seconds")
    polls = [a for a in big if a["kind"] == "finalise" and a["status"] == "polling"]
    assert len(polls) >= 3, [a["status"] for a in big if a["kind"] == "finalise"]
    record = json.loads(state.table_text(outcome.run_id, "big", "long_publish") or "{}")
    assert record["query_id"] and record["restarts"] == 0 and record["rows"] == [], record
    # the lease: the run outlived LEASE_SECONDS (72 s) and kept its tables, renewed by its progress
    assert seconds > 72 and all(s["status"] == "published" for s in states.values())
