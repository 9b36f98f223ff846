"""The pure parts of change data capture: value spelling, positions, grants, schema rules, SQL text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from aurora_replication import typemap
from aurora_replication.models import ChangeBatch, ChunkMessage, Column, TablePlan
from aurora_replication.pipeline.modes.cdc.mode import is_stale
from aurora_replication.pipeline.modes.cdc.reader import batch_file, rename_candidate, schema_problems, window_path
from aurora_replication.source.binlog import Position, Window, missing_grants
from aurora_replication.source.binlog_values import ColumnFacts, converter, to_text
from aurora_replication.target.snowflake import cdc_sql
from aurora_replication.target.snowflake.evolution import widens_losslessly


def facts(kind: str, data_type: str, column_type: str = "", precision: int = 0, **kw) -> ColumnFacts:
    return ColumnFacts("c", kind, data_type, column_type or data_type, precision, **kw)


@pytest.mark.parametrize(
    "f, value, text",
    [
        (facts(typemap.INTEGER, "bigint"), 18446744073709551615, "18446744073709551615"),
        (facts(typemap.INTEGER, "int", "int(10) unsigned zerofill"), "0000000007", "7"),  # older library versions
        (facts(typemap.DECIMAL, "decimal"), Decimal("-12.340"), "-12.340"),
        (
            facts(typemap.DATETIME, "datetime", precision=3),
            dt.datetime(2024, 1, 2, 3, 4, 5, 678000),
            "2024-01-02 03:04:05.678",
        ),
        (facts(typemap.DATETIME, "timestamp"), dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02 03:04:05"),
        (facts(typemap.DATE, "date"), dt.date(2020, 2, 29), "2020-02-29"),
        # a year before 1000 keeps its leading zeros, as MySQL prints it (strftime's %Y drops them)
        (
            facts(typemap.DATETIME, "datetime", precision=6),
            dt.datetime(999, 1, 2, 3, 4, 5, 6),
            "0999-01-02 03:04:05.000006",
        ),
        (facts(typemap.DATETIME, "datetime"), dt.datetime(5, 1, 2), "0005-01-02 00:00:00"),
        (facts(typemap.DATE, "date"), dt.date(999, 12, 31), "0999-12-31"),
        (facts(typemap.DATETIME, "timestamp", precision=2), dt.datetime(1970, 1, 1), "0000-00-00 00:00:00.00"),
        (facts(typemap.DATETIME, "datetime"), "2024-00-10 00:00:00", "2024-00-10 00:00:00"),  # a zero date's text
        (facts(typemap.INTEGER, "tinyint"), True, "1"),
        (facts(typemap.INTEGER, "int"), -7, "-7"),
        (facts(typemap.DECIMAL, "decimal"), Decimal("0E-10"), "0.0000000000"),
        (facts(typemap.TEXT, "varchar"), "héllo".encode(), "héllo"),  # text arrives as its bytes
        (facts(typemap.TEXT, "varchar", charset="latin1"), b"\xfc\x80", "ü€"),
        (facts(typemap.TEXT, "char", "char(3)"), b"ab ", "ab"),
        (facts(typemap.TEXT, "enum", "enum('a','b')"), b"b", "b"),
        (facts(typemap.TEXT, "set", "set('x','y')"), {b"y", b"x"}, "x,y"),
        (facts(typemap.TIME, "time", precision=2), dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59.00"),
        (facts(typemap.TIME, "time"), -dt.timedelta(hours=1, minutes=2, seconds=3), "-01:02:03"),
        (facts(typemap.BINARY, "varbinary"), b"\x00\xff", "00FF"),
        (facts(typemap.BINARY, "binary", "binary(4)", length=4), b"A", "41000000"),
        (facts(typemap.BIT, "bit"), "10101", "21"),
        (facts(typemap.YEAR, "year"), 2024, "2024"),
        (facts(typemap.TEXT, "set", "set('x','y','z')"), {"z", "x"}, "x,z"),
        (facts(typemap.TEXT, "enum", "enum('a','b')"), "b", "b"),
        (facts(typemap.TEXT, "char", "char(5)"), "ab  ", "ab"),
        (facts(typemap.TEXT, "varchar"), 'héllo\n"q" 😀', 'héllo\n"q" 😀'),
        (facts(typemap.JSON, "json"), {b"k": [1, b"\xc3\xa9"]}, '{"k": [1, "é"]}'),
        (facts(typemap.JSON, "longtext"), '{"k": 1}', '{"k": 1}'),
        (facts(typemap.FLOAT, "double"), 0.1, "0.1"),
        (facts(typemap.FLOAT, "float"), 0.10000000149011612, "0.10000000149011612"),  # as FLOAT + 0e0
        (facts(typemap.YEAR, "year"), 1900, "0"),  # YEAR 0, as CAST(col AS UNSIGNED) reads it
        (facts(typemap.YEAR, "year", "year(2)"), 1984, "84"),  # MariaDB's YEAR(2) reads as two digits
        (facts(typemap.YEAR, "year", "year(2)"), 2000, "0"),
        (
            facts(typemap.SPATIAL, "point"),
            bytes.fromhex("E61000000101000000" + "00" * 16),
            "0101000020E6100000" + "00" * 16,
        ),
        (facts(typemap.SPATIAL, "geometry"), bytes.fromhex("000000000101000000" + "00" * 16), "0101000000" + "00" * 16),
        (facts(typemap.TEXT, "varchar"), None, None),
    ],
)
def test_binlog_values_spelled_as_mysql_prints_them(f, value, text):
    assert to_text(f, value) == text
    assert converter(f)(value) == text  # the reader's per-column fast path spells the same text


def test_positions_sort_as_the_binlog_does():
    a, b, c = Position("mysql-bin.000009", 99999), Position("mysql-bin.000010", 4), Position("mysql-bin.000010", 5)
    assert a.key() < b.key() < c.key() < c.key(1)
    assert Position.from_dict(c.to_dict()) == c
    assert len(a.key()) == len(Position("x.1234567", 4_000_000_000).key(999))


@pytest.mark.parametrize(
    "grants, missing",
    [
        (["GRANT ALL PRIVILEGES ON *.* TO `r`@`%`"], []),
        (["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `r`@`%`"], []),
        (["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`"], []),  # MariaDB 10.5+
        (["GRANT SELECT ON *.* TO `r`@`%`", "GRANT ALL PRIVILEGES ON `db`.* TO `r`@`%`"], ["slave", "client"]),
        (["GRANT SELECT, REPLICATION CLIENT ON *.* TO `r`@`%`"], ["slave"]),
    ],
)
def test_missing_grants(grants, missing):
    found = missing_grants(grants)
    assert len(found) == len(missing)
    for word, text in zip(missing, found, strict=True):
        assert ("SLAVE" if word == "slave" else "CLIENT") in text


def _cf(name, nullable=True, default=None, type_="int"):
    return ColumnFacts(name, typemap.INTEGER, type_, type_, nullable=nullable, default=default)


def test_schema_rules():
    stored = [_cf("id").signature(), _cf("a").signature()]
    assert (
        schema_problems("t", stored, [_cf("id"), _cf("a"), _cf("b")], widens=widens_losslessly) == []
    )  # nullable, no default
    assert (
        "NOT NULL"
        in schema_problems("t", stored, [_cf("id"), _cf("a"), _cf("b", nullable=False)], widens=widens_losslessly)[0]
    )
    assert (
        "default '5'"
        in schema_problems("t", stored, [_cf("id"), _cf("a"), _cf("b", default="5")], widens=widens_losslessly)[0]
    )
    # same place, type, nullability and default: a rename candidate, which the window confirms (or stops)
    assert schema_problems("t", stored, [_cf("id"), _cf("b")], widens=widens_losslessly) == []
    assert rename_candidate(stored, [_cf("id"), _cf("b")]) == ("a", "b")
    assert "rename" in schema_problems("t", stored, [_cf("id"), _cf("b", type_="bigint")], widens=widens_losslessly)[0]
    assert rename_candidate(stored, [_cf("b"), _cf("id")]) is None  # another place
    assert rename_candidate(stored, [_cf("id"), _cf("b", nullable=False)]) is None
    assert schema_problems("t", stored, [_cf("id")], widens=widens_losslessly) == []  # dropped: kept in the target


def _plan() -> TablePlan:
    return TablePlan(
        table="t",
        target_table="T",
        mode="cdc",
        key=["id"],
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="doc", kind="json", target="DOC"),
        ],
    )


def test_merge_applies_only_newer_changes_and_respects_tombstones():
    sql = cdc_sql.merge_changes(_plan(), "_ASR_CDC_r_T", "delete")
    assert 't."_ASR_POS" IS NULL OR t."_ASR_POS" < s."_ASR_POS"' in sql
    assert 'NOT EXISTS (SELECT 1 FROM "_ASR_TOMB_T" d' in sql and "THEN DELETE" in sql
    assert "PARSE_JSON(l.\"DOC\", 'd')" in sql and "%s" in sql  # duplicate keys as in the chunk path
    mark = cdc_sql.merge_changes(_plan(), "_ASR_CDC_r_T", "mark")
    assert "DELETE" not in mark.replace("_ASR_DELETED_AT", "") and '"_ASR_DELETED_AT"' in mark
    assert "FORCE = FALSE PURGE = TRUE" in cdc_sql.copy_batch(
        _plan(), "L", "STAGE", "cdc/t_1/a-b", "batch-00000.csv.gz"
    )


def test_batch_names_are_deterministic_and_messages_carry_them():
    start, end = Position("b.000001", 4).key(), Position("b.000002", 900).key()
    window = Window(start=Position("b.000001", 4), end=Position("b.000002", 900))
    path = window_path("r", window)
    assert path == window_path("r", window) and ":" not in path
    assert window_path("r2", window) != path and window_path("r", window, "db") != path
    file = batch_file("orders", start, end, 0)
    assert file == batch_file("orders", start, end, 0) and ":" not in file
    # unique among the tables of one path: by table, by the table's own start and end, by index
    later = Position("b.000001", 5).key()
    assert len({file, batch_file("orders", later, end, 0), batch_file("orders", start, end, 1)}) == 3
    assert batch_file("orders", start, end, 0) != batch_file("orders2", start, end, 0)
    batch = ChangeBatch(start=start, end=end, path=path, file=file, rows=3)
    msg = ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan(), batch=batch)
    assert ChunkMessage.model_validate_json(msg.model_dump_json()) == msg
    with pytest.raises(ValueError):
        ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan())
    assert (
        is_stale({"position_key": end}, end) and not is_stale({"position_key": start}, end) and not is_stale(None, end)
    )


def test_cdc_lag_gauges_from_the_health_report():
    from aurora_replication.ops.health_metrics import gauges

    report = {
        "checks": {"cdc": {"tables": {"a": {"cdc_lag_seconds": 30}, "b": {"cdc_lag_seconds": 90}, "c": {}}}},
        "failing": [],
    }
    found = {(g.name, tuple(g.dimensions.items())): g.value for g in gauges(report)}
    assert found[("CdcLagSeconds", (("table", "a"),))] == 30
    assert found[("MaxCdcLagSeconds", ())] == 90
    assert not any(name == "CdcLagSeconds" and dims == (("table", "c"),) for name, dims in found)


def test_cdc_is_a_sync_mode_that_applies_its_own_units():
    from aurora_replication.pipeline import modes
    from aurora_replication.pipeline.modes import cdc

    assert modes.get("cdc") is modes.MODES["cdc"] and isinstance(modes.get("cdc"), cdc.Cdc)
    assert [name for name, m in sorted(modes.MODES.items()) if m.applies_units] == ["cdc"]
    assert modes.get("cdc").commit_step == "merge"


def test_a_change_with_a_zero_date_in_its_key_is_refused():
    from aurora_replication.errors import BadInputError
    from aurora_replication.pipeline.modes.cdc.reader import zero_date_keys
    from aurora_replication.source.binlog import RowChange

    plan = TablePlan(
        table="t",
        target_table="T",
        columns=[
            Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
            Column(name="d", kind=typemap.DATE, target="D"),
            Column(name="e", kind=typemap.DATE, target="E"),
        ],
        key=["id", "d"],
        mode="cdc",
    )
    zero_date_keys(plan, [RowChange("U", "p", ["1", "2024-01-01", "0000-00-00"])])  # not in the key: NULL
    with pytest.raises(BadInputError, match="key column 'd' holds the zero date '0000-00-00'"):
        zero_date_keys(plan, [RowChange("D", "p", ["1", "0000-00-00", None])])


def test_text_that_is_not_utf8_fails_loudly_on_the_fast_path_too():
    from aurora_replication.source.binlog_values import UnrepresentableValueError

    with pytest.raises(UnrepresentableValueError, match="column 'c'"):
        converter(facts(typemap.TEXT, "varchar"))(b"\xff\xfe")


def test_a_batch_of_a_table_with_one_integer_key_bounds_its_merge_by_its_own_keys():
    """The batch's smallest and largest key bound the MERGE's target (Snowflake prunes the micro-partitions
    outside them); every row of the batch is inside, so the statement matches what it would unbounded."""
    from aurora_replication.pipeline.modes.cdc.reader import key_bounds
    from aurora_replication.source.binlog import RowChange

    plan = _plan()
    changes = [RowChange("U", "p1", ["17", "{}"]), RowChange("D", "p2", ["-4", None]), RowChange("U", "p3", ["9", "1"])]
    assert key_bounds(plan, changes) == (-4, 17)
    assert key_bounds(plan, []) == (None, None)
    bounded = cdc_sql.merge_changes(plan, "_ASR_CDC_r_T", "delete", bounded=True)
    unbounded = cdc_sql.merge_changes(plan, "_ASR_CDC_r_T", "delete")
    assert bounded == unbounded.replace(
        'ON t."ID" = s."ID" ', 'ON t."ID" = s."ID" AND t."ID" BETWEEN %s AND %s '
    )  # in the ON clause: after the source's chunk-id parameter
    assert bounded.index("BETWEEN %s AND %s") > bounded.index('"_ASR_CHUNK" = %s')
    # only a table whose one key column is an integer loaded as a number
    text_key = plan.model_copy(update={"columns": [Column(name="id", kind="text", target="ID"), plan.columns[1]]})
    cast_key = plan.model_copy(
        update={"columns": [Column(name="id", kind="integer", target="ID", warehouse_type="VARCHAR"), plan.columns[1]]}
    )
    two_keys = plan.model_copy(update={"key": ["id", "doc"]})
    for other in (text_key, cast_key, two_keys):
        assert cdc_sql.range_key(other) is None
        with pytest.raises(ValueError, match="cannot be bounded"):
            cdc_sql.merge_changes(other, "_ASR_CDC_r_T", "delete", bounded=True)
    assert key_bounds(text_key, changes) == (None, None) and key_bounds(two_keys, changes) == (None, None)
    assert key_bounds(plan, [RowChange("U", "p", ["x1", None])]) == (None, None)  # not an integer's text
