"""Column versions (a type change that is not a lossless widening): the pure parts."""

from __future__ import annotations

from aurora_replication import schema_changes, typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline.column_versions import applied as apply_versions
from aurora_replication.pipeline.column_versions import fill_plan
from aurora_replication.pipeline.modes.cdc.reader import schema_problems, type_changes
from aurora_replication.source import sql as source_sql
from aurora_replication.source.binlog import Position
from aurora_replication.source.binlog_values import ColumnFacts
from aurora_replication.target.snowflake import cdc_sql, evolution
from aurora_replication.target.snowflake.evolution import widens_losslessly


def test_the_version_name_is_the_next_free_one_in_the_columns_case():
    assert schema_changes.version_name("QTY", {"ID", "QTY"}) == "QTY__V2"
    assert schema_changes.version_name("QTY", {"ID", "QTY", "QTY__V2", "qty__v3"}) == "QTY__V4"  # taken in any case
    assert schema_changes.version_name("QTY__V2", {"QTY", "QTY__V2"}) == "QTY__V3"  # a version's next version
    assert schema_changes.version_name("qty", {"qty"}) == "qty__v2"  # identifier_case lower
    assert schema_changes.version_name("A__VX", {"A__VX"}) == "A__VX__V2"  # not a version suffix


def _cf(name: str, type_: str) -> ColumnFacts:
    return ColumnFacts(name, typemap.INTEGER, type_, type_)


def test_type_changes_name_what_is_not_a_lossless_widening_and_only_unversioned_ones_are_problems():
    stored = [_cf("id", "int(11)").signature(), _cf("q", "int(11)").signature(), _cf("w", "int(11)").signature()]
    now = [_cf("id", "int(11)"), _cf("q", "varchar(20)"), _cf("w", "bigint(20)")]
    assert type_changes(stored, now, widens_losslessly) == [("q", "int(11)", "varchar(20)")]  # w widens losslessly
    assert "column 'q' changed type" in schema_problems("t", stored, now, widens=widens_losslessly)[0]
    assert schema_problems("t", stored, now, frozenset({"q"}), widens=widens_losslessly) == []


def _plan() -> TablePlan:
    return TablePlan(
        table="t",
        target_table="T",
        mode="cdc",
        key=["id"],
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="q", kind="text", target="Q"),
            Column(name="n", kind="text", target="N"),
        ],
    )


def test_a_version_retargets_the_column_and_is_left_out_of_a_window_starting_before_the_alter():
    versions = {"q": {"target": "Q__V2", "kept": ["Q"], "after": Position("b.000002", 500).key(), "filled": False}}
    before, after = Position("b.000002", 100), Position("b.000002", 900)
    crossing = apply_versions(_plan(), versions, before)
    assert [c.target for c in crossing.columns] == ["ID", "N"] and crossing.kept_by_options == ["Q", "Q__V2"]
    later = apply_versions(_plan(), versions, after)
    assert [c.target for c in later.columns] == ["ID", "Q__V2", "N"] and later.kept_by_options == ["Q"]
    # the kept columns are neither added nor taken for drops
    change = evolution.diff(later, [("ID", "NUMBER", 10, 0), ("Q", "NUMBER", 10, 0), ("N", "TEXT", None, None)])
    assert [c.target for c in change.add] == ["Q__V2"] and change.gone == [] and change.conflicts == []
    # validate: the version compared once filled, left out (and named) while it fills
    compared, filling = schema_changes.compared_plan(_plan(), versions)
    assert [c.target for c in compared.columns] == ["ID", "N"] and filling == ["q"]
    compared, filling = schema_changes.compared_plan(_plan(), {"q": {**versions["q"], "filled": True}})
    assert [c.target for c in compared.columns] == ["ID", "Q__V2", "N"] and filling == []


def test_the_fill_reads_key_ordered_pages_and_updates_by_key():
    page = fill_plan(
        apply_versions(_plan(), {"q": {"target": "Q__V2", "kept": ["Q"], "after": "", "filled": True}}, None), "q"
    )
    assert [c.name for c in page.columns] == ["id", "q"]
    query, params = source_sql.page_query(page, [120], 50)
    assert query == "SELECT `id`, `q` FROM `t` WHERE ((`id` > %s)) ORDER BY `id` LIMIT %s" and params == [120, 50]
    query, params = source_sql.page_query(page, None, 50)
    assert query.endswith("WHERE 1 = 1 ORDER BY `id` LIMIT %s") and params == [50]
    update = cdc_sql.fill_version(page, "_ASR_FILL_R_T", page.column("q"))
    assert update == (
        'UPDATE "T" SET "Q__V2" = s."Q__V2" FROM (SELECT DISTINCT "ID", l."Q__V2" AS "Q__V2" FROM "_ASR_FILL_R_T" l '
        'WHERE l."_ASR_CHUNK" = %s) s WHERE "T"."ID" = s."ID"'
    )
    assert (
        evolution.add_version_statement("T", page.column("q"))
        == 'ALTER TABLE "T" ADD COLUMN IF NOT EXISTS "Q__V2" VARCHAR'
    )


def test_the_record_says_what_changed_and_is_made_once():
    record = schema_changes.version_record("q", "int(11)", "varchar(20)", "Q", "Q__V2", 7)
    assert record["change"] == schema_changes.VERSION_ADDED and record["column"] == "Q__V2" and record["at"] == 7
    assert "'Q' is kept" in record["detail"] and record["new_type"] == "varchar(20)"
    assert schema_changes.unrecorded_version({}, "Q__V2")
    assert not schema_changes.unrecorded_version({"schema_changes": [record]}, "Q__V2")
