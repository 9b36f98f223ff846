"""The follow loop of a cdc request with ``follow_seconds`` (``pipeline/modes/cdc/follow.py``), with the scheduler,
the ledger and the binlog's end played by fakes: when a next window is read, and when following ends."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from aurora_replication.pipeline.modes.cdc import follow as cdc_follow


class Fake:
    """A scheduler whose windows end as ``outcomes`` say, and a binlog whose end moves as ``ends`` say."""

    def __init__(self, outcomes: list[str], ends: list[int], seconds_left: float = 1000.0) -> None:
        self.outcomes = iter(outcomes)
        self.ends = iter(ends)
        self.status: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.ids = (f"r{i}" for i in itertools.count())
        self.services = SimpleNamespace(
            settings=SimpleNamespace(
                default_mode="auto", cdc_max_seconds=5.0, cdc_follow_apply_seconds=5.0, cdc_follow_pause_seconds=0.01
            ),
            state=SimpleNamespace(run_status=self.status.get),
            deadline=SimpleNamespace(seconds_left=lambda: seconds_left),
        )

    def schedule(self, event: Any, services: Any) -> dict[str, Any]:
        self.events.append(event)
        run_id = next(self.ids)
        outcome = next(self.outcomes, "succeeded")
        self.status[run_id] = "succeeded" if outcome == "declined" else outcome
        table = {"status": "declined"} if outcome == "declined" else {"status": "running"}
        return {"run_id": run_id, "tables": {"t": table}}

    def end(self, services: Any) -> tuple[str, int]:
        self.last = next(self.ends, getattr(self, "last", 0))  # past the list: where it last was
        return "binlog.000001", self.last


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    def make(outcomes: list[str], ends: list[int], **kw: Any) -> Fake:
        f = Fake(outcomes, ends, **kw)
        monkeypatch.setattr(cdc_follow, "_binlog_end", f.end)
        return f

    return make


REQUEST = {"tables": "t", "mode": "cdc", "follow_seconds": 1}


def test_a_request_without_follow_seconds_is_one_window(fake) -> None:
    f = fake([], [])
    answer = cdc_follow.follow({"tables": "t", "mode": "cdc"}, f.services, f.schedule)
    assert len(f.events) == 1 and "windows" not in answer


def test_windows_follow_while_the_binlog_moves_and_none_while_it_does_not(fake) -> None:
    # the end before the first window, then: moved, moved, the same for the rest of the second
    f = fake([], [1, 2, 3])
    answer = cdc_follow.follow(REQUEST, f.services, f.schedule)
    assert answer["windows"] == [["r0"], ["r1"], ["r2"]]
    assert [e.get("run_id") for e in f.events][0] is None and len({e["run_id"] for e in f.events[1:]}) == 2


@pytest.mark.parametrize("outcome", ["failed", "declined"])
def test_a_failed_or_declined_window_ends_the_following(fake, outcome) -> None:
    f = fake(["succeeded", outcome], [1, 2, 3, 4, 5])
    answer = cdc_follow.follow(REQUEST, f.services, f.schedule)
    assert answer["windows"] == [["r0"], ["r1"]]


def test_no_window_starts_without_the_time_to_read_and_apply_it(fake) -> None:
    f = fake([], [1, 2, 3], seconds_left=9.0)  # under CDC_MAX_SECONDS + CDC_FOLLOW_APPLY_SECONDS
    answer = cdc_follow.follow(REQUEST, f.services, f.schedule)
    assert answer["windows"] == [["r0"]]
