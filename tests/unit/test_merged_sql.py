"""The merged table's statements (``target/merged_sql.py``) refuse what they cannot make exact."""

from __future__ import annotations

import pytest

from aurora_replication import typemap
from aurora_replication.identifiers import InvalidIdentifierError
from aurora_replication.models import Column, TablePlan
from aurora_replication.target.snowflake import merged_sql, sql

COLUMNS = [
    Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
    Column(name="name", kind=typemap.TEXT, warehouse_type="VARCHAR(40)", target="NAME"),
]
KEYED = TablePlan(table="items", target_table="ITEMS", columns=COLUMNS, key=["id"], mode="full")
ATTEMPTS = sql.attempts_inline("tok", [(0, "a1")])


def test_a_table_without_a_key_is_refused_naming_it_and_the_fix() -> None:
    keyless = KEYED.model_copy(update={"key": []})
    for build in (merged_sql.replace_database_rows, merged_sql.merge_database_rows):
        with pytest.raises(ValueError, match=r"table 'items' has no primary or unique key.*database_mapping"):
            build(keyless, "L", ATTEMPTS, "tenant_a")


def test_the_database_name_is_a_quoted_literal_and_a_bad_one_is_refused() -> None:
    assert merged_sql.database_filter("it's") == "\"_ASR_SOURCE_DATABASE\" = 'it\\'s'"
    with pytest.raises(InvalidIdentifierError):
        merged_sql.database_filter("tenant\n")


def test_replacing_never_overwrites_the_shared_table_and_matches_on_the_database() -> None:
    statement = merged_sql.replace_database_rows(KEYED, "L", ATTEMPTS, "tenant_a")
    assert "OVERWRITE" not in statement and "CREATE OR REPLACE" not in statement
    assert statement.startswith('MERGE INTO "ITEMS" t USING')
    assert 'ON t."_ASR_SOURCE_DATABASE" = s."_ASR_SOURCE_DATABASE" AND t."ID" = s."ID"' in statement
    assert "t.\"_ASR_SOURCE_DATABASE\" = 'tenant_a' AND NOT EXISTS" in statement  # only its own rows are deleted
    # bound: the attempts three times (the load, the rows gone, the guard), then the guard's count
    assert statement.count("%s") == 3 * len(ATTEMPTS.params) + 1


def test_a_plan_and_an_existing_table_must_agree_on_being_merged() -> None:
    plain = [("ID", "NUMBER"), ("NAME", "TEXT")]
    shared = [("_ASR_SOURCE_DATABASE", "TEXT"), *plain]
    merged = KEYED.model_copy(update={"merged": True, "source_database": "tenant_a"})
    assert merged_sql.shape_mismatch(merged, []) is None and merged_sql.shape_mismatch(KEYED, []) is None
    assert merged_sql.shape_mismatch(merged, shared) is None and merged_sql.shape_mismatch(KEYED, plain) is None
    assert "exists without _ASR_SOURCE_DATABASE" in str(merged_sql.shape_mismatch(merged, plain))
    assert "a whole copy would replace them all" in str(merged_sql.shape_mismatch(KEYED, shared))


def test_reconcile_keeps_to_the_database_of_a_merged_table() -> None:
    own = merged_sql.database_filter("tenant_a", "t.")
    assert own == "t.\"_ASR_SOURCE_DATABASE\" = 'tenant_a'"
    for build in (sql.reconcile_delete, sql.reconcile_mark, sql.reconcile_unmark, sql.keys_missing_in_target):
        plain = build(KEYED, "K", ATTEMPTS)
        merged = build(KEYED, "K", ATTEMPTS, own)
        assert own not in plain and merged.count(own) == 1, build.__name__
        assert merged.count("%s") == plain.count("%s")  # the filter binds nothing
    assert f"WHERE {own} AND NOT EXISTS" in sql.reconcile_delete(KEYED, "K", ATTEMPTS, own)
