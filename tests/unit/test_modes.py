"""What the rest of the code asks a sync mode instead of comparing its name (``pipeline/modes/base.py``):
each answer is the one the code gave by name before, and the checks below the pipeline (``models.MODE_RULES``)
refuse what they refused, with the same sentences."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aurora_replication import schema_changes, typemap
from aurora_replication.errors import BadInputError
from aurora_replication.models import (
    MODE_RULES,
    ChangeBatch,
    ChunkMessage,
    Column,
    TablePlan,
    parse_run_request,
)
from aurora_replication.pipeline import modes
from aurora_replication.source.binlog import Position
from aurora_replication.target.names import cdc_load_table_name, load_table_name


def _plan(mode: str = "full", *, key: bool = True, watermark: bool = True, history: bool = False) -> TablePlan:
    return TablePlan(
        table="t",
        target_table="T",
        columns=[
            Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
            Column(name="at", kind=typemap.DATETIME, precision=0, target="AT"),
        ],
        key=["id"] if key else [],
        watermark="at" if watermark else None,
        mode=mode,
        history=history,
    )


def _which(answer: str) -> list[str]:
    return sorted(name for name, m in modes.REQUESTED.items() if getattr(m, answer, False))


def test_every_requested_mode_has_its_rules_and_only_auto_is_no_sync_mode() -> None:
    assert set(modes.REQUESTED) == set(MODE_RULES)
    assert set(modes.REQUESTED) - set(modes.MODES) == {"auto"}
    assert all(modes.requested(name) is m for name, m in modes.MODES.items())
    with pytest.raises(BadInputError, match="unknown mode 'sometimes'"):
        modes.requested("sometimes")
    with pytest.raises(BadInputError, match="unknown sync mode 'auto'"):
        modes.get("auto")  # a table is never copied in auto: it is resolved first (``modes.choose``)


def test_each_question_has_the_answer_the_names_gave() -> None:
    assert _which("reads_window") == ["incremental"]
    assert _which("may_read_window") == ["auto", "incremental"]
    assert _which("replaces_target") == ["full"]
    assert _which("needs_target") == ["reconcile"]
    assert _which("owns_flow") == ["cdc"]
    assert _which("applies_units") == ["cdc"]
    assert _which("idle_when_unchanged") == ["cdc", "incremental"]
    assert {n: m.fallback for n, m in modes.REQUESTED.items()} == {
        "full": None,
        "incremental": None,
        "reconcile": None,
        "cdc": None,
        "auto": "full",
    }
    assert [n for n, m in modes.MODES.items() if m.health_check() is not None] == ["cdc"]


def test_a_kept_column_is_logged_as_a_full_copy_leaves_it() -> None:
    assert modes.get("full").kept_detail(_plan()) == schema_changes.KEPT_BY_COPY
    assert modes.get("full").kept_detail(_plan(history=True)) == schema_changes.KEPT_DETAIL
    for name in ("incremental", "reconcile", "cdc"):
        assert modes.get(name).kept_detail(_plan(name)) == schema_changes.KEPT_DETAIL


@pytest.mark.parametrize(
    "mode, key, watermark, sentence",
    [
        ("incremental", True, False, "incremental mode needs a key and a watermark column"),
        ("incremental", False, True, "incremental mode needs a key and a watermark column"),
        ("reconcile", False, True, "reconcile mode needs a key"),
        ("cdc", False, True, "cdc mode needs a key"),
    ],
)
def test_a_chunk_message_of_a_mode_holds_what_the_mode_needs(mode: str, key: bool, watermark: bool, sentence: str):
    with pytest.raises(ValidationError, match=sentence):
        ChunkMessage(
            run_id="r", chunk_id=0, chunk_count=1, plan=_plan(mode, key=key, watermark=watermark), kind="finalise"
        )
    ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan("full", key=key, watermark=watermark))


def test_only_a_cdc_chunk_carries_a_batch() -> None:
    start, end = Position("b.000001", 4).key(), Position("b.000002", 900).key()
    batch = ChangeBatch(start=start, end=end, path="cdc/t", file="batch-00000.csv.gz", rows=1)
    ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan("cdc"), batch=batch)
    ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan("cdc"), kind="finalise")
    sentence = "a batch of changes is what a cdc chunk applies, and only a cdc chunk"
    with pytest.raises(ValidationError, match=sentence):
        ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan("cdc"))
    with pytest.raises(ValidationError, match=sentence):
        ChunkMessage(run_id="r", chunk_id=0, chunk_count=1, plan=_plan("incremental"), batch=batch)


def test_the_request_fields_of_cdc_go_with_cdc_only() -> None:
    for mode in ("full", "incremental", "auto", "reconcile"):
        with pytest.raises(
            BadInputError, match=rf"resnapshot is a field of cdc runs: give it with mode 'cdc' \(the mode is '{mode}'\)"
        ):
            parse_run_request({"tables": "t", "mode": mode, "resnapshot": True}, "auto")
        with pytest.raises(BadInputError, match="start_position is a field of cdc runs"):
            parse_run_request({"tables": "t", "mode": mode, "start_position": "now"}, "auto")
        merged = parse_run_request(
            {"tables": "t", "mode": mode, "databases": "a,b", "database_mapping": "merge"}, "auto"
        )
        assert merged.database_mapping == "merge"
    assert parse_run_request({"tables": "t", "mode": "cdc", "resnapshot": True, "start_position": "now"}, "auto")
    with pytest.raises(BadInputError, match="database_mapping 'merge' is not supported with mode 'cdc': each database"):
        parse_run_request({"tables": "t", "mode": "cdc", "databases": "a,b", "database_mapping": "merge"}, "auto")


def test_load_tables_are_named_by_the_mode() -> None:
    names = {m: load_table_name(_plan(m), "r1") for m in ("full", "incremental", "reconcile")}
    assert names == {"full": "_ASR_FULL_r1_T", "incremental": "_ASR_INC_r1_T", "reconcile": "_ASR_KEYS_r1_T"}
    assert cdc_load_table_name(_plan("cdc"), "r1") == "_ASR_CDC_r1_T"
    with pytest.raises(ValueError, match="mode 'cdc' has no load table of chunks"):
        load_table_name(_plan("cdc"), "r1")
