"""A TRUNCATE in a cdc window under faults: a worker killed after the target was emptied (before the
position moved) or after a batch of the changes after it was merged. Emptying again is harmless (it
removes only rows of positions before the TRUNCATE) and the target ends exact."""

from __future__ import annotations

import threading

import pytest

from compare import assert_same

ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "5"}


@pytest.mark.parametrize("step", ["merged", "truncated", "committed"])
def test_worker_killed_around_a_truncate(env, step):
    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20))",
        "INSERT INTO acct SELECT seq, CONCAT('o', seq) FROM seq_1_to_30",
    )
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    env.sql(
        "UPDATE acct SET owner = 'before' WHERE id <= 3",
        "TRUNCATE TABLE acct",
        "INSERT INTO acct (id, owner) SELECT seq, 'after' FROM seq_1_to_12",  # keys the table held before
        "DELETE FROM acct WHERE id = 5",
    )
    crashed: set[str] = set()

    def fault(name: str, message=None) -> None:
        if name == step and not crashed:
            crashed.add(threading.current_thread().name)
            raise SystemExit(f"simulated worker death at {name}")

    outcome = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, fault=fault, timeout=180)
    assert crashed
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["table_states"]["acct"]["truncated_at"]
    assert assert_same(env, "acct") == 11
