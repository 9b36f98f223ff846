"""The plan carries neutral column kinds; the warehouse maps them (``target/snowflake/types.py``)."""

from __future__ import annotations

import json

import pytest

from aurora_replication import typemap
from aurora_replication.models import Column, TableOptions, TablePlan
from aurora_replication.pipeline import staging, transforms
from aurora_replication.target.snowflake import sql as snowflake_sql
from aurora_replication.target.snowflake.types import column_type

# (information_schema fields) -> the Snowflake type, as docs/types.md lists them
MYSQL_TYPES = [
    (("tinyint", "tinyint(1)"), {}, "NUMBER(3,0)"),
    (("tinyint", "tinyint(4) unsigned"), {}, "NUMBER(3,0)"),
    (("smallint", "smallint(6)"), {}, "NUMBER(5,0)"),
    (("mediumint", "mediumint(8) unsigned"), {}, "NUMBER(8,0)"),
    (("int", "int(11)"), {}, "NUMBER(10,0)"),
    (("bigint", "bigint(20) unsigned"), {}, "NUMBER(20,0)"),
    (("decimal", "decimal(38,10)"), {"numeric_precision": 38, "numeric_scale": 10}, "NUMBER(38,10)"),
    (("decimal", "decimal(39,2)"), {"numeric_precision": 39, "numeric_scale": 2}, "VARCHAR"),
    (("double", "double"), {}, "FLOAT"),
    (("bit", "bit(64)"), {}, "NUMBER(20,0)"),
    (("year", "year(4)"), {}, "NUMBER(4,0)"),
    (("date", "date"), {}, "DATE"),
    (("datetime", "datetime(6)"), {"datetime_precision": 6}, "TIMESTAMP_NTZ(6)"),
    (("timestamp", "timestamp"), {}, "TIMESTAMP_NTZ(0)"),
    (("time", "time(3)"), {}, "VARCHAR"),
    (("varchar", "varchar(255)"), {}, "VARCHAR"),
    (("enum", "enum('a','b')"), {}, "VARCHAR"),
    (("text", "text"), {}, "VARCHAR"),
    (("mediumtext", "mediumtext"), {}, "VARCHAR"),
    (("longtext", "longtext"), {}, "VARCHAR(134217728)"),
    (("varbinary", "varbinary(16)"), {}, "BINARY"),
    (("blob", "blob"), {}, "BINARY"),
    (("mediumblob", "mediumblob"), {}, "BINARY(67108864)"),
    (("longblob", "longblob"), {}, "BINARY(67108864)"),
    (("json", "json"), {}, "VARIANT"),
    (("point", "point"), {}, "BINARY(67108864)"),
]


def _column(data_type: str, column_type_text: str, name: str = "c", **facts: int) -> Column:
    ct = typemap.map_column(name, data_type, column_type_text, **facts)
    return Column(name=name, kind=ct.kind, target=name.upper(), precision=ct.precision, scale=ct.scale, size=ct.size)


def _plan(mode: str, *columns: Column) -> TablePlan:
    return TablePlan(table="t", target_table="T", mode=mode, key=["id"], columns=list(columns))


@pytest.mark.parametrize(("types", "facts", "snowflake"), MYSQL_TYPES, ids=[t[0][1] for t in MYSQL_TYPES])
def test_each_mysql_type_becomes_its_snowflake_type_through_the_neutral_kind(types, facts, snowflake) -> None:
    column = _column(*types, **facts)
    assert column.warehouse_type is None  # the plan names no Snowflake type
    assert column_type(column) == snowflake


def test_the_plan_names_no_warehouse_type() -> None:
    """What crosses the pipeline (the plan in the ledger and the messages) is neutral: no field of a column or a
    plan is a Snowflake type, and a discovered column serialises without one."""
    assert not [f for f in Column.model_fields if "snowflake" in f]
    assert not [f for f in TablePlan.model_fields if "snowflake" in f]
    dumped = json.dumps(_column("decimal", "decimal(12,2)", numeric_precision=12, numeric_scale=2).model_dump())
    assert "NUMBER" not in dumped and "snowflake" not in dumped


def test_the_value_limits_follow_the_mapped_type() -> None:
    """A value is checked against the limit of the type the column is declared as, and the error names it."""
    assert typemap.value_limit(_column("longtext", "longtext")) == typemap.VARCHAR_MAX_BYTES
    assert typemap.value_limit(_column("mediumtext", "mediumtext")) is None  # fits a VARCHAR without a length
    assert typemap.value_limit(_column("mediumblob", "mediumblob")) == typemap.BINARY_MAX_BYTES
    assert typemap.value_limit(_column("blob", "blob")) is None
    assert typemap.value_limit(_column("json", "json")) == typemap.VARIANT_MAX_BYTES
    plan = TablePlan(table="t", target_table="T", columns=[_column("longblob", "longblob")], key=[], mode="full")
    big = "00" * (typemap.BINARY_MAX_BYTES + 1)
    with pytest.raises(staging.ValueTooLargeError, match="Snowflake's BINARY holds"):
        staging.check_sizes(plan, staging.size_checks(plan), [big])


def test_a_plan_recorded_before_neutral_kinds_maps_to_exactly_the_type_it_named() -> None:
    """A run resumed across a deploy, or a chunk message in flight, carries columns that name their Snowflake type:
    the column keeps that type, so its table is created, cast and compared as the run planned it."""
    recorded = {
        "table": "t",
        "target_table": "T",
        "mode": "incremental",
        "key": ["id"],
        "columns": [
            {"name": "id", "kind": "integer", "snowflake_type": "NUMBER(20,0)", "target": "ID"},
            {"name": "body", "kind": "text", "snowflake_type": "VARCHAR(134217728)", "target": "BODY"},
            {"name": "at", "kind": "datetime", "snowflake_type": "TIMESTAMP_NTZ(3)", "target": "AT"},
        ],
    }
    plan = TablePlan.model_validate(recorded)
    assert [column_type(c) for c in plan.columns] == ["NUMBER(20,0)", "VARCHAR(134217728)", "TIMESTAMP_NTZ(3)"]
    assert typemap.value_limit(plan.columns[1]) == typemap.VARCHAR_MAX_BYTES
    assert typemap.staged_with_micros(plan.columns[2])
    neutral = _plan(
        "incremental",
        _column("bigint", "bigint(20) unsigned", "id"),
        _column("longtext", "longtext", "body"),
        _column("datetime", "datetime(3)", "at", datetime_precision=3),
    )
    assert snowflake_sql.create_target_table(plan) == snowflake_sql.create_target_table(neutral)


def test_a_cast_names_the_warehouse_type_and_a_mask_is_text() -> None:
    plan = _plan(
        "full",
        _column("int", "int(11)", "id"),
        _column("decimal", "decimal(12,2)", "amount", numeric_precision=12, numeric_scale=2),
        _column("longtext", "longtext", "email"),
    )
    options = TableOptions(cast={"amount": "varchar"}, mask={"email": "sha256"})
    applied = transforms.apply_options(plan, options, "UPPER", transform_modules="")
    amount, email = applied.column("amount"), applied.column("email")
    assert (column_type(amount), amount.checksum) == ("VARCHAR", False)
    assert (email.kind, column_type(email), typemap.value_limit(email)) == ("text", "VARCHAR", None)


@pytest.mark.parametrize(
    ("value", "staged"),
    [
        ("2024-01-02 03:04:05", "2024-01-02 03:04:05.000000"),
        ("2024-01-02 03:04:05.1", "2024-01-02 03:04:05.100000"),
        ("2024-01-02 03:04:05.12345", "2024-01-02 03:04:05.123450"),
        ("2024-01-02 03:04:05.123456", "2024-01-02 03:04:05.123456"),
        (b"2024-01-02 03:04:05.000001", "2024-01-02 03:04:05.000001"),
        ("0000-00-00 00:00:00.000000", ""),
        ("2024-00-10 00:00:00", ""),
        ("2024-05-00 00:00:00.123456", ""),
    ],
)
def test_a_datetime_is_staged_with_six_fractional_digits_and_a_zero_date_as_null(value, staged) -> None:
    assert staging._timestamp(value) == staged
    assert staging._date(value) == ("" if not staged else value if isinstance(value, str) else value.decode())


def test_the_written_line_function_stages_what_the_fields_do() -> None:
    """``staging.line_writer`` (one function written per table) against ``fields`` joined, value by value:
    NULL, empty text, quotes, bytes, numbers as objects, zero dates."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    encs = [None, staging._text, staging._date, staging._timestamp, staging._hex, None, staging._raw]
    texts = st.one_of(st.none(), st.text(max_size=8), st.binary(max_size=6))
    dates = st.sampled_from([None, "2024-01-02", "0000-00-00", "2024-00-01", b"2023-12-31"])
    stamps = st.sampled_from([None, "2024-01-02 03:04:05", "2024-01-02 03:04:05.123456", "0000-00-00 00:00:00"])
    plain = st.one_of(st.none(), st.integers().map(str), st.integers(), st.floats(allow_nan=False), st.just(""))
    hexes = st.one_of(st.none(), st.sampled_from(["", "00FF", b"ABCD"]))
    line = staging.line_writer(encs)

    @settings(max_examples=300, deadline=None)
    @given(
        st.tuples(
            plain, texts.filter(lambda v: not isinstance(v, bytes) or _utf8(v)), dates, stamps, hexes, plain, plain
        )
    )
    def check(values) -> None:
        assert line(values) == ",".join(staging.fields(encs, values))

    check()
    assert staging.line_writer([None])(["7"]) == "7"
    assert staging.line_writer([])([]) == ""
    with pytest.raises(ValueError):
        line(["1", "2"])  # a row of another width fails, as ``fields`` does


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
