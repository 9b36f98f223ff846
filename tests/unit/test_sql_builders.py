"""Pure builders and encoders, tested as text without any database."""

from __future__ import annotations

import gzip

import pytest

from aurora_replication import checksums, typemap
from aurora_replication.identifiers import InvalidIdentifierError, mysql_ident, snowflake_ident, target_name
from aurora_replication.keyset import range_predicate
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline import chunks, staging
from aurora_replication.source import sql as source_sql
from aurora_replication.target.names import cdc_load_table_name
from aurora_replication.target.snowflake import sql as snowflake_sql
from aurora_replication.target.snowflake import types as snowflake_types


def plan(mode: str = "full", key: list[str] | None = None) -> TablePlan:
    return TablePlan(
        table="order items",
        target_table="ORDER ITEMS",
        columns=[
            Column(name="id", kind="integer", precision=20, scale=0, target="ID"),
            Column(name="line", kind="integer", precision=5, scale=0, target="LINE"),
            Column(name='na"me', kind="text", target='NA"ME'),
            Column(name="doc", kind="json", target="DOC"),
            Column(name="at", kind="datetime", precision=6, target="AT"),
        ],
        key=key if key is not None else ["id", "line"],
        watermark="at",
        mode=mode,  # type: ignore[arg-type]
    )


def test_identifiers_are_quoted_with_the_quote_doubled():
    assert mysql_ident("we`ird") == "`we``ird`"
    assert snowflake_ident('we"ird') == '"we""ird"'
    assert target_name("Order", "upper") == "ORDER"
    assert target_name("Order", "preserve") == "Order"
    for bad in ["", "a\x00b", "x" * 65, " lead"]:
        with pytest.raises(InvalidIdentifierError):
            mysql_ident(bad)


def test_range_predicate_is_lexicographic_with_bound_values():
    sql, params = range_predicate(["a", "b"], ["1", "x"], ["5", "y"], mysql_ident)
    assert sql == ("((`a` > %s) OR (`a` = %s AND `b` > %s)) AND ((`a` < %s) OR (`a` = %s AND `b` <= %s))")
    assert params == ["1", "1", "x", "5", "5", "y"]
    assert range_predicate(["a"], None, None, mysql_ident) == ("1 = 1", [])


def test_chunk_query_adds_the_watermark_window():
    sql, params = source_sql.chunk_query(plan("incremental"), ["3", "1"], None, ("2024-01-01", "2024-02-01"))
    assert sql.endswith("AND `at` > %s AND (`at` <= %s)")
    assert params[-2:] == ["2024-01-01", "2024-02-01"]
    first, _ = source_sql.chunk_query(plan("incremental"), None, None, (None, "2024-02-01"))
    assert "`at` IS NULL" in first  # a first incremental run also takes rows without a watermark


OK_TABLE = snowflake_sql.attempts_in_table("_ASR_OK_r1_ORDER ITEMS", "tok")
VALIDATED = (
    'EXISTS (SELECT 1 FROM "_ASR_OK_r1_ORDER ITEMS" a WHERE a."_ASR_TOKEN" = %s '
    'AND a."_ASR_CHUNK" = "{load}"."_ASR_CHUNK" AND a."_ASR_ATTEMPT" = "{load}"."_ASR_ATTEMPT")'
)


def test_merge_joins_on_every_key_column_and_reads_only_the_validated_attempts():
    p = plan("incremental")
    sql = snowflake_sql.merge_validated(p, "_ASR_INC_r1_ORDER ITEMS", OK_TABLE)
    assert 'ON t."ID" = s."ID" AND t."LINE" = s."LINE"' in sql
    assert 'PARSE_JSON("DOC", \'d\') AS "DOC"' in sql  # a duplicate key keeps its last value
    assert f"WHERE {VALIDATED.format(load='_ASR_INC_r1_ORDER ITEMS')}) s ON" in sql
    assert sql.count("%s") == 1  # the finaliser's token
    assert 'UPDATE SET t."NA""ME" = s."NA""ME"' in sql
    assert 't."ID" = s."ID",' not in sql.split("UPDATE SET")[1]  # keys are not updated
    check = snowflake_sql.merged_rows(p, "_ASR_INC_r1_ORDER ITEMS", OK_TABLE)
    assert 's."ID" = "ORDER ITEMS"."ID" AND s."LINE" = "ORDER ITEMS"."LINE"' in check


def test_publish_takes_the_validated_attempts_and_casts_every_column():
    p = plan()
    name = snowflake_sql.published_copy_name("_ASR_FULL_r1_ORDER ITEMS", "ab12")
    copy = snowflake_sql.published_copy(p, name, "_ASR_FULL_r1_ORDER ITEMS", OK_TABLE)
    assert copy.startswith(
        'CREATE TRANSIENT TABLE "_ASR_FULL_r1_ORDER ITEMS_NEW_ab12" AS SELECT CAST("ID" AS NUMBER(20,0)) AS "ID"'
    )
    assert 'CAST(PARSE_JSON("DOC", \'d\') AS VARIANT) AS "DOC"' in copy
    assert copy.endswith(f"WHERE {VALIDATED.format(load='_ASR_FULL_r1_ORDER ITEMS')}")
    assert "MAX(" not in copy  # never "the latest attempt": a late duplicate must not be published
    # the target is recreated from the copy once it is counted (a DDL statement cannot roll back)
    assert snowflake_sql.publish(p, name) == (
        'CREATE OR REPLACE TABLE "ORDER ITEMS" COPY GRANTS AS SELECT "ID", "LINE", "NA""ME", "DOC", "AT" '
        'FROM "_ASR_FULL_r1_ORDER ITEMS_NEW_ab12"'
    )


def test_overwrite_keeps_the_table_and_names_every_column_it_fills():
    p = plan()
    sql = snowflake_sql.overwrite(p, "_ASR_FULL_r1_ORDER ITEMS", OK_TABLE)
    assert sql.startswith('INSERT OVERWRITE INTO "ORDER ITEMS" ("ID", "LINE", "NA""ME", "DOC", "AT") SELECT CAST(')
    assert 'CAST(PARSE_JSON("DOC", \'d\') AS VARIANT) AS "DOC"' in sql
    rows, guard = sql.split(" UNION ALL ")
    assert rows.endswith(f"WHERE {VALIDATED.format(load='_ASR_FULL_r1_ORDER ITEMS')}")
    # the guard: one row of the validated rows' count, whose condition fails the statement unless it is the
    # expected count (bound last), with a NULL of each target column's type
    assert guard.startswith('SELECT CAST(NULL AS NUMBER(20,0)) AS "ID", ')
    assert (
        f'(SELECT COUNT(*) AS "_ASR_N" FROM "_ASR_FULL_r1_ORDER ITEMS" WHERE {VALIDATED.format(load="_ASR_FULL_r1_ORDER ITEMS")})'
        in guard
    )
    assert guard.endswith(
        "WHERE CAST(IFF(\"_ASR_N\" = %s, '0', 'the load table no longer holds the validated rows: ' || "
        "TO_VARCHAR(\"_ASR_N\") || ' rows') AS NUMBER(1,0)) = 1"
    )
    assert sql.count("%s") == 3 and "CREATE" not in sql and "MAX(" not in sql


def test_an_attempt_is_counted_and_summed_by_its_chunk_and_attempt_ids_alone():
    p = plan()
    with_json = checksums.checksum_columns(p, json_text=True)
    sql = snowflake_sql.attempt_checksum_query("L", with_json, None)
    assert sql.startswith('SELECT COUNT(*), SUM("_ASR_TERM") FROM (SELECT MD5_NUMBER_UPPER64(')
    assert sql.endswith('FROM "L" WHERE "_ASR_CHUNK" = %s AND "_ASR_ATTEMPT" = %s)')
    both = snowflake_sql.attempt_checksum_query("L", with_json, checksums.checksum_columns(p))
    assert both.startswith('SELECT COUNT(*), SUM("_ASR_TERM"), SUM("_ASR_TERM2") FROM')
    assert both.count("%s") == 2


def test_validated_checksums_group_by_chunk_over_the_named_attempts_only():
    p = plan()
    where = snowflake_sql.validated("L", OK_TABLE)
    sql = snowflake_sql.checksum_by_chunk_query("L", checksums.checksum_columns(p), where)
    assert sql.startswith('SELECT "_ASR_CHUNK", COUNT(*)') and sql.endswith('GROUP BY "_ASR_CHUNK"')
    assert f"WHERE {where})" in sql and "QUALIFY" not in sql
    insert = snowflake_sql.insert_attempts("_ASR_OK_r1_ORDER ITEMS", 2)
    assert insert.endswith("FROM VALUES (%s, %s, %s), (%s, %s, %s)")
    assert OK_TABLE.params == ("tok",) and OK_TABLE.table == "_ASR_OK_r1_ORDER ITEMS"


def test_a_few_validated_pairs_are_bound_inline_in_the_statement_that_reads_them():
    p = plan()
    inline = snowflake_sql.attempts_inline("tok", [(0, "a0"), (3, "a3")])
    assert inline.table is None
    assert inline.params == ("tok", 0, "a0", "tok", 3, "a3", "tok")  # the pairs, then the token compared
    sql = snowflake_sql.overwrite(p, "L", inline)
    assert (
        'FROM (SELECT column1 AS "_ASR_TOKEN", column2 AS "_ASR_CHUNK", column3 AS "_ASR_ATTEMPT" '
        'FROM VALUES (%s, %s, %s), (%s, %s, %s)) a WHERE a."_ASR_TOKEN" = %s' in sql
    )
    # the rows' and the guard's pairs, then the guard's expected count
    assert sql.count("%s") == 2 * len(inline.params) + 1 and "_ASR_OK_" not in sql
    with pytest.raises(ValueError):
        snowflake_sql.attempts_inline("tok", [])
    with pytest.raises(ValueError):
        snowflake_sql.attempts_inline("tok", [(i, "a") for i in range(snowflake_sql.INLINE_ATTEMPTS + 1)])


def test_copy_reads_one_file_with_a_lossless_csv_format():
    sql = snowflake_sql.copy_into(plan(), "L", "MY_STAGE", "order_items_1/r1/0", ["data-1.csv.gz"])
    assert "FROM @MY_STAGE/order_items_1/r1/0/data-1.csv.gz" in sql
    # NULL is an empty unquoted field, "" the empty string, and no text is ever read as NULL
    assert "FIELD_OPTIONALLY_ENCLOSED_BY = '\"'" in sql and "NULL_IF = ()" in sql
    # each attempt has its own file: the load history may skip a file loaded twice, never a new one
    assert "EMPTY_FIELD_AS_NULL = TRUE" in sql and "FORCE" not in sql and sql.endswith("PURGE = TRUE")
    with pytest.raises(ValueError):
        snowflake_sql.stage_location("S", "a'; DROP", "x")


def test_the_file_format_names_the_date_and_timestamp_formats_the_staging_writes(tmp_path):
    """With AUTO, COPY reads dates and timestamps with the account's or user's input formats, which an
    administrator may have changed: the file format pins the formats the staging writes, and the
    staging writes them (MySQL's DATE_FORMAT on the server path, the encoders on the Python and cdc
    paths): a date as YYYY-MM-DD, a datetime with six fractional digits whatever its precision."""
    sql = snowflake_sql.copy_into(plan(), "L", "MY_STAGE", "t/r1/0", ["data-1.csv.gz"])
    assert (
        "DATE_FORMAT = 'YYYY-MM-DD' TIME_FORMAT = 'HH24:MI:SS.FF6' TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6')"
        in sql
    )
    assert "AUTO" not in sql
    p = plan()
    encs = staging.encoders(p)
    at = [c.name for c in p.columns].index("at")
    for text, staged in [
        ("2024-01-01 00:00:00", "2024-01-01 00:00:00.000000"),
        ("2024-01-01 00:00:00.5", "2024-01-01 00:00:00.500000"),
        ("2024-01-01 23:59:59.123456", "2024-01-01 23:59:59.123456"),
        ("0000-00-00 00:00:00", ""),
    ]:
        assert encs[at](text) == staged
    line, _ = source_sql.line_query(p, None, None)
    assert "DATE_FORMAT(`at`, '%%Y-%%m-%%d %%H:%%i:%%s.%%f')" in line


def test_copy_of_a_chunk_read_in_parts_names_its_files_in_one_statement():
    files = ["data-1-000.csv.gz", "data-1-001.csv.gz"]
    sql = snowflake_sql.copy_into(plan(), "L", "MY_STAGE", "order_items_1/r1/0", files)
    assert "FROM @MY_STAGE/order_items_1/r1/0/ FILES = ('data-1-000.csv.gz', 'data-1-001.csv.gz') FILE_FORMAT" in sql
    assert sql.endswith("PURGE = TRUE")
    for bad in (["a.csv.gz", "b'); DROP TABLE x; --"], [], ["f"] * (snowflake_sql.MAX_COPY_FILES + 1)):
        with pytest.raises(ValueError):
            snowflake_sql.copy_into(plan(), "L", "MY_STAGE", "p", bad)


def test_staging_file_keeps_quotes_newlines_empty_strings_and_nulls(tmp_path):
    p = plan()
    rows = [
        ("1", "2", 'a "q", b\nc\\d', '{"k": 1}', "2024-01-01 00:00:00.5"),
        ("2", "3", "", None, "0000-00-00 00:00:00"),
        ("3", "4", "\\N", "null", None),
    ]
    staged = staging.write_csv_gz(str(tmp_path / "f.csv.gz"), p, rows, 7, "att")
    text = gzip.open(staged.path, "rt", encoding="utf-8").read()
    assert staged.rows == 3
    assert text == (
        # a timestamp with six fractional digits: the file format's TIMESTAMP_FORMAT
        '1,2,"a ""q"", b\nc\\d","{""k"": 1}",2024-01-01 00:00:00.500000,7,att\n'
        '2,3,"",,,7,att\n'  # the empty string is "", NULL and the zero date are empty fields
        '3,4,"\\N","null",,7,att\n'  # text that looks like NULL is quoted text
    )


def sf(ct: typemap.ColumnType) -> str:
    """The Snowflake type of a column MySQL maps to ``ct``: the plan's neutral facts, mapped by the warehouse."""
    column = Column(name="a", kind=ct.kind, target="A", precision=ct.precision, scale=ct.scale, size=ct.size)
    return snowflake_types.column_type(column)


def test_type_mapping_is_lossless_for_common_types():
    m = typemap.map_column
    assert sf(m("a", "bigint", "bigint(20) unsigned")) == "NUMBER(20,0)"
    assert sf(m("a", "bigint", "bigint(20)")) == "NUMBER(19,0)"
    assert sf(m("a", "decimal", "decimal(65,30)", 65, 30)) == "VARCHAR"
    assert sf(m("a", "decimal", "decimal(12,2)", 12, 2)) == "NUMBER(12,2)"
    assert sf(m("a", "datetime", "datetime(3)", datetime_precision=3)) == "TIMESTAMP_NTZ(3)"
    assert sf(m("a", "longtext", "longtext", is_json=True)) == "VARIANT"
    assert m("a", "json", "json").kind == typemap.JSON
    assert sf(m("a", "time", "time(6)")) == "VARCHAR"
    assert sf(m("a", "varbinary", "varbinary(10)")) == "BINARY"
    # the types MySQL lets grow past Snowflake's default sizes are declared at Snowflake's maximum
    assert sf(m("a", "longtext", "longtext")) == "VARCHAR(134217728)"
    assert sf(m("a", "mediumtext", "mediumtext")) == "VARCHAR"
    assert sf(m("a", "longblob", "longblob")) == "BINARY(67108864)"
    assert sf(m("a", "mediumblob", "mediumblob")) == "BINARY(67108864)"
    assert m("g", "geometry", "geometry") == typemap.ColumnType(typemap.SPATIAL, size=typemap.LONG_BYTES)
    assert sf(m("g", "geometry", "geometry")) == "BINARY(67108864)"
    assert m("g", "point", "point").kind == typemap.SPATIAL
    with pytest.raises(typemap.UnsupportedTypeError, match="column 'v'"):
        m("v", "vector", "vector(3)")


def test_checksum_queries_use_the_same_canonical_columns_on_both_sides():
    p = plan()
    mysql_sql = source_sql.checksum_query(p)
    sf_sql = snowflake_sql.checksum_query(p, "T", checksums.checksum_columns(p))
    # JSON only where Snowflake holds it as MySQL's text (a load table)
    assert [c.name for c in checksums.checksum_columns(p)] == ["id", "line", 'na"me', "at"]
    assert [c.name for c in checksums.checksum_columns(p, json_text=True)] == ["id", "line", 'na"me', "doc", "at"]
    assert [c.name for c in checksums.unchecked_columns(p)] == ["doc"]
    assert "TIMESTAMPDIFF(MICROSECOND" in mysql_sql and "DATE_PART(EPOCH_MICROSECOND" in sf_sql
    assert checksums.fold_hashes(["0" * 31 + "1", "f" * 32]) == checksums.fold_hashes(["f" * 32, "0" * 31 + "1"])


# ---- validation that heals, reconcile --------------------------------------------------------


def test_target_range_needs_a_key_that_orders_alike_in_both_engines():
    p = plan("incremental")
    where, params = snowflake_sql.target_range(p, ["1", "2"], ["3", "4"], alias="t.")
    assert where == (
        '((t."ID" > %s) OR (t."ID" = %s AND t."LINE" > %s)) AND ((t."ID" < %s) OR (t."ID" = %s AND t."LINE" <= %s))'
    )
    assert params == ["1", "1", "2", "3", "3", "4"]
    text_key = plan("incremental", key=['na"me'])
    assert not snowflake_sql.order_safe(text_key)
    with pytest.raises(ValueError, match="does not order alike"):
        snowflake_sql.target_range(text_key, ["a"], None)


def test_reconcile_statements_read_the_validated_attempts_of_the_keys_table():
    p = plan("reconcile")
    assert snowflake_sql.load_table_name(p, "r1") == "_ASR_KEYS_r1_ORDER ITEMS"
    ok = snowflake_sql.attempts_in_table(snowflake_sql.attempts_table_name(p, "r1"), "tok")
    delete = snowflake_sql.reconcile_delete(p, "_ASR_KEYS_r1_ORDER ITEMS", ok)
    assert delete.startswith('DELETE FROM "ORDER ITEMS" t WHERE NOT EXISTS (SELECT 1 FROM (SELECT "ID", "LINE" FROM')
    assert VALIDATED.format(load="_ASR_KEYS_r1_ORDER ITEMS") in delete and delete.count("%s") == 3
    # deletes only while the keys table holds every validated key: one emptied by a straggler after
    # another finaliser dropped it would otherwise delete every row of the target
    guard = f' AND (SELECT COUNT(*) FROM "_ASR_KEYS_r1_ORDER ITEMS" WHERE {VALIDATED.format(load="_ASR_KEYS_r1_ORDER ITEMS")}) = %s'
    assert delete.endswith(guard)
    missing = snowflake_sql.keys_missing_in_target(p, "_ASR_KEYS_r1_ORDER ITEMS", ok)
    assert missing.startswith('SELECT COUNT(*) FROM "_ASR_KEYS_r1_ORDER ITEMS" WHERE EXISTS')
    assert 'NOT EXISTS (SELECT 1 FROM "ORDER ITEMS" t WHERE t."ID" = "_ASR_KEYS_r1_ORDER ITEMS"."ID"' in missing
    mark = snowflake_sql.reconcile_mark(p, "K", ok)
    assert mark.startswith(
        'UPDATE "ORDER ITEMS" t SET "_ASR_DELETED_AT" = SYSDATE() WHERE t."_ASR_DELETED_AT" IS NULL AND NOT EXISTS'
    )
    assert mark.endswith(f' AND (SELECT COUNT(*) FROM "K" WHERE {VALIDATED.format(load="K")}) = %s')
    unmark = snowflake_sql.reconcile_unmark(p, "K", ok)
    assert 'SET "_ASR_DELETED_AT" = NULL' in unmark and " AND EXISTS (" in unmark and "NOT EXISTS" not in unmark
    assert snowflake_sql.add_deleted_column(p) == (
        'ALTER TABLE "ORDER ITEMS" ADD COLUMN IF NOT EXISTS "_ASR_DELETED_AT" TIMESTAMP_NTZ'
    )


def test_range_checksums_add_up_to_the_table():
    parts = [
        checksums.fold_hashes(["ffffffffffffffff0000", "0000000000000001aaaa"]),
        checksums.fold_hashes(["10" * 16]),
    ]
    assert checksums.add_checksums(parts) == checksums.fold_hashes(
        ["ffffffffffffffff0000", "0000000000000001aaaa", "10" * 16]
    )
    where, params = range_predicate(["id"], ["5"], ["9"], mysql_ident)
    sql = source_sql.checksum_query(plan(), where)
    assert sql.endswith("FROM `order items` WHERE ((`id` > %s)) AND ((`id` <= %s))") and params == ["5", "9"]


def test_checksums_fold_inside_both_databases_to_the_same_sum():
    import hashlib

    rows = ["a", "b\x1fc", "é😀", ""]
    hashes = [hashlib.md5(r.encode()).hexdigest() for r in rows]  # noqa: S324 - a checksum, not security
    total = sum(int(h[:16], 16) for h in hashes)
    assert checksums.fold_sums(str(len(rows)), str(total)) == checksums.fold_hashes(hashes)
    assert checksums.fold_sums(0, None) == checksums.fold_hashes([])
    p = plan()
    mysql_sql = source_sql.checksum_aggregate_query(p, "`id` > %s")
    assert mysql_sql.startswith("SELECT COUNT(*), SUM(CAST(CONV(SUBSTRING(MD5(CONCAT_WS(CHAR(31), ")
    assert mysql_sql.endswith("FROM `order items` WHERE `id` > %s")
    sf_sql = snowflake_sql.checksum_aggregate_query(p, "_ASR_FULL_r_T", checksums.checksum_columns(p), load_table=True)
    assert sf_sql.startswith(
        """SELECT COUNT(*), SUM("_ASR_TERM") FROM (SELECT MD5_NUMBER_UPPER64(CONCAT_WS(CHR(31), COALESCE("""
    )
    assert sf_sql.endswith(snowflake_sql.ONE_ATTEMPT_PER_CHUNK + ")")
    by_chunk = snowflake_sql.checksum_by_chunk_query("L", checksums.checksum_columns(p))
    assert by_chunk.startswith('SELECT "_ASR_CHUNK", COUNT(*), SUM(') and by_chunk.endswith('GROUP BY "_ASR_CHUNK"')


def test_chunk_size_adapts_to_the_row_width():
    mb64 = 64 * 1024 * 1024
    narrow = chunks.adaptive_chunk_rows(40, mb64, 100_000)
    wide = chunks.adaptive_chunk_rows(4_000, mb64, 100_000)
    assert narrow == 1_677_721 and wide == 16_777  # about 64 MB of table data either way
    assert narrow * 40 <= mb64 < (narrow + 1) * 40
    assert chunks.adaptive_chunk_rows(0, mb64, 100_000) == 100_000  # row size unknown: the default
    assert chunks.adaptive_chunk_rows(40, 0, 100_000) == 100_000  # CHUNK_TARGET_MB=0: the default
    assert chunks.adaptive_chunk_rows(1, mb64, 5) == 10_000_000 and chunks.adaptive_chunk_rows(10**9, mb64, 5) == 1_000


def test_a_value_longer_than_snowflake_holds_is_named_by_table_row_and_column(tmp_path, monkeypatch):
    monkeypatch.setattr(typemap, "VARCHAR_MAX_BYTES", 10)
    p = TablePlan(
        table="docs",
        target_table="DOCS",
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="body", kind="text", size=typemap.LONG_BYTES, target="BODY"),
            Column(name="note", kind="text", target="NOTE"),
        ],
        key=["id"],
        mode="full",
    )
    fits = [("1", "é" * 5, "x" * 50)]  # 10 bytes; a MEDIUMTEXT-sized column is never checked
    assert staging.bound_rows(p, fits) == [["1", "é" * 5, "x" * 50]]
    too_long = [*fits, ("2", "é" * 6, None)]  # 12 bytes in UTF-8
    match = r"table 'docs', row id='2': column 'body' holds 12 bytes, more than Snowflake's VARCHAR holds \(10 bytes\)"
    with pytest.raises(staging.ValueTooLargeError, match=match):
        staging.bound_rows(p, too_long)
    with pytest.raises(staging.ValueTooLargeError, match=match):
        staging.write_csv_gz(str(tmp_path / "f.csv.gz"), p, too_long, 0, "a")
    # MySQL's formatted line of such a row is NULL, so the worker re-encodes the chunk in Python
    assert "WHEN LENGTH(CONVERT(`body` USING utf8mb4)) > 10 THEN NULL" in source_sql.line_query(p, None, None)[0]
    assert "LENGTH(CONVERT(`note`" not in source_sql.line_query(p, None, None)[0]


def test_every_kind_has_one_canonical_spelling_in_each_engine():
    kinds = {
        "integer": "NUMBER(10,0)",
        "decimal": "NUMBER(10,10)",
        "float": "FLOAT",
        "bit": "NUMBER(20,0)",
        "year": "NUMBER(4,0)",
        "text": "VARCHAR",
        "binary": "BINARY",
        "spatial": typemap.BINARY_MAX,
        "time": "VARCHAR",
        "date": "DATE",
        "datetime": "TIMESTAMP_NTZ(6)",
        "json": "VARIANT",
    }
    facts = {"integer": (10, 0), "decimal": (10, 10), "bit": (20, 0), "year": (4, 0), "datetime": (6, None)}
    cols = [
        Column(
            name=k,
            kind=k,
            target=k.upper(),
            precision=facts.get(k, (None, None))[0],
            scale=facts.get(k, (None, None))[1],
            size=typemap.LONG_BYTES if k == "spatial" else None,
        )
        for k in kinds
    ]
    assert {c.kind: snowflake_types.column_type(c) for c in cols} == kinds  # the warehouse's types of the kinds
    p = TablePlan(table="t", target_table="T", columns=cols, key=["integer"], mode="full")
    assert {c.kind for c in checksums.checksum_columns(p, json_text=True)} == set(kinds)  # every column checked
    mysql = {c.kind: source_sql.canonical_expr(c) for c in cols}
    snowflake = {c.kind: snowflake_sql.canonical(c) for c in cols}
    assert mysql["year"] == "CAST(CAST(`year` AS UNSIGNED) AS CHAR)"  # YEAR 0 is '0', not '0000'
    assert mysql["text"] == "CONCAT(CHAR_LENGTH(CONVERT(`text` USING utf8mb4)), ':', CONVERT(`text` USING utf8mb4))"
    assert snowflake["text"] == """LENGTH("TEXT") || ':' || "TEXT\""""
    assert mysql["binary"] == "HEX(`binary`)" and snowflake["binary"] == 'HEX_ENCODE("BINARY")'
    assert "LOG2(ABS((`float` + 0e0)))" in mysql["float"] and 'LOG(2, ABS("FLOAT"))' in snowflake["float"]
    assert "'0' || " in snowflake["decimal"]  # NUMBER(p,p): the leading zero put back where it is left out
    assert source_sql.key_md5(p) == "MD5(CONCAT_WS(CHAR(31), CAST(`integer` AS CHAR)))"
    assert snowflake_sql.key_md5(p) == 'MD5(CONCAT_WS(CHR(31), CAST("INTEGER" AS VARCHAR)))'


def test_the_float_spelling_is_the_exact_double():
    """``m'p'e`` with |x| = m * 2^(e-52) and 2^52 <= m < 2^53, subnormals included, spells each double once."""
    import math

    from aurora_replication.pipeline import diagnose

    for x in [0.1, -1.5, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 3.4028234663852886e38, 1e22]:
        m, e = math.frexp(abs(x))  # |x| = m * 2^e, 0.5 <= m < 1
        mantissa = int(m * 2**53)
        assert 2**52 <= mantissa < 2**53 and mantissa == m * 2**53
        assert diagnose.float_of_canonical(("-" if x < 0 else "") + f"{mantissa}p{e - 1}") == x


def test_statements_with_bound_values_keep_percent_signs_in_names_and_strings():
    from aurora_replication.target.snowflake.client import bindable

    statement = 'DELETE FROM "growth%" WHERE "id%s" = %s AND "a""%" = \'50%\' AND "x" = \'it\\\'s %s\''
    bound = bindable(statement)
    # what the connector does with it: statement % values
    assert bound % ("7",) == statement.replace(" = %s AND", " = 7 AND", 1)
    assert bindable("SELECT %s, %s") == "SELECT %s, %s"
    assert bindable("SELECT 10 % 3 WHERE x = %s") == "SELECT 10 %% 3 WHERE x = %s"


def test_server_lines_can_carry_each_rows_checksum_term():
    """``hashed``: the second column is the term MySQL's chunk checksum sums, JSON as its text."""
    p = plan()
    plain, params = source_sql.line_query(p, ["1", "2"], ["5", "0"])
    hashed, hashed_params = source_sql.line_query(p, ["1", "2"], ["5", "0"], hashed=True)
    assert hashed_params == params
    term = source_sql.row_hash_hex(p, json_text=True)
    assert hashed == plain.replace(" FROM ", f", {term} FROM ", 1)
    # the same MD5 as the term the aggregate sums, sent as its first 16 hex digits
    md5 = term.removeprefix("LEFT(").removesuffix(", 16)")
    assert f"SUM(CAST(CONV(SUBSTRING({md5}, 1, 16), 16, 10) AS UNSIGNED))" in source_sql.checksum_aggregate_query(
        p, json_text=True
    )
    assert "`doc`" in term and "`doc`" not in source_sql.row_hash_hex(p)


def test_row_hashes_add_up_only_a_whole_read_and_refuse_an_unhashable_row():
    from aurora_replication.source.read import RowHashes

    terms = [2**64 - 1, 5, 2**63]
    hashes = RowHashes(plan())
    rows = [(f"line {i}", f"{t:016x}") for i, t in enumerate(terms)]
    assert list(hashes.feed(iter(rows))) == rows  # passed on as they are
    assert hashes.checksum() == (3, f"{sum(terms) & 0xFFFFFFFFFFFFFFFF:016x}")
    assert hashes.checksum() == checksums.add_checksums([(1, f"{t:016x}") for t in terms])

    partial = RowHashes(plan())
    fed = partial.feed(iter(rows))
    next(fed)
    fed.close()
    with pytest.raises(RuntimeError, match="not all read"):
        partial.checksum()

    with pytest.raises(RuntimeError, match="longer than MySQL's max_allowed_packet"):
        list(RowHashes(plan()).feed(iter([("a", "1"), ("b", None)])))


def test_zerofill_numbers_are_read_and_compared_as_numbers_not_mysqls_padded_text():
    """MySQL prints a ZEROFILL value padded ('000', '00000001.50'); Snowflake holds the number, so the
    copy reads ``col + 0`` (every digit and the scale, no padding) and compares that."""
    m = typemap.map_column
    assert m("z", "int", "int(10) unsigned zerofill") == typemap.ColumnType("integer", 10, 0, zerofill=True)
    assert sf(m("z", "bigint", "bigint(20) zerofill")) == "NUMBER(20,0)"  # ZEROFILL implies UNSIGNED
    assert m("z", "decimal", "decimal(10,2) unsigned zerofill", 10, 2).zerofill
    assert m("z", "decimal", "decimal(65,30) unsigned zerofill", 65, 30) == typemap.ColumnType("text", zerofill=True)
    assert not m("z", "int", "int(11)").zerofill
    cols = [
        Column(name="i", kind="integer", precision=10, scale=0, target="I", zerofill=True),
        Column(name="d", kind="decimal", precision=10, scale=2, target="D", zerofill=True),
        Column(name="big", kind="text", target="BIG", zerofill=True),
        Column(name="f", kind="float", target="F", zerofill=True),
    ]
    p = TablePlan(table="t", target_table="T", columns=cols, key=["i"], mode="full")
    assert source_sql.canonical_expr(cols[0]) == "CAST((`i` + 0) AS CHAR)"
    assert source_sql.canonical_expr(cols[1]) == "CAST((`d` + 0) AS CHAR)"
    assert "CONVERT(CAST((`big` + 0) AS CHAR) USING utf8mb4)" in source_sql.canonical_expr(cols[2])
    assert "(`f` + 0e0)" in source_sql.canonical_expr(cols[3])
    assert source_sql.key_md5(p) == "MD5(CONCAT_WS(CHAR(31), CAST((`i` + 0) AS CHAR)))"
    query, _ = source_sql.chunk_query(p, None, None)
    assert query.startswith("SELECT (`i` + 0), (`d` + 0), (`big` + 0), (`f` + 0e0) FROM")
    line, _ = source_sql.line_query(p, None, None)
    assert "ELSE (`i` + 0) END" in line and "REPLACE(CONVERT((`big` + 0) USING utf8mb4)" in line


@pytest.mark.parametrize("name", ["顧客", "café_crème", "naïve table", "ÄÖÜ", "😀", "orders", "a-b", "a_b"])
def test_stage_paths_are_ascii_and_deterministic_for_any_table_name(name):
    from aurora_replication.models import ChangeBatch
    from aurora_replication.pipeline.modes.cdc.reader import batch_file, window_path
    from aurora_replication.source.binlog import Position, Window

    component = staging.stage_path_component(name)
    assert component == staging.stage_path_component(name) and component.isascii()
    snowflake_sql.stage_location("STAGE", f"{component}/run/0", "data-1.csv.gz")  # accepted as safe
    start, end = "0000000001:000000000004:000000", "0000000002:000000000900:000000"
    window = Window(start=Position("b.000001", 4), end=Position("b.000002", 900))
    path = window_path(name, window, name)  # the run id and the database spelled as a table name is
    ChangeBatch(start=start, end=end, path=path, file=batch_file(name, start, end, 99_999), rows=1)
    ChangeBatch(start=start, end=end, path=path, file=batch_file(name * 20, start, end, 0), rows=1)  # the longest
    assert staging.stage_path_component("a-b") != staging.stage_path_component("a_b")  # same safe part, own hash
    assert staging.stage_path_component("orders") == "orders_96584038"  # a plain name keeps its path


def test_names_derived_from_the_longest_table_names_fit_the_identifier_limit():
    from aurora_replication.identifiers import MAX_IDENTIFIER_LENGTH, bounded_name
    from aurora_replication.target.snowflake import cdc_sql

    long_a, long_b = "長" * 20 + "a" * 44, "長" * 20 + "a" * 43 + "b"
    run = "20261206T085019Z-4229ab"
    names = set()
    for table in (long_a, long_b):
        p = TablePlan(
            table=table,
            target_table=table,
            columns=[Column(name="id", kind="integer", precision=10, scale=0, target="ID")],
            key=["id"],
            mode="full",
        )
        derived = [
            snowflake_sql.load_table_name(p, run),
            snowflake_sql.load_table_name(p.model_copy(update={"mode": "incremental"}), run),
            snowflake_sql.attempts_table_name(p, run),
            cdc_load_table_name(p, run),
            cdc_sql.tombstone_table_name(p),
        ]
        for name in derived:
            assert len(name) <= MAX_IDENTIFIER_LENGTH and snowflake_sql.q(name)  # accepted as an identifier
        names.update(derived)
    assert len(names) == 10  # two tables that share their first characters still get their own tables
    assert bounded_name("_ASR_TOMB_ORDERS") == "_ASR_TOMB_ORDERS"  # a name that fits keeps its spelling
