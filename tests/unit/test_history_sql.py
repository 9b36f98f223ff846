"""History mode's statement builders as text: quoted identifiers, bound values, the rules they encode."""

from __future__ import annotations

import pytest

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.models import Column, TableOptions, TablePlan
from aurora_replication.pipeline import transforms
from aurora_replication.target.snowflake import history_sql

PLAN = TablePlan(
    table="order lines",
    target_table="ORDER LINES",
    columns=[
        Column(name="order_id", kind=typemap.INTEGER, precision=10, scale=0, target="ORDER_ID"),
        Column(name="line", kind=typemap.INTEGER, precision=5, scale=0, target="LINE"),
        Column(name="doc", kind=typemap.JSON, target="DOC"),
    ],
    key=["order_id", "line"],
    mode="cdc",
    history=True,
)


def test_history_table_and_current_view():
    create = history_sql.create_history_table(PLAN)
    assert create.startswith('CREATE TABLE IF NOT EXISTS "ORDER LINES" (')
    for name, kind in history_sql.HISTORY_COLUMNS:
        assert f'"{name}" {kind}' in create
    view = history_sql.create_current_view(PLAN)
    assert view.startswith('CREATE OR REPLACE VIEW "ORDER LINES_CURRENT" COPY GRANTS AS SELECT * EXCLUDE')
    assert view.endswith('FROM "ORDER LINES" WHERE "_ASR_IS_CURRENT"')


def test_cdc_merge_matches_key_and_position_and_binds_the_chunk_twice():
    merge = history_sql.cdc_merge(PLAN, "_ASR_CDC_R_ORDER LINES")
    assert merge.count("%s") == 2
    assert 't."LINE" = s."LINE" AND t."ORDER_ID" = s."ORDER_ID" AND t."_ASR_POS" = s."_ASR_POS"' in merge
    assert 'PARTITION BY u."LINE", u."ORDER_ID" ORDER BY u."_ASR_POS"' in merge
    assert "PARSE_JSON(l.\"DOC\", 'd')" in merge
    assert "WHEN MATCHED AND NOT (" in merge and "WHEN NOT MATCHED THEN INSERT" in merge
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW" in merge  # times never go back along a chain


def test_snapshot_merge_and_close_absent_bind_values_never_paste_them():
    rows = '"L"."_ASR_CHUNK" = %s'
    merge = history_sql.snapshot_merge(PLAN, "L", rows)
    assert merge.count("%s") == 8  # (time, time, position, the rows' one) twice
    assert "IS NOT DISTINCT FROM" in merge and "GREATEST(CAST(%s AS TIMESTAMP_NTZ)" in merge
    close = history_sql.close_absent(PLAN, "L", rows)
    assert close.count("%s") == 6
    assert "'D'" in close and "NOT EXISTS" in close


def test_invariants_one_column_per_rule_and_the_message_names_them():
    query = history_sql.invariants(PLAN)
    assert [name for name, _ in history_sql.INVARIANTS] == [
        "duplicate_versions",
        "several_current",
        "overlapping",
        "stale_current",
        "open_closed",
    ]
    for name, _ in history_sql.INVARIANTS:
        assert f"AS {name}" in query
    scoped = history_sql.invariants(PLAN, 'SELECT "ORDER_ID", "LINE" FROM "L"')
    assert "WHERE EXISTS (SELECT 1 FROM (SELECT" in scoped
    assert history_sql.describe_broken("t", [0, 0, 0, 0, 0]) is None
    message = history_sql.describe_broken("t", [0, 2, 0, 1, None])
    assert (
        message is not None and "2 current versions beside another" in message and "1 current versions that" in message
    )


def test_history_needs_a_key_and_history_tables_sets_the_option():
    keyless = PLAN.model_copy(update={"key": [], "history": False})
    with pytest.raises(BadInputError, match="no primary key"):
        transforms.apply_options(keyless, TableOptions(history=True), "upper", transform_modules="")
    with pytest.raises(ValueError, match="needs a key"):
        history_sql.cdc_merge(keyless, "L")
    options = transforms.with_history_tables({"a": TableOptions(exclude=["x"])}, " a, b ,")
    assert options["a"].history and options["a"].exclude == ["x"] and options["b"].history
    assert TableOptions.model_validate({"history": True}).history
    with pytest.raises(ValueError):
        TableOptions.model_validate({"history": "yes"})


def test_the_pipelines_own_columns_are_not_reported_as_dropped_in_mysql():
    from aurora_replication.target.snowflake import evolution

    existing = [("ORDER_ID", "NUMBER", 10, 0), ("LINE", "NUMBER", 5, 0), ("DOC", "VARIANT", None, None)]
    existing += [
        (name, kind.split("(")[0].replace("VARCHAR", "TEXT"), None, None) for name, kind in history_sql.HISTORY_COLUMNS
    ]
    existing.append(("OLD", "TEXT", None, None))
    change = evolution.diff(PLAN, existing)
    assert change.kept_in_target == ["OLD"] and not change.conflicts and not change.add


def test_a_plan_and_its_target_must_agree_on_history_mode():
    plain = [("ORDER_ID", "NUMBER", 10, 0), ("LINE", "NUMBER", 5, 0)]
    versions = [*plain, *((name, "X", None, None) for name, _ in history_sql.HISTORY_COLUMNS)]
    off = PLAN.model_copy(update={"history": False})
    assert history_sql.mode_mismatch(PLAN, []) is None and history_sql.mode_mismatch(off, []) is None
    assert history_sql.mode_mismatch(PLAN, versions) is None and history_sql.mode_mismatch(off, plain) is None
    assert "holds plain rows" in (history_sql.mode_mismatch(PLAN, plain) or "")
    assert "is a history table" in (history_sql.mode_mismatch(off, versions) or "")
