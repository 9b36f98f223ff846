"""A request of several databases that outruns the scheduler's budget: each database's run has the rest of
its tables planned by a worker (its ``plan`` message), in that database and its Snowflake schema."""

from __future__ import annotations

import time

from aurora_replication.pipeline import scheduler

TABLES = [f"b{i:02d}" for i in range(6)]


def test_the_databases_left_by_the_scheduler_are_planned_by_workers_where_they_belong(env, monkeypatch):
    databases = [f"{env.database}_m{i}" for i in range(2)]
    for d in databases:
        env.sql(f"CREATE DATABASE `{d}`")
        for t in TABLES:
            env.sql(
                f"CREATE TABLE `{d}`.{t} (id INT PRIMARY KEY, v VARCHAR(40))",
                f"INSERT INTO `{d}`.{t} SELECT seq, CONCAT('{d}-{t}-', seq) FROM seq_1_to_3",
            )
    plan = scheduler.plan_table

    def slow(*a, **k):  # six tables take 3 s, past the 2 s budget however quick the machine is
        time.sleep(0.5)
        return plan(*a, **k)

    monkeypatch.setattr(scheduler, "plan_table", slow)
    stack = env.start_stack({"DEADLINE_MARGIN_SECONDS": "1"}, parameters={"SchedulerTimeout": "3"})
    request = {"tables": ",".join(TABLES), "mode": "full", "databases": databases, "database_mapping": "schema"}
    summary = stack.invoke("SchedulerFunction", request)
    runs = summary["runs"]
    assert all(runs[d].get("continued") for d in databases), runs  # each left some of its tables to a worker
    sf = env.snowflake()
    try:
        for d in databases:
            outcome = stack.drain(runs[d]["run_id"], workers=2, timeout=120)
            assert outcome.ok and set(outcome.run["table_states"]) == set(TABLES), outcome.run["table_states"]
            for t in TABLES:
                cur = sf.cursor()
                cur.execute(f'SELECT "V" FROM "ANALYTICS"."{d.upper()}"."{t.upper()}" ORDER BY "ID"')
                assert [r[0] for r in cur.fetchall()] == [f"{d}-{t}-{i}" for i in (1, 2, 3)], (d, t)
    finally:
        sf.close()
