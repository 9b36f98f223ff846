"""History mode under faults: workers killed at each step of applying a cdc batch (and the finaliser
after its check and after committing the position). The versions end exactly as the binlog has them,
none twice, and the history keeps its rules."""

from __future__ import annotations

import threading

import pytest

HISTORY = {"acct": {"history": True}}
ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "7"}


def _run(stack, **kw):
    return stack.run({"tables": "acct", "mode": "cdc", "table_options": HISTORY}, **kw)


def _crash_once_per_thread_at(step_to_kill: str):
    crashed: set[str] = set()

    def fault(step: str, message=None) -> None:
        key = threading.current_thread().name
        if step == step_to_kill and key not in crashed and len(crashed) < 2:
            crashed.add(key)
            raise SystemExit(f"simulated worker death at {step}")

    return fault, crashed


@pytest.mark.parametrize("step", ["copied", "merged", "marked_done", "history_settled", "history_checked", "committed"])
def test_worker_killed_mid_apply_of_a_history_table(env, step):
    from aurora_replication.models import Column, TablePlan
    from aurora_replication.target.snowflake import history_sql

    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, balance INT)",
        "INSERT INTO acct SELECT seq, seq FROM seq_1_to_30",
    )
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert _run(stack, workers=1).ok
    env.sql(
        "UPDATE acct SET balance = balance + 1 WHERE id % 3 = 0",
        "UPDATE acct SET balance = balance + 1 WHERE id % 3 = 0",
        "DELETE FROM acct WHERE id % 5 = 0",
        "INSERT INTO acct VALUES (5, -5)",
    )
    fault, crashed = _crash_once_per_thread_at(step)
    outcome = _run(stack, workers=2, fault=fault, timeout=180)
    assert crashed
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["table_states"]["acct"]["chunk_count"] > 1
    cur = env.snowflake().cursor()
    cur.execute('SELECT "_ASR_OP", COUNT(*) FROM "ACCT" GROUP BY "_ASR_OP" ORDER BY 1')
    assert dict(cur.fetchall()) == {"D": 6, "I": 31, "U": 20}  # 30 copied + 1 re-insert; 10 keys x 2; 6 deletes
    cur.execute('SELECT "ID", "BALANCE" FROM "ACCT_CURRENT" ORDER BY "ID"')
    with env.mysql.cursor() as my:
        my.execute("SELECT id, balance FROM acct ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == [tuple(r) for r in my.fetchall()]
    plan = TablePlan(
        table="acct",
        target_table="ACCT",
        columns=[Column(name="id", kind="integer", precision=10, scale=0, target="ID")],
        key=["id"],
        mode="cdc",
    )
    cur.execute(history_sql.invariants(plan))
    assert [int(v or 0) for v in cur.fetchone()] == [0, 0, 0, 0, 0]


def test_finaliser_killed_after_a_truncate_of_a_history_table_repeats_it_harmlessly(env):
    """The finaliser dies once its TRUNCATE's delete versions are written: the repeat adds none, and the
    history ends as the binlog has it."""
    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, balance INT)",
        "INSERT INTO acct SELECT seq, seq FROM seq_1_to_20",
    )
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert _run(stack, workers=1).ok
    env.sql(
        "UPDATE acct SET balance = balance + 1 WHERE id % 2 = 0",
        "TRUNCATE TABLE acct",
        "INSERT INTO acct SELECT seq, -seq FROM seq_1_to_5",
    )
    fault, crashed = _crash_once_per_thread_at("truncated")
    outcome = _run(stack, workers=1, fault=fault, timeout=180)
    assert crashed
    assert outcome.ok, outcome.run["table_states"]
    cur = env.snowflake().cursor()
    cur.execute('SELECT "_ASR_OP", COUNT(*) FROM "ACCT" GROUP BY "_ASR_OP" ORDER BY 1')
    assert dict(cur.fetchall()) == {"D": 20, "I": 25, "U": 10}  # 20 closed; 20 copied + 5 after; 10 updates
    cur.execute('SELECT "ID", "BALANCE" FROM "ACCT_CURRENT" ORDER BY "ID"')
    assert [tuple(r) for r in cur.fetchall()] == [(i, -i) for i in range(1, 6)]
