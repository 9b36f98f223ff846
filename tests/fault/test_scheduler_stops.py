"""The scheduler sends each group of tables as soon as it is planned; if it stops half way (a lost
connection, a throttled write), the run still ends: the tables it sent are copied, the others are
recorded failed with the reason, and the leases it had taken are released."""

from __future__ import annotations

import pytest

from aurora_replication.pipeline import scheduler

TABLES = ["t1", "t2", "t3", "t4", "t5"]


def make_tables(env) -> None:
    for t in TABLES:
        env.sql(
            f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))",
            f"INSERT INTO {t} SELECT seq, CONCAT('{t}-', seq) FROM seq_1_to_5",
        )


def stopped_run(stack, run_id: str, error: type[BaseException]) -> dict:
    """Run every table with a scheduler that raises ``error`` half way, then let the workers drain
    what it sent: the run ends failed. Its tables' states."""
    with pytest.raises(error, match="simulated"):
        stack.run({"tables": ",".join(TABLES), "mode": "full", "run_id": run_id}, workers=2)
    outcome = stack.drain(run_id, workers=2, idle_timeout=5)
    states = outcome.run["table_states"]
    assert outcome.run["status"] == "failed", states
    return states


def test_the_first_tables_are_sent_before_the_last_is_planned(env, monkeypatch):
    make_tables(env)
    events: list[tuple[str, str]] = []
    plan, send = scheduler.plan_table, scheduler._record_and_send

    def planned(conn, services, database, table, *a, **k):
        events.append(("plan", table))
        return plan(conn, services, database, table, *a, **k)

    def sent(planning):
        events.extend(("send", p.plan.table) for p in planning.group)
        return send(planning)

    monkeypatch.setattr(scheduler, "WRITE_GROUP", 2)
    monkeypatch.setattr(scheduler, "plan_table", planned)
    monkeypatch.setattr(scheduler, "_record_and_send", sent)
    stack = env.start_stack()
    outcome = stack.run({"tables": ",".join(TABLES), "mode": "full"}, workers=2)
    assert outcome.ok, outcome.run["table_states"]
    assert events == [
        ("plan", "t1"),
        ("plan", "t2"),
        ("send", "t1"),
        ("send", "t2"),
        ("plan", "t3"),
        ("plan", "t4"),
        ("send", "t3"),
        ("send", "t4"),
        ("plan", "t5"),
        ("send", "t5"),
    ]


def test_a_scheduler_that_stops_half_way_ends_its_run_and_frees_its_leases(env, monkeypatch):
    make_tables(env)
    plan = scheduler.plan_table

    def planned(conn, services, database, table, *a, **k):
        if table == "t4":
            raise ConnectionResetError("simulated: the connection to MySQL was lost")
        return plan(conn, services, database, table, *a, **k)

    monkeypatch.setattr(scheduler, "WRITE_GROUP", 2)
    monkeypatch.setattr(scheduler, "plan_table", planned)
    stack = env.start_stack()
    # t1 and t2 were sent; t3 was planned and leased but not sent; t4 and t5 never planned
    states = stopped_run(stack, "20261205T120000Z-5c4ed1", ConnectionResetError)
    assert {t: states[t]["status"] for t in TABLES} == {
        "t1": "published",
        "t2": "published",
        "t3": "failed",
        "t4": "failed",
        "t5": "failed",
    }
    for t in ("t3", "t4", "t5"):
        assert "the scheduler stopped before sending it (ConnectionResetError: simulated" in states[t]["reason"]
    # the next run is not declined for t3: its lease was released, not left until it expires
    monkeypatch.setattr(scheduler, "plan_table", plan)
    again = stack.run({"tables": "t3", "mode": "full"}, workers=1)
    assert again.ok and again.run["table_states"]["t3"]["status"] == "published"


def test_a_group_whose_messages_were_not_all_sent_ends_failed(env, monkeypatch):
    """The group's records are written, then sending its messages fails: its tables count as unsent
    (some of their messages may be missing), so they end failed with the later ones, not running."""
    from aurora_replication.services.queue import ChunkQueue

    make_tables(env)
    send = ChunkQueue.send

    def throttled(self, bodies, tables=None, delay_seconds=0):
        if tables and "t3" in tables:
            raise TimeoutError("simulated: SendMessageBatch timed out")
        return send(self, bodies, tables, delay_seconds)

    monkeypatch.setattr(scheduler, "WRITE_GROUP", 2)
    monkeypatch.setattr(ChunkQueue, "send", throttled)
    states = stopped_run(env.start_stack(), "20261205T120000Z-5c4ed2", TimeoutError)
    assert [states[t]["status"] for t in TABLES] == ["published", "published", "failed", "failed", "failed"]
    assert "(TimeoutError: simulated" in states["t3"]["reason"]
