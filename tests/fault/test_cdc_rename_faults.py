"""A column renamed during a cdc stream, under faults: the reader killed after it renamed the target
column (while staging the window's first batch, before the window was defined), then the run resumed
(the window read again from the same position: the rename is not made twice, the old events' values go
to the new column); and a worker killed after a batch was merged."""

from __future__ import annotations

import threading

import pytest

from compare import assert_same

ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "5"}


def _target_columns(env) -> list[str]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = CURRENT_SCHEMA() "
            "AND table_name = 'ACCT'"
        )
        return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def _rename(env) -> None:
    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20), balance INT)",
        "INSERT INTO acct SELECT seq, CONCAT('o', seq), seq FROM seq_1_to_30",
    )


@pytest.mark.parametrize("where", ["reader", "worker"])
def test_killed_around_a_rename_then_resumed(env, where):
    from aurora_replication_dev.local.stack import LocalContext

    _rename(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    env.sql(
        "UPDATE acct SET balance = 100 + id WHERE id <= 12",  # before the rename: events name 'balance'
        "ALTER TABLE acct RENAME COLUMN balance TO amount",
        "UPDATE acct SET amount = 500 WHERE id = 20",
        "DELETE FROM acct WHERE id = 7",
    )
    if where == "reader":
        seen: list[str] = []

        def die(name: str, message=None) -> None:
            if name == "cdc_batch_staged":
                seen.append(name)
                if len(seen) == 1:
                    raise SystemExit("simulated reader death after the target's rename")

        scheduler = stack.load_module("SchedulerFunction")
        scheduler.services.hooks.fault = die
        with pytest.raises(SystemExit):
            scheduler.lambda_handler(
                {"tables": "acct", "mode": "cdc", "run_id": "dead-renamer"}, LocalContext("s", 300)
            )
        assert "AMOUNT" in _target_columns(env)  # renamed before the reader died
        outcome = stack.run({"resume_run": "dead-renamer"}, workers=2, timeout=180)
    else:
        crashed: set[str] = set()

        def fault(name: str, message=None) -> None:
            if name == "merged" and not crashed:
                crashed.add(threading.current_thread().name)
                raise SystemExit("simulated worker death after a merge")

        outcome = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, fault=fault, timeout=180)
        assert crashed
    assert outcome.ok, outcome.run["table_states"]
    columns = _target_columns(env)
    assert "AMOUNT" in columns and "BALANCE" not in columns, columns
    assert assert_same(env, "acct") == 29
    again = stack.run({"tables": "acct", "mode": "cdc"}, workers=1)  # streams on, nothing recorded twice
    assert again.ok and not again.run["table_states"]["acct"].get("schema_changes"), again.run["table_states"]
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["acct"]
    assert [(c["change"], c["column"]) for c in status["schema_changes"]] == [("column renamed", "AMOUNT")], status
