"""The cdc window's share of the scheduler's invocation (``pipeline/modes/cdc/budget.py``)."""

from __future__ import annotations

import time

from aurora_replication.pipeline.modes.cdc import budget
from aurora_replication.services.deadline import Deadline


def test_rotate_starts_at_the_first_deferred_table_and_wraps_round():
    names = ["a", "b", "c", "d"]
    assert budget.rotate(names, "c") == ["c", "d", "a", "b"]
    assert budget.rotate(names, None) == names
    assert budget.rotate(names, "gone") == names  # a table no longer named: the request's order


def test_first_deferred_is_in_the_order_the_window_took():
    assert budget.first_deferred(["c", "d", "a", "b"], {"a", "d"}) == "d"
    assert budget.first_deferred(["a", "b"], set()) is None


def test_without_a_deadline_every_table_is_planned_and_the_read_keeps_its_limit():
    b = budget.WindowBudget(Deadline(margin_seconds=30))
    b.planned = 10_000
    assert b.may_plan() and b.may_send()
    assert b.read_seconds(120) == 120


def test_planning_stops_at_its_share_but_always_takes_one_table():
    deadline = Deadline(margin_seconds=1, at=time.monotonic() + 11)  # 10 s left after the margin
    b = budget.WindowBudget(deadline)
    b.started -= 10 * budget.PLAN_SHARE  # its share is spent
    assert b.may_plan()  # the first table
    b.planned = 1
    assert not b.may_plan()
    b.started += 10 * budget.PLAN_SHARE
    assert b.may_plan()


def test_the_read_leaves_time_to_send_and_sending_stops_at_the_deadline():
    deadline = Deadline(margin_seconds=1, at=time.monotonic() + 41)  # 40 s left
    b = budget.WindowBudget(deadline)
    assert 19 <= b.read_seconds(120) <= 20  # half of what is left
    assert b.read_seconds(5) == 5
    deadline.at = time.monotonic() + 1.5  # half a second left
    assert b.read_seconds(120) == 1.0 and b.may_send()
    deadline.at = time.monotonic() + 0.5  # past the deadline less its margin
    assert not b.may_send()


def test_a_lease_lasts_the_invocation_and_a_workers_timeout_never_past_lease_seconds():
    from types import SimpleNamespace

    settings = SimpleNamespace(lease_seconds=7200, deadline_margin_seconds=30, worker_timeout_seconds=900)
    deadline = Deadline(margin_seconds=30, at=time.monotonic() + 300)
    services = SimpleNamespace(settings=settings, deadline=deadline)
    assert 1195 <= budget.lease_seconds(services) <= 1200  # 300 s left, and 900 s for a worker to take it
    services.deadline = Deadline(margin_seconds=30)  # no deadline (the CLI): LEASE_SECONDS
    assert budget.lease_seconds(services) == 7200
    settings.lease_seconds = 600
    services.deadline = deadline
    assert budget.lease_seconds(services) == 600
