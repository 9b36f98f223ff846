"""Columns dropped in MySQL and kept in the target: recorded once, by the run that first sees them."""

from __future__ import annotations

from aurora_replication.target import evolution


def test_each_drop_is_recorded_once():
    change = evolution.SchemaChange(kept_in_target=["LEGACY", "OLD"])
    assert evolution.unrecorded_drops(change, {}) == ["LEGACY", "OLD"]
    seen = {"schema_changes": [{"change": evolution.DROPPED, "column": "LEGACY", "run": "r1", "at": 1}]}
    assert evolution.unrecorded_drops(change, seen) == ["OLD"]
    [record] = evolution.drop_records(["OLD"], "r2", 123)
    assert (record["change"], record["column"], record["run"], record["at"]) == (evolution.DROPPED, "OLD", "r2", 123)
    assert "NULL for rows written after the drop" in record["detail"]
