"""Columns dropped in MySQL and kept in the target: recorded once, by the run that first sees them."""

from __future__ import annotations

from aurora_replication import schema_changes
from aurora_replication.target.snowflake import evolution


def test_each_drop_is_recorded_once():
    change = schema_changes.SchemaChange(kept_in_target=["LEGACY", "OLD"])
    assert schema_changes.unrecorded_drops(change, {}) == ["LEGACY", "OLD"]
    seen = {"schema_changes": [{"change": schema_changes.DROPPED, "column": "LEGACY", "run": "r1", "at": 1}]}
    assert schema_changes.unrecorded_drops(change, seen) == ["OLD"]
    [record] = schema_changes.drop_records(["OLD"], "r2", 123)
    assert (record["change"], record["column"], record["run"], record["at"]) == (
        schema_changes.DROPPED,
        "OLD",
        "r2",
        123,
    )
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
        columns=[Column(name="id", target="ID", kind="integer", precision=10, scale=0)],
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


def test_on_column_drop_is_validated_and_drops_only_columns_mysql_no_longer_has():
    import pytest
    from pydantic import ValidationError

    from aurora_replication.errors import BadInputError
    from aurora_replication.models import Column, TableOptions, TablePlan
    from aurora_replication.pipeline import transforms

    with pytest.raises(ValidationError, match="on_column_drop"):
        TableOptions.model_validate({"on_column_drop": "delete"})
    plan = TablePlan(
        table="t",
        target_table="T",
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="secret", kind="text", target="SECRET"),
            Column(name="v", kind="text", target="V"),
        ],
        key=["id"],
        mode="incremental",
    )
    with pytest.raises(BadInputError, match="past version"):
        transforms.apply_options(plan, TableOptions(history=True, on_column_drop="drop"), "upper", transform_modules="")
    opts = TableOptions(on_column_drop="drop", exclude=["secret"], rename={"v": "value"})
    planned = transforms.apply_options(plan, opts, "upper", transform_modules="")
    assert planned.on_column_drop == "drop" and planned.kept_by_options == ["SECRET", "V"]
    target = [("ID", "NUMBER", 10, 0), ("SECRET", "TEXT", None, None), ("V", "TEXT", None, None)]
    target += [("VALUE", "TEXT", None, None), ("LEGACY", "TEXT", None, None), ("_ASR_POS", "TEXT", None, None)]
    change = evolution.diff(planned, target)
    assert change.dropped_from_target == ["LEGACY"] and change.kept_in_target == []
    assert evolution.alter_statements(planned, change) == ['ALTER TABLE "T" DROP COLUMN IF EXISTS "LEGACY"']
    [record] = schema_changes.drop_records_of(change, {}, "r1", 5)
    assert record["column"] == "LEGACY" and "dropped from the target too" in record["detail"]
    # kept by default: the same columns, no statement
    kept = evolution.diff(
        transforms.apply_options(plan, TableOptions(exclude=["secret"]), "upper", transform_modules=""), target
    )
    assert kept.kept_in_target == ["VALUE", "LEGACY"] and evolution.alter_statements(plan, kept) == []


def test_not_null_added_is_found_recorded_once_and_checked_on_live_rows_only():
    from aurora_replication.models import Column, TablePlan
    from aurora_replication.pipeline.modes.cdc.reader import not_null_added
    from aurora_replication.source.binlog_values import ColumnFacts
    from aurora_replication.target.snowflake import cdc_sql

    stored = [["id", "int(11)", False, None], ["qty", "int(11)", True, None], ["name", "varchar(9)", False, None]]
    now = [
        ColumnFacts("id", "integer", "int", "int(11)", nullable=False),
        ColumnFacts("qty", "integer", "int", "int(11)", nullable=False),
        ColumnFacts("name", "text", "varchar", "varchar(9)", nullable=True),
        ColumnFacts("new", "text", "varchar", "varchar(9)", nullable=False),
    ]
    assert not_null_added(stored, now) == ["qty"]  # not a column that was NOT NULL, relaxed, or new
    [record] = schema_changes.not_null_records(["QTY"], {}, 7)
    assert (record["change"], record["column"], record["at"]) == (schema_changes.NOT_NULL, "QTY", 7)
    assert schema_changes.not_null_records(["QTY"], {"schema_changes": [record]}, 8) == []
    plan = TablePlan(
        table="t",
        target_table="T",
        columns=[Column(name="qty", kind="integer", precision=10, scale=0, target="QTY")],
        key=["qty"],
        mode="cdc",
    )
    assert cdc_sql.null_rows(plan, "QTY", "delete") == 'SELECT COUNT(*) FROM "T" WHERE "QTY" IS NULL'
    assert cdc_sql.null_rows(plan, "QTY", "mark").endswith('"QTY" IS NULL AND "_ASR_DELETED_AT" IS NULL')
    history = plan.model_copy(update={"history": True})
    assert cdc_sql.null_rows(history, "QTY", "mark").endswith('"QTY" IS NULL AND "_ASR_IS_CURRENT" = TRUE')


def test_the_rename_statements_the_reader_follows():
    from aurora_replication.source.binlog import renamed_column

    assert renamed_column("ALTER TABLE items RENAME COLUMN qty TO quantity", "db") == ("db", "items", "qty", "quantity")
    assert renamed_column("alter table `o`.`it``s` change column `a` b INT NOT NULL", "db") == ("o", "it`s", "a", "b")
    assert renamed_column("ALTER TABLE t CHANGE c d ENUM('x,y','z') DEFAULT 'z'", "db") == ("db", "t", "c", "d")
    # several clauses, or other statements: not a rename the reader follows
    assert renamed_column("ALTER TABLE t CHANGE a b INT, ADD COLUMN c INT", "db") is None
    assert renamed_column("ALTER TABLE t RENAME COLUMN a TO b, RENAME COLUMN c TO d", "db") is None
    assert renamed_column("ALTER TABLE t DROP COLUMN a, ADD COLUMN b INT AFTER id", "db") is None
    assert renamed_column("ALTER TABLE t RENAME TO u", "db") is None
    assert evolution.rename_statement("T", "A", "B") == 'ALTER TABLE "T" RENAME COLUMN "A" TO "B"'


def test_column_drop_tables_sets_the_option_as_table_options_would():
    from aurora_replication.config import settings_from
    from aurora_replication.models import TableOptions
    from aurora_replication.pipeline import transforms

    env = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}
    s = settings_from({**env, "COLUMN_DROP_TABLES": "a, b", "HISTORY_TABLES": "c"})
    options = transforms.with_history_tables({"a": TableOptions(exclude=["x"])}, s.history_tables, s.column_drop_tables)
    assert options["a"] == TableOptions(exclude=["x"], on_column_drop="drop")
    assert options["b"].on_column_drop == "drop" and options["c"].history and options["c"].on_column_drop == "keep"
