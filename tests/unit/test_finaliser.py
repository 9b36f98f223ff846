"""The finaliser's decisions and the mode choice, without any server."""

from __future__ import annotations

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.store import StateStore
from aurora_replication.models import ChunkMessage, Column, TablePlan
from aurora_replication.pipeline import finalise, modes


def _chunk(rows: int, checksum: str, at: float = 100.0, **extra: object) -> dict[str, object]:
    return {"attempt": f"a{rows}", "source_rows": rows, "source_checksum": checksum, "snapshot_at": at, **extra}


def test_a_chunk_is_compared_with_its_own_snapshot_only():
    chunks = {0: _chunk(3, "00000000000000aa"), 1: _chunk(2, "00000000000000bb"), 2: _chunk(0, "0000000000000000")}
    loaded = {0: (3, "00000000000000aa"), 1: (2, "00000000000000bc")}  # chunk 2 loaded nothing: it had no rows
    assert finalise.differing_chunks(chunks, loaded, 3) == [1]
    assert finalise.differing_chunks(chunks, {0: (3, "00000000000000aa")}, 3) == [1]  # a lost chunk differs
    assert finalise.differing_chunks(chunks, {**loaded, 1: (2, "00000000000000bb")}, 3) == []


@pytest.mark.parametrize(
    "differing, heal_round, attempts, action",
    [
        ([], 0, 2, "publish"),
        ([], 2, 2, "publish"),  # a last round that matches still publishes
        ([4, 1], 0, 2, "heal"),
        ([1], 1, 2, "heal"),
        ([1], 2, 2, "fail"),  # rounds exhausted
        ([1], 0, 0, "fail"),  # HEAL_ATTEMPTS=0: no re-copies at all
    ],
)
def test_heal_fail_or_publish(differing, heal_round, attempts, action):
    decision = finalise.decide(differing, heal_round, attempts)
    assert decision.action == action
    assert decision.chunks == sorted(differing)


def test_source_as_of_is_the_oldest_snapshot():
    chunks = {0: _chunk(1, "1", at=1700000050.5), 1: _chunk(1, "1", at=1700000010.25), 2: _chunk(1, "1", at=1700000090)}
    assert finalise.source_as_of(chunks) == 1700000010.25
    assert finalise.source_as_of({}) is None


def test_outstanding_chunks_follow_the_heal_round():
    chunks = {0: {"round": 0}, 1: {"round": 0, "need_round": 1}, 2: {"round": 1, "need_round": 1}}
    assert StateStore.outstanding(chunks, 4, 0) == [3]  # chunk 3 never finished
    assert StateStore.outstanding(chunks, 4, 1) == [1, 3]  # chunk 1 was reopened and not copied again yet
    # a heal whose finaliser died before moving the round on: nothing is due until it is redone
    assert StateStore.outstanding({0: {"round": 0, "need_round": 1}}, 1, 0) == []


def test_mismatch_names_chunks_and_key_ranges():
    bounds = [(None, ["10"]), (["10"], ["20"]), (["20"], None)]
    assert finalise.describe_range(bounds, 0) == "key <= ('10',)"
    assert finalise.describe_range(bounds, 1) == "('10',) < key <= ('20',)"
    assert finalise.describe_range(bounds, 2) == "('20',) < key (to the end)"
    assert finalise.describe_range([(None, None)], 0) == "the whole table"


# ---- the modes -------------------------------------------------------------------------------


def _plan(mode: str, transform: str | None = None) -> TablePlan:
    return TablePlan(
        table="t",
        target_table="T",
        key=["id"],
        watermark="u",
        mode=mode,  # type: ignore[arg-type]
        transform=transform,
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="u", kind="datetime", precision=6, target="U"),
            Column(name="v", kind="text", target="V"),
        ],
    )


def test_each_mode_selects_its_rows():
    def msg(mode: str) -> ChunkMessage:
        return ChunkMessage(
            run_id="r", chunk_id=0, chunk_count=1, plan=_plan(mode), window_from="2024-01-01", window_to="2024-02-01"
        )

    # incremental reads everything changed since the window's start, up to its own snapshot
    assert modes.get("incremental").selection(msg("incremental")) == ("2024-01-01", None)
    assert modes.get("full").selection(msg("full")) is None
    reconcile = modes.get("reconcile")
    assert [c.name for c in reconcile.unit_plan(_plan("reconcile")).columns] == ["id"]
    assert reconcile.selection(msg("reconcile")) is None
    assert not modes.get("full").compared(_plan("full", transform="x"))
    assert modes.get("reconcile").compared(reconcile.unit_plan(_plan("reconcile", transform="x")))


def test_the_watermark_each_mode_commits():
    state = {"window_from": "2024-01-01", "window_to": "2024-02-01 00:00:00", "plan": {"watermark": "u"}}
    assert modes.get("full").watermark(state) == "2024-02-01 00:00:00"
    assert modes.get("full").watermark({**state, "plan": {"watermark": None}}) is None
    assert modes.get("incremental").watermark(state) == "2024-02-01 00:00:00"
    assert modes.get("incremental").watermark({**state, "window_to": None}) is None
    assert modes.get("reconcile").watermark(state) is None


@pytest.mark.parametrize(
    "requested, key, watermark, stored, target, expected",
    [
        ("auto", True, True, True, True, ("incremental", None)),
        ("auto", True, True, False, True, ("full", "first run")),
        ("auto", True, False, False, True, ("full", "no watermark column")),
        ("auto", False, True, True, True, ("full", "no key")),
        ("full", False, False, False, False, ("full", None)),
        ("incremental", True, True, False, False, ("incremental", None)),
        ("reconcile", True, False, False, True, ("reconcile", None)),
    ],
)
def test_mode_choice(requested, key, watermark, stored, target, expected):
    mode, note = modes.choose(
        requested, "t", has_key=key, has_watermark=watermark, has_stored_watermark=stored, target_exists=target
    )
    assert mode == expected[0]
    assert (note is None) == (expected[1] is None)
    if expected[1]:
        assert expected[1] in note


@pytest.mark.parametrize(
    "requested, key, watermark, target, message",
    [
        ("incremental", True, False, True, "no watermark column"),
        ("incremental", False, True, True, "no primary key"),
        ("reconcile", False, True, True, "deleted rows cannot be matched"),
        ("reconcile", True, True, False, "run a full copy first"),
    ],
)
def test_mode_choice_refuses_what_the_table_cannot_do(requested, key, watermark, target, message):
    with pytest.raises(BadInputError, match=message):
        modes.choose(
            requested, "t", has_key=key, has_watermark=watermark, has_stored_watermark=True, target_exists=target
        )


@pytest.mark.parametrize(
    "result, kept",
    [
        ({"status": finalise.WAITING, "outstanding": 1}, False),  # the last chunk's finalise has the same key
        ({"status": "published", "validation": "ok"}, True),
        ({"status": "failed", "validation": "mismatch in 1 chunk(s)"}, True),
        ({"status": "published", "repeat": True}, True),
        ({"status": "healing", "round": 1, "chunks": [2]}, True),  # the next round's messages have their own keys
        ({"status": "stale", "round": 0, "current_round": 1}, True),
        ({"rows": 30, "bytes": 400, "done": 3, "of": 4, "recorded": True}, True),  # a chunk copied and counted
        ({"rows": 0, "skipped": True}, True),
        ({"rows": 30, "done": 5, "of": 4, "finalise": finalise.WAITING}, True),  # a chunk whose inline finaliser waited
    ],
)
def test_only_a_waiting_finalise_is_not_kept_under_its_idempotency_key(result, kept):
    from aurora_replication.pipeline import worker

    assert worker.settled(result) is kept
