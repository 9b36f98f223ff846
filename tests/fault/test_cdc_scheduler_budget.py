"""A cdc request of more tables than the scheduler's invocation has time for (``pipeline/modes/cdc/budget.py``):
the tables it has no time for wait for the next window, with their positions where they were; the next
window starts with them, so every table is reached; a scheduler killed anyway leaves no table leased past
its deadline and a worker's timeout. The targets end exact."""

from __future__ import annotations

import time

import pytest

from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.store import StateStore
from aurora_replication.pipeline.modes.cdc import reader
from compare import assert_same

TABLES = [f"q{i:02d}" for i in range(9)]
TIMEOUT = 7  # the scheduler's; less the 2 s margin, 5 s: planning may take a fifth of it


def _make_tables(env, tables: list[str] = TABLES) -> None:
    for t in tables:
        env.sql(
            f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20))",
            f"INSERT INTO {t} SELECT seq, CONCAT('{t}-', seq) FROM seq_1_to_4",
        )


def _streaming(env, tables: list[str]) -> tuple[object, dict]:
    """``tables`` made, their initial copy taken; the stack and the cdc request of them."""
    _make_tables(env, tables)
    stack = env.start_stack({"DEADLINE_MARGIN_SECONDS": "1"})
    request = {"tables": ",".join(tables), "mode": "cdc"}
    assert stack.run(request, workers=2, timeout=180).ok
    return stack, request


def _change(env) -> None:
    for t in TABLES:
        env.sql(
            f"UPDATE {t} SET v = CONCAT(v, '+') WHERE id <= 2",
            f"DELETE FROM {t} WHERE id = 3",
            f"INSERT INTO {t} VALUES (10, '{t}-new')",
        )


def _slow_planning(monkeypatch, seconds: float) -> list[str]:
    """Each table's planning takes ``seconds`` longer: a database of many tables, in a few."""
    plan = reader.plan_cdc_table
    planned: list[str] = []

    def slow(conn, services, database, table, *a, **k):
        time.sleep(seconds)
        planned.append(table)
        return plan(conn, services, database, table, *a, **k)

    monkeypatch.setattr(reader, "plan_cdc_table", slow)
    return planned


def _window(stack, request: dict) -> tuple[dict, object, float]:
    """One window: the scheduler's answer, the run's outcome, the scheduler's invocation's seconds."""
    timed: dict[str, float] = {}
    invoke = stack.invoke

    def timed_invoke(function, event):
        started = time.monotonic()
        try:
            return invoke(function, event)
        finally:
            timed[function] = time.monotonic() - started

    answers: list[dict] = []
    stack.invoke = timed_invoke
    try:
        outcome = stack.run(request, workers=2, timeout=180, on_scheduled=answers.append)
    finally:
        stack.invoke = invoke
    return answers[0], outcome, timed["SchedulerFunction"]


def test_tables_without_time_wait_for_the_next_window_which_starts_with_them(env, monkeypatch):
    _make_tables(env)
    planned = _slow_planning(monkeypatch, 0.4)
    stack = env.start_stack({"DEADLINE_MARGIN_SECONDS": "2"}, parameters={"SchedulerTimeout": str(TIMEOUT)})
    state = StateStore(stack.table_name, stack.session.resource("dynamodb"))
    cdc = CdcState(state)
    request = {"tables": ",".join(TABLES), "mode": "cdc"}

    def windows_until_every_table_is_reached() -> int:
        reached: set[str] = set()
        first = None
        for n in range(1, len(TABLES) + 1):
            before = len(planned)
            summary, outcome, seconds = _window(stack, request)
            this = planned[before:]
            assert first is None or this[0] == first, (first, this)  # it starts where the last one stopped
            assert seconds < TIMEOUT, f"the scheduler ran {seconds:.1f} s, past its {TIMEOUT} s"
            assert outcome.ok, outcome.run["table_states"]
            # the run is of the tables reached: a deferred one is not in it, nothing written for it
            assert set(outcome.run["table_states"]) == set(this), (outcome.run["table_states"], this)
            assert not reached & set(this) or len(reached | set(this)) == len(TABLES), (reached, this)
            reached |= set(this)
            deferred = summary.get("deferred")
            if deferred is None:  # every table planned in this window
                assert set(this) == set(TABLES) and cdc.rotation(env.key(TABLES[0]).scope) is None
            if reached == set(TABLES):
                return n
            assert deferred is not None
            first = deferred["first"]
            assert first == cdc.rotation(env.key(TABLES[0]).scope) and first not in this
            assert deferred["tables"] == len(TABLES) - len(this)
            for t in set(TABLES) - set(this):  # not leased by this window
                lease = state.table.get_item(Key=env.key(t).item("LEASE")).get("Item") or {}
                assert lease.get("run_id") != summary["run_id"], t
        raise AssertionError(f"not every table was reached in {len(TABLES)} windows: {sorted(reached)}")

    # the initial copies, a few tables a window; then every table's changes, a few a window
    assert windows_until_every_table_is_reached() > 1
    _change(env)
    assert windows_until_every_table_is_reached() > 1
    for t in TABLES:
        assert_same(env, t)


@pytest.mark.parametrize("where", ["cdc_window_read", "cdc_window_uploading"])
def test_a_window_out_of_time_before_its_tables_are_sent_defers_them_with_their_positions(env, where):
    from aurora_replication_dev.local.stack import LocalContext

    tables = TABLES[:3]
    stack, request = _streaming(env, tables)
    state = StateStore(stack.table_name, stack.session.resource("dynamodb"))
    cdc = CdcState(state)
    positions = {t: (cdc.get(env.key(t)) or {}).get("position_key") for t in tables}
    for t in tables:
        env.sql(f"UPDATE {t} SET v = 'changed' WHERE id = 1", f"INSERT INTO {t} VALUES (9, 'nine')")

    scheduler = stack.load_module("SchedulerFunction")

    def out_of_time(name: str, message=None) -> None:
        if name == where:  # the window is read (and, uploading, staged): the invocation's time runs out here
            deadline = scheduler.services.deadline
            deadline.at = time.monotonic() + deadline.margin_seconds - 0.1

    scheduler.services.hooks.fault = out_of_time
    summary = scheduler.lambda_handler({**request, "run_id": "late"}, LocalContext("s", 120))
    assert {t: a["status"] for t, a in summary["tables"].items()} == dict.fromkeys(tables, "deferred"), summary
    outcome = stack.drain("late", workers=2, timeout=60, idle_timeout=3)
    assert outcome.run["status"] == "succeeded", outcome.run["table_states"]
    for t in tables:
        assert outcome.run["table_states"][t]["status"] == "declined"
        assert (cdc.get(env.key(t)) or {}).get("position_key") == positions[t]  # nothing applied, nothing skipped
        assert state.table.get_item(Key=env.key(t).item("LEASE"))["Item"].get("released_at")
    assert cdc.rotation(env.key(tables[0]).scope) == tables[0]
    after = stack.run(request, workers=2, timeout=180)  # at once: nothing holds the tables
    assert after.ok and set(after.run["table_states"]) == set(tables), after.run["table_states"]
    assert cdc.rotation(env.key(tables[0]).scope) is None
    for t in tables:
        assert_same(env, t)


def test_a_scheduler_killed_mid_window_leaves_no_table_leased_past_its_deadline(env):
    from aurora_replication_dev.local.stack import LocalContext

    tables = TABLES[:3]
    stack, request = _streaming(env, tables)
    env.sql(*(f"UPDATE {t} SET v = 'changed' WHERE id = 1" for t in tables))
    scheduler = stack.load_module("SchedulerFunction")

    def killed(name: str, message=None) -> None:
        if name == "cdc_window_read":
            raise SystemExit("simulated: the scheduler's invocation was killed at its deadline")

    scheduler.services.hooks.fault = killed
    with pytest.raises(SystemExit):
        scheduler.lambda_handler({**request, "run_id": "killed"}, LocalContext("s", 20))
    killed_at = time.time()
    state = StateStore(stack.table_name, stack.session.resource("dynamodb"))
    for t in tables:  # leased for the invocation's time and a worker's timeout, not LEASE_SECONDS (two hours)
        lease = state.table.get_item(Key=env.key(t).item("LEASE"))["Item"]
        assert lease["run_id"] == "killed" and int(lease["expires_at"]) <= killed_at + 20 + 900 + 1, lease
    assert state.run_status("killed") == "running"
    # the next window, once those leases have ended, applies the changes and ends the killed run's tables
    for t in tables:
        state.table.update_item(
            Key=env.key(t).item("LEASE"),
            UpdateExpression="SET expires_at = :past",
            ExpressionAttributeValues={":past": 1},
        )
    after = stack.run(request, workers=2, timeout=180)
    assert after.ok and set(after.run["table_states"]) == set(tables), after.run["table_states"]
    for t in tables:
        assert_same(env, t)
        assert state.get_table("killed", t)["status"] == "superseded"
    assert state.run_status("killed") == "succeeded"  # ended: nothing of it waits, another run carried it
