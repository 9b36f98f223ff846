"""Columns dropped in MySQL and kept in the target: recorded once, by the run that first sees them."""

from __future__ import annotations

from aurora_replication.target.snowflake import evolution


def test_each_drop_is_recorded_once():
    change = evolution.SchemaChange(kept_in_target=["LEGACY", "OLD"])
    assert evolution.unrecorded_drops(change, {}) == ["LEGACY", "OLD"]
    seen = {"schema_changes": [{"change": evolution.DROPPED, "column": "LEGACY", "run": "r1", "at": 1}]}
    assert evolution.unrecorded_drops(change, seen) == ["OLD"]
    [record] = evolution.drop_records(["OLD"], "r2", 123)
    assert (record["change"], record["column"], record["run"], record["at"]) == (evolution.DROPPED, "OLD", "r2", 123)
    assert "NULL for rows written after the drop" in record["detail"]


def test_the_table_a_truncate_empties():
    from aurora_replication.source.binlog import truncated_table

    assert truncated_table("TRUNCATE TABLE items", "db") == ("db", "items")
    assert truncated_table("truncate items;", "db") == ("db", "items")
    assert truncated_table("/* by the app */ TRUNCATE `other`.`it``s`", "db") == ("other", "it`s")
    assert truncated_table("TRUNCATE TABLE a, b", "db") is None  # not parsed: stopped, not followed
    assert truncated_table("DELETE FROM items", "db") is None


def test_truncate_removes_or_marks_only_rows_of_older_positions():
    from aurora_replication.models import Column, TablePlan
    from aurora_replication.target.snowflake import cdc_sql

    plan = TablePlan(
        table="items",
        target_table="ITEMS",
        key=["id"],
        mode="cdc",
        columns=[Column(name="id", target="ID", kind="integer", snowflake_type="NUMBER(10,0)")],
    )
    delete, binds = cdc_sql.truncate_before(plan, "delete")
    assert (delete, binds) == ('DELETE FROM "ITEMS" WHERE ("_ASR_POS" IS NULL OR "_ASR_POS" < %s)', 1)
    mark, binds = cdc_sql.truncate_before(plan, "mark")
    assert binds == 2 and mark == (
        'UPDATE "ITEMS" SET "_ASR_DELETED_AT" = SYSDATE(), "_ASR_POS" = %s '
        'WHERE "_ASR_DELETED_AT" IS NULL AND ("_ASR_POS" IS NULL OR "_ASR_POS" < %s)'
    )


def test_which_type_changes_widen_losslessly():
    w = evolution.widens_losslessly
    for old, new in [
        ("int(11)", "bigint(20)"),
        ("int", "bigint"),
        ("int(10) unsigned", "bigint(20)"),
        ("tinyint(1)", "smallint(6)"),
        ("varchar(10)", "varchar(50)"),
        ("varchar(40)", "text"),
        ("decimal(10,2)", "decimal(12,2)"),
        ("enum('a','b')", "enum('a','b','c')"),
    ]:
        assert w(old, new), (old, new)
    for old, new in [
        ("bigint(20)", "int(11)"),
        ("int(11)", "int(10) unsigned"),
        ("int(10) unsigned", "int(11)"),
        ("varchar(50)", "varchar(10)"),
        ("varchar(10)", "int(11)"),
        ("decimal(10,2)", "decimal(12,3)"),
        ("enum('a','b')", "enum('b','a')"),
        ("datetime(3)", "datetime(6)"),  # Snowflake cannot change a timestamp's precision in place
        ("text", "longtext"),
        ("binary(4)", "binary(8)"),  # BINARY pads to its length: the values change
        ("float", "double"),
        ("int(10) unsigned zerofill", "bigint(20) unsigned zerofill"),
    ]:
        assert not w(old, new), (old, new)
