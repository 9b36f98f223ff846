"""The whole-target check and the rolling audit's pure parts: when a table has drifted, how much a run
audits, how a slice joins the window's chunks, the mode a drifted table is copied in, and the SQL."""

from __future__ import annotations

import json

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline import audit, modes
from aurora_replication.pipeline.chunks import chunk_messages
from aurora_replication.pipeline.target_check import compare
from aurora_replication.target.snowflake import sql


def test_drift_is_a_missing_table_or_another_row_count_and_needs_a_ledger_count():
    entry = {"table_rows": 20_000, "table_rows_run": "r1"}
    assert compare("t", "T", entry, 20_000) is None
    missing = compare("t", "T", entry, None)
    assert (
        missing is not None and "'T' is missing where the ledger expects 20,000 (left by run r1)" in missing.describe()
    )
    short = compare("t", "T", entry, 0)
    assert short is not None and "has 0 rows" in short.describe()
    assert compare("t", "T", {}, None) is None  # never published: nothing to hold it to
    assert compare("t", "T", {"last_run": "r0"}, 5) is None  # an item from before the count was noted


def test_auto_copies_a_drifted_table_in_full_and_explicit_merging_modes_refuse_it():
    kwargs = {"has_key": True, "has_watermark": True, "has_stored_watermark": True, "target_exists": True}
    assert modes.choose("auto", "t", **kwargs) == ("incremental", None)
    mode, why = modes.choose("auto", "t", drift="target table 'T' is missing", **kwargs)
    assert mode == "full" and why is not None and "is missing" in why
    mode, why = modes.choose("full", "t", drift="target table 'T' is missing", **kwargs)
    assert mode == "full" and why is not None and "copied again in full" in why
    for requested in ("incremental", "reconcile"):
        with pytest.raises(BadInputError, match=f"mode '{requested}' cannot repair it"):
            modes.choose(requested, "t", drift="target table 'T' is missing", **kwargs)


@pytest.mark.parametrize(
    ("table_rows", "elapsed", "expected"),
    [
        (1_000_000, 300, 0),  # a 5-minute schedule's share of a day is 3,473 rows: below the minimum
        (1_000_000, 900, 10_417),  # 15 minutes' share passes AUDIT_MIN_ROWS
        (1_000_000, 86_400, 1_000_000),  # a day: the whole table
        (10_000_000_000, 300, 1_000_000),  # a terabyte's share is capped at AUDIT_MAX_ROWS
        (500, 300, 0),  # a small table waits for the period ...
        (500, 86_400, 10_000),  # ... then is audited whole (the walk stops at its end)
        (0, 86_400, 0),
    ],
)
def test_due_rows_share_of_the_period_with_a_minimum_and_a_cap(table_rows, elapsed, expected):
    assert audit.due_rows(table_rows, elapsed, 86_400, 10_000, 1_000_000) == expected


def test_audit_off_or_just_audited_is_nothing():
    assert audit.due_rows(1_000_000, 86_400, 0, 1, 10) == 0
    assert audit.due_rows(1_000_000, 0, 86_400, 1, 10) == 0


def _slice(lo, hi):
    ranges = [(lo, ["50"]), (["50"], hi)]
    return audit.AuditSlice(json.dumps(lo) if lo else None, json.dumps(hi) if hi else None, ranges, 100, 1.0)


def test_a_slice_cuts_the_one_window_chunk_around_itself():
    bounds, first = audit.with_slice([(None, None)], _slice(["10"], ["90"]))
    assert bounds == [(None, ["10"]), (["90"], None), (["10"], ["50"]), (["50"], ["90"])] and first == 2
    bounds, first = audit.with_slice([(None, None)], _slice(None, ["90"]))
    assert bounds == [(["90"], None), (None, ["50"]), (["50"], ["90"])] and first == 1
    bounds, first = audit.with_slice([(None, None)], _slice(["10"], None))
    assert bounds == [(None, ["10"]), (["10"], ["50"]), (["50"], None)] and first == 1
    # a window of several chunks is planned again around the slice (MySQL's cuts); without a way to cut
    # it, or with none, no slice: no key may be read by two chunks
    assert audit.with_slice([(None, ["5"]), (["5"], None)], _slice(["10"], ["90"])) is None
    assert audit.with_slice([], _slice(["10"], ["90"])) is None
    cuts: list[tuple[object, object, int]] = []

    def recut(lo, hi, pieces):
        cuts.append((lo, hi, pieces))
        edge = ["5"] if hi is not None else ["95"]
        return [(lo, edge), (edge, hi)]

    window = [(None, ["30"]), (["30"], ["60"]), (["60"], None)]
    bounds, first = audit.with_slice(window, _slice(["10"], ["90"]), recut)
    assert cuts == [(None, ["10"], 3), (["90"], None, 3)]
    assert bounds[:first] == [(None, ["5"]), (["5"], ["10"]), (["90"], ["95"]), (["95"], None)]
    assert bounds[first:] == [(["10"], ["50"]), (["50"], ["90"])]
    # a side that cannot be cut stays one range the size of several chunks: no slice then
    assert audit.with_slice(window, _slice(["10"], ["90"]), lambda lo, hi, n: [(lo, hi)]) is None


def _plan() -> TablePlan:
    cols = [
        Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
        Column(name="v", kind="text", target="V"),
        Column(name="updated_at", kind="datetime", precision=6, target="UPDATED_AT"),
    ]
    return TablePlan(table="t", target_table="T", columns=cols, key=["id"], watermark="updated_at", mode="incremental")


def test_the_slices_chunks_read_every_row_of_their_range():
    plan = _plan()
    bounds = [(None, ["10"]), (["90"], None), (["10"], ["90"])]
    messages = chunk_messages("r", plan, bounds, ("2024-01-01 00:00:00", "2024-02-01 00:00:00"), audit_from=2)
    assert [m.window_from for m in messages] == ["2024-01-01 00:00:00", "2024-01-01 00:00:00", None]
    again = chunk_messages("r", plan, bounds, ("a", "b"), ids=[2], round=1, audit_from=2)  # a heal round
    assert [(m.chunk_id, m.window_from) for m in again] == [(2, None)]


def test_target_fact_and_audit_statements():
    assert sql.existing_tables(2) == (
        "SELECT table_name FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() "
        "AND table_name IN (%s, %s)"
    )
    assert (
        sql.row_counts(["A", 'we"ird'])
        == 'SELECT 0 AS n, COUNT(*) FROM "A" UNION ALL SELECT 1 AS n, COUNT(*) FROM "we""ird"'
    )
    plan = _plan()
    attempts = sql.attempts_inline("tok", [(2, "a1")])
    text = sql.audit_differences(plan, "_ASR_INC_r_T", attempts, plan.columns)
    assert '"_ASR_CHUNK" >= %s' in text
    assert '("UPDATED_AT" IS NULL OR "UPDATED_AT" <= CAST(%s AS TIMESTAMP_NTZ(6)))' in text
    assert 'NOT EXISTS (SELECT 1 FROM (SELECT "ID", ' in text and 't."ID" = l."ID"' in text
    unbounded = sql.audit_differences(plan, "_ASR_INC_r_T", attempts, plan.columns, bounded=False)
    assert "CAST(%s" not in unbounded
    assert text.count("%s") == unbounded.count("%s") + 1


def test_a_cdc_audit_row_sorts_after_every_change_before_the_stop_and_before_every_change_at_it():
    from aurora_replication.pipeline.modes.cdc.reader import audit_position
    from aurora_replication.source.binlog import Position

    stop = Position("mysql-bin.000007", 4_096)
    tag = audit_position(stop)
    assert Position("mysql-bin.000007", 4_000).key(12) < tag < stop.key(0)
    assert Position("mysql-bin.000006", 999_999).key(0) < tag < Position("mysql-bin.000008", 4).key(0)


def test_cdc_audit_differences_statement():
    from aurora_replication.target.snowflake import cdc_sql

    plan = _plan()
    text = cdc_sql.audit_differences(plan, "_ASR_CDC_r_T", plan.columns, "delete")
    assert 'WHERE "_ASR_CHUNK" = %s' in text and 't."ID" = l."ID"' in text and text.count("%s") == 1
    assert "_ASR_DELETED_AT" not in text
    marked = cdc_sql.audit_differences(plan, "_ASR_CDC_r_T", plan.columns, "mark")
    assert 't."_ASR_DELETED_AT" IS NULL' in marked


def test_the_health_report_lists_tables_replicated_but_not_verified_for_two_periods():
    from aurora_replication.ops.health import unverified

    day = 86_400
    tables = {
        "fresh": {"since_last_run_seconds": 300, "verified_age_seconds": 3_600},
        "behind": {"since_last_run_seconds": 300, "verified_age_seconds": 3 * day},
        "never": {"since_last_run_seconds": 300},
        "retired": {"since_last_run_seconds": 5 * day, "verified_age_seconds": 9 * day},
    }
    assert unverified(tables, day) == ["behind", "never"]
