"""The scheduler stays inside its budget: it stops planning before its deadline (its context's remaining
time less DEADLINE_MARGIN_SECONDS) and a worker plans the rest from the run's record (a ``plan``
message); a scheduler killed at any point leaves no table leased, and its run is carried on by the
``plan`` message it sent, delayed until its deadline, when that deadline has passed."""

from __future__ import annotations

import time

from aurora_replication.ledger.store import StateStore
from aurora_replication.pipeline import scheduler

TABLES = [f"b{i:02d}" for i in range(12)]


def make_tables(env) -> None:
    for t in TABLES:
        env.sql(
            f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))",
            f"INSERT INTO {t} SELECT seq, CONCAT('{t}-', seq) FROM seq_1_to_3",
        )


def slow_planning(monkeypatch, seconds: float, kill_at: str | None = None) -> list[str]:
    """Each table's planning takes ``seconds`` longer; planning ``kill_at`` kills the invocation (an
    exception nothing catches, as a Lambda timeout ends it: no clean-up runs)."""
    plan = scheduler.plan_table
    planned: list[str] = []

    def slow(conn, services, database, table, *a, **k):
        if table == kill_at and kill_at not in planned:
            planned.append(table)
            raise SystemExit("simulated: the scheduler's invocation was killed at its deadline")
        time.sleep(seconds)
        planned.append(table)
        return plan(conn, services, database, table, *a, **k)

    monkeypatch.setattr(scheduler, "plan_table", slow)
    monkeypatch.setattr(scheduler, "WRITE_GROUP", 3)
    return planned


def test_a_scheduler_out_of_budget_leaves_the_rest_to_a_worker(env, monkeypatch):
    make_tables(env)
    slow_planning(monkeypatch, 0.3)
    # a 4 s scheduler that stops 2 s before its deadline plans about six of the twelve tables (the margin
    # covers what follows the last table planned on a loaded machine: its records and messages written)
    stack = env.start_stack({"DEADLINE_MARGIN_SECONDS": "2"}, parameters={"SchedulerTimeout": "4"})
    # the container's cold start (its import) comes before the invocation's context, and its clock
    stack.handlers["SchedulerFunction"] = stack.load_handler("SchedulerFunction")
    started = time.monotonic()
    summary = stack.invoke("SchedulerFunction", {"tables": ",".join(TABLES), "mode": "full"})
    assert time.monotonic() - started < 4, "the scheduler ran past its budget"
    assert summary["continued"].startswith("tables ") and len(summary["tables"]) < len(TABLES)
    outcome = stack.drain(summary["run_id"], workers=2, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["status"] == "succeeded"
    assert set(outcome.run["table_states"]) == set(TABLES)
    run = StateStore(stack.table_name, stack.session.resource("dynamodb")).run_item(summary["run_id"])
    assert run["planned"] == len(TABLES)


def test_a_scheduler_killed_half_way_leaves_no_lease_and_its_run_is_carried_on(env, monkeypatch):
    make_tables(env)
    slow_planning(monkeypatch, 0.05, kill_at="b05")
    stack = env.start_stack({"DEADLINE_MARGIN_SECONDS": "1"}, parameters={"SchedulerTimeout": "4"})
    try:
        stack.invoke("SchedulerFunction", {"tables": ",".join(TABLES), "mode": "full", "run_id": "r-killed"})
    except SystemExit:
        pass
    else:
        raise AssertionError("the scheduler was not killed")
    killed_at = time.time()
    state = StateStore(stack.table_name, stack.session.resource("dynamodb"))
    # b03 and b04 were leased and planned, not recorded: their leases end with the invocation's deadline
    # (and a minute), never LEASE_SECONDS later
    for t in ("b03", "b04"):
        lease = state.table.get_item(Key=env.key(t).item("LEASE"))["Item"]
        assert lease["run_id"] == "r-killed" and int(lease["expires_at"]) <= killed_at + 4 + 61, lease
    assert state.run_status("r-killed") == "running"
    # the plan message it sent before planning, delayed until its deadline, carries the run on
    outcome = stack.drain("r-killed", workers=2, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["status"] == "succeeded", str(
        {k: v for k, v in state.run_item("r-killed").items() if k not in ("scope", "tables", "request")}
    )
    assert set(outcome.run["table_states"]) == set(TABLES)
    for t in TABLES:  # finished: every lease released
        assert state.table.get_item(Key=env.key(t).item("LEASE"))["Item"].get("released_at") is not None
