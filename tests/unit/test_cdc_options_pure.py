"""The pure parts of applying a cdc table's options to row images (``pipeline/modes/cdc/options.py``)."""

from __future__ import annotations

import hashlib

from aurora_replication.pipeline.modes.cdc import options as cdc_options
from aurora_replication.pipeline.modes.cdc.options import WhereColumn


def _col(name: str, data_type: str, column_type: str, **kw: object) -> WhereColumn:
    fields = {"numeric_precision": None, "numeric_scale": None, "datetime_precision": None}
    fields |= {"charset": None, "collation": None} | kw
    return WhereColumn(name, data_type, column_type, **fields)  # type: ignore[arg-type]


def test_where_columns_are_the_back_quoted_names_once_each():
    assert cdc_options.where_columns("`a` = 1 AND (`b``c` IS NULL OR `a` < 'x`y')") == ["a", "b`c"]


def test_each_value_takes_its_columns_type_and_collation():
    assert cdc_options.typed_value(_col("n", "int", "int(10) unsigned")) == "CAST(%s AS UNSIGNED)"
    assert cdc_options.typed_value(_col("d", "decimal", "decimal(10,2)", numeric_precision=10, numeric_scale=2)) == (
        "CAST(%s AS DECIMAL(10,2))"
    )
    assert cdc_options.typed_value(_col("t", "datetime", "datetime(3)", datetime_precision=3)) == (
        "CAST(%s AS DATETIME(3))"
    )
    text = _col("s", "varchar", "varchar(9)", charset="latin1", collation="latin1_swedish_ci")
    assert cdc_options.typed_value(text) == "CONVERT(%s USING latin1) COLLATE latin1_swedish_ci"
    for refused in (
        _col("e", "enum", "enum('a')", charset="utf8mb4", collation="utf8mb4_general_ci"),
        _col("f", "double", "double"),
        _col("z", "int", "int(5) zerofill"),
        _col("b", "varbinary", "varbinary(4)"),
    ):
        assert cdc_options.typed_value(refused) is None


def test_the_where_query_binds_every_value_and_answers_in_order():
    statement = cdc_options.where_query(
        "`s` = 'x'", [_col("s", "char", "char(1)", charset="utf8mb4", collation="c")], 2
    )
    assert statement == (
        "SELECT `_asr_i`, (`s` = 'x') IS TRUE FROM (SELECT %s AS `_asr_i`, CONVERT(%s USING utf8mb4) COLLATE c AS `s` "
        "UNION ALL SELECT %s AS `_asr_i`, CONVERT(%s USING utf8mb4) COLLATE c AS `s`) AS `_asr_image` ORDER BY `_asr_i`"
    )


def test_masks_are_mysqls_digests_of_the_text():
    from aurora_replication.source.binlog_values import ColumnFacts

    facts = ColumnFacts(name="e", kind="text", data_type="varchar", column_type="varchar(9)", charset="utf8mb4")
    assert cdc_options.mask_value("sha256", facts, "é😀") == hashlib.sha256("é😀".encode()).hexdigest()
    assert cdc_options.mask_value("md5", facts, "12") == "c20ad4d76fe97759aa27a0c99bff6710"
    assert cdc_options.mask_kind("MD5(`e`)", "e") == "md5"
