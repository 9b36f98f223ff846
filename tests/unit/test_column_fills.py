"""Columns filled from MySQL by key: which added cdc columns are filled, and the conflicts incremental
planning gives a column version (the pure parts)."""

from __future__ import annotations

from aurora_replication import typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline import column_versions
from aurora_replication.pipeline.modes.cdc.reader import schema_problems, to_fill
from aurora_replication.pipeline.planning import _added_versions, _new_versions
from aurora_replication.source.binlog_values import ColumnFacts
from aurora_replication.target.snowflake import evolution
from aurora_replication.target.snowflake.evolution import widens_losslessly


def _cf(name: str, nullable: bool = True, default: str | None = None, type_: str = "int(11)") -> ColumnFacts:
    return ColumnFacts(name, typemap.INTEGER, type_, type_, nullable=nullable, default=default)


def test_cdc_fills_a_column_added_not_null_with_a_default_or_beside_a_drop_and_nothing_else():
    stored = [_cf("id").signature(), _cf("a").signature()]
    plain = [_cf("id"), _cf("a"), _cf("b")]
    assert to_fill(stored, plain) == []  # nullable, no default: NULL in MySQL as in the target
    now = [_cf("id"), _cf("a"), _cf("b", nullable=False), _cf("c", default="5")]
    assert [c.name for c in to_fill(stored, now)] == ["b", "c"]
    assert (
        len(schema_problems("t", stored, now, widens=widens_losslessly)) == 2
    )  # unfilled: each stops the table, as before
    assert schema_problems("t", stored, now, filled=frozenset({"b", "c"}), widens=widens_losslessly) == []
    # a drop and an add of another type (no rename candidate): the added column is filled, nothing stops
    swapped = [_cf("id"), _cf("z", type_="varchar(20)")]
    assert [c.name for c in to_fill(stored, swapped)] == ["z"]
    assert "dropped" in schema_problems("t", stored, swapped, widens=widens_losslessly)[0]
    assert schema_problems("t", stored, swapped, filled=frozenset({"z"}), widens=widens_losslessly) == []
    # the same definition at the same place is a rename candidate: not filled (the window decides)
    renamed = [_cf("id"), _cf("b")]
    assert to_fill(stored, renamed) == []


def _plan(**kw) -> TablePlan:
    cols = [
        Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
        Column(name="qty", kind=typemap.DECIMAL, precision=12, scale=2, target="QTY"),
        Column(name="note", kind=typemap.INTEGER, precision=10, scale=0, target="NOTE"),
    ]
    return TablePlan(table="t", target_table="T", mode="incremental", key=["id"], columns=cols, **kw)


TARGET = [("ID", "NUMBER", 10, 0), ("QTY", "NUMBER", 10, 0)]


def test_incremental_gives_a_non_key_conflict_a_version_and_fills_an_added_column():
    plan = _plan()
    change = evolution.diff(plan, TARGET)
    assert change.conflicting == [("qty", "NUMBER(10,0)")] and change.conflicts
    versions: dict = {}
    assert _new_versions(plan, change, versions, {"ID", "QTY"}) == ["qty"]
    assert versions["qty"]["target"] == "QTY__V2" and versions["qty"]["kept"] == ["QTY"]
    mapped = column_versions.applied(plan, versions)
    again = evolution.diff(mapped, TARGET)
    assert not again.conflicts and [c.target for c in again.add] == ["QTY__V2", "NOTE"]
    assert not again.kept_in_target  # the old column is kept, not taken for a drop
    assert _added_versions(mapped, again, versions) == ["note"]  # QTY__V2 is qty's version already
    assert column_versions.filling(mapped, versions) == ["qty", "note"]
    # a key column's conflict, or a table whose columns may not be versioned: no version
    key_change = evolution.diff(_plan(), [("ID", "TEXT", None, None), ("QTY", "NUMBER", 12, 2)])
    assert _new_versions(_plan(), key_change, {}, {"ID", "QTY"}) == []
    assert _new_versions(_plan(history=True), change, {}, {"ID", "QTY"}) == []
