"""A window decoded in segments (``source/binlog_parallel.py``): where it is cut, and how the segments'
windows merge into the window one reader reads (pure; the same reads on MariaDB are
``tests/integration/test_binlog_segments.py``)."""

from __future__ import annotations

import pytest

from aurora_replication.source.binlog import Position, RowChange, Window
from aurora_replication.source.binlog_parallel import cuts, merge

MB = 1024 * 1024


def at(pos: int) -> Position:
    return Position("binlog.000001", pos)


def test_cuts_fall_on_the_commits_nearest_equal_shares_and_never_below_the_smallest_segment():
    points = [(at(100 + i), (i + 1) * 5 * MB) for i in range(4)]  # four 5 MB transactions
    assert cuts(points, 2, 8 * MB) == [at(101)]  # 10 MB | 10 MB
    assert cuts(points, 4, 1 * MB) == [at(100), at(101), at(102)]
    assert cuts(points, 4, 8 * MB) == [at(101)]  # no segment of 5 MB: two of 10
    assert cuts(points, 1, 1) == []
    assert cuts(points[:1], 4, 1) == []  # one transaction: never cut
    assert cuts(points, 3, 30 * MB) == []  # the window is smaller than two segments
    uneven = [(at(1), 1 * MB), (at(2), 2 * MB), (at(3), 30 * MB), (at(4), 31 * MB)]
    assert cuts(uneven, 2, 1 * MB) == [at(2)]  # the commit nearest the middle (15.5 MB): 2 MB | 29 MB


def change(key: str, pos: int, value: str = "v", op: str = "U") -> tuple[tuple[str], RowChange]:
    return (key,), RowChange(op, at(pos).key(), [key, value])


def window(start: int, end: int, **fields: object) -> Window:
    w = Window(start=at(start), end=at(end), reached_end=True)
    w.changes = {"t": {}, "u": {}}
    for name, value in fields.items():
        setattr(w, name, value)
    return w


def test_later_segments_replace_a_keys_change_and_a_truncate_drops_what_came_before_it():
    first = window(4, 100, events=10, bytes=1000, newest_event_at=5, ddl=["ALTER TABLE u ADD c INT"])
    first.changes = {"t": dict([change("1", 50), change("2", 60)]), "u": dict([change("9", 70)])}
    second = window(100, 200, events=7, bytes=900, newest_event_at=9)
    second.changes = {"t": dict([change("2", 150, "w"), change("3", 160, op="D")]), "u": dict([change("8", 170)])}
    second.truncated = {"u": at(165).key()}  # u emptied at 165: only its changes after it (8) stay
    merged = merge([first, second])
    assert merged.start == at(4) and merged.end == at(200) and merged.reached_end
    assert merged.changes["t"] == dict([change("1", 50), change("2", 150, "w"), change("3", 160, op="D")])
    assert merged.changes["u"] == dict([change("8", 170)])
    assert merged.truncated == {"u": at(165).key()}
    assert (merged.events, merged.bytes, merged.newest_event_at) == (17, 1900, 9)
    assert merged.ddl == ["ALTER TABLE u ADD c INT"]


def test_a_segment_that_stopped_early_ends_the_window_there():
    first = window(4, 100)
    first.changes["t"] = dict([change("1", 50)])
    stopped = window(100, 140, reached_end=False, stopped_by="time")
    stopped.changes["t"] = dict([change("1", 120, "w")])
    after = window(200, 300)
    after.changes["t"] = dict([change("1", 250, "x")])  # beyond the early stop: not taken
    merged = merge([first, stopped, after])
    assert merged.end == at(140) and not merged.reached_end and merged.stopped_by == "time"
    assert merged.changes["t"] == dict([change("1", 120, "w")])
    moved = window(100, 150, reached_end=False, stopped_by="schema change", schema_moved=["t: c"])
    merged = merge([first, moved, after])
    assert merged.schema_moved == ["t: c"] and merged.end == at(150)


@pytest.mark.parametrize("field", ["broken", "unreadable"])
def test_a_table_broken_or_unreadable_in_a_segment_takes_no_later_change_and_keeps_the_first_reason(field):
    first = window(4, 100, **{field: {"t": "first reason"}})
    second = window(100, 200, **{field: {"t": "second reason"}})
    second.changes["t"] = dict([change("1", 150)])
    third = window(200, 300, truncated={"t": at(250).key()}, history_truncated={"t": [(at(260).key(), 3)]})
    merged = merge([first, second, third])
    assert getattr(merged, field) == {"t": "first reason"}
    assert merged.changes["t"] == {} and merged.truncated == {} and merged.history_truncated == {}


def test_history_truncates_and_renames_carry_over_in_binlog_order():
    first = window(4, 100, history_truncated={"t": [(at(50).key(), 1)]}, renamed={"u": at(60).key()})
    second = window(100, 200, history_truncated={"t": [(at(150).key(), 2)]}, renamed={"u": at(160).key()})
    merged = merge([first, second])
    assert merged.history_truncated == {"t": [(at(50).key(), 1), (at(150).key(), 2)]}
    assert merged.renamed == {"u": at(160).key()}
