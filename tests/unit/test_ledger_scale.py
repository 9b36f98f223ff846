"""A table of 20,000 chunks in the run ledger: every item stays far below DynamoDB's 400 KB limit,
the fan-in fires when the last chunk is recorded, and heal rounds and resumes see the right chunks.

It drives the real ``StateStore`` against ``fake_dynamodb`` (moto, at a few milliseconds a call,
would take many minutes for 20,000 chunks on this machine; the same expressions run against moto
in the integration tests)."""

from __future__ import annotations

import random

import pytest
from fake_dynamodb import ITEM_LIMIT, FakeResource, item_size

from aurora_replication.ledger.store import StateStore

CHUNKS = 20_000
RUN = "20261201T000000Z-abcdef"


def _info(chunk: int, attempt: str = "first") -> dict[str, object]:
    return {
        "attempt": f"{1796000000000000000 + chunk:020d}-{attempt}",
        "rows": 50_000,
        "bytes": 3_500_000,
        "seconds": 12.345,
        "source_rows": 50_000,
        "source_checksum": f"{chunk * 7919:016x}",
        "snapshot_at": 1764547200.123456 + chunk,
        "source_position": "binlog:mysql-bin.000042:1234567890",
    }


@pytest.fixture
def store() -> tuple[StateStore, FakeResource]:
    resource = FakeResource()
    s = StateStore("state", resource)
    s.record_table(RUN, "orders", status="running", mode="full", chunk_count=CHUNKS, plan={"table": "orders"})
    bounds = [
        ([str(i * 50_000)] if i else None, [str((i + 1) * 50_000)] if i < CHUNKS - 1 else None) for i in range(CHUNKS)
    ]
    s.save_bounds(RUN, "orders", bounds)
    return s, resource


def test_the_old_single_item_ledger_could_not_hold_20000_chunks():
    """Why chunks have items of their own: a done set and two per-chunk maps in the table item."""
    old = {
        "done": {str(i) for i in range(CHUNKS)},
        "chunk_rows": {str(i): 50_000 for i in range(CHUNKS)},
        "chunk_seconds": {str(i): 12.345 for i in range(CHUNKS)},
    }
    assert item_size(old) > ITEM_LIMIT


def test_a_20000_chunk_table_fans_in_once_every_chunk_is_recorded(store):
    s, resource = store
    table = resource.Table("state")
    order = list(range(CHUNKS))
    random.Random(3).shuffle(order)
    duplicate = order[123]  # delivered twice: the second copy must not replace the first's entry
    triggers = []
    for n, chunk in enumerate(order):
        recorded, done = s.mark_chunk_done(RUN, "orders", chunk, 0, _info(chunk))
        assert recorded
        if done >= CHUNKS:
            triggers.append((n, s.outstanding(s.get_chunks(RUN, "orders"), CHUNKS, 0)))
        if chunk == duplicate:
            again, _ = s.mark_chunk_done(RUN, "orders", chunk, 0, _info(chunk, "second"))
            assert not again
    # the duplicate counted too (after a crash between entry and count it must), so a finalise
    # went out one chunk early and found one chunk outstanding; the last chunk sent another
    assert [n for n, _ in triggers] == [CHUNKS - 2, CHUNKS - 1]
    assert triggers[0][1] == [order[-1]] and triggers[1][1] == []
    chunks = s.get_chunks(RUN, "orders")
    assert len(chunks) == CHUNKS
    assert chunks[duplicate]["attempt"].endswith("-first")
    assert sum(int(c["rows"]) for c in chunks.values()) == CHUNKS * 50_000
    t = s.get_table(RUN, "orders")
    assert t["rows_copied"] == CHUNKS * 50_000 and t["done_count"] == CHUNKS + 1
    assert len(s.get_bounds(RUN, "orders")) == CHUNKS
    # no item grows with the chunk count: the table item holds counters, chunks their own items
    assert item_size(table.items[(f"RUN#{RUN}", "TABLE#orders")]) < 2_000
    assert table.largest < 100 * 1024  # the largest item is a page of 250 key ranges


def test_heal_rounds_and_resume_at_20000_chunks(store):
    s, _ = store
    for chunk in range(CHUNKS):
        s.mark_chunk_done(RUN, "orders", chunk, 0, _info(chunk))
    reopened = list(range(0, CHUNKS, 40))  # 500 chunks differ from their snapshots
    assert s.reopen_chunks(RUN, "orders", reopened, 0, CHUNKS, last_mismatch="[]")
    assert not s.reopen_chunks(RUN, "orders", reopened, 0, CHUNKS)  # a duplicate finaliser of the round
    assert s.get_table(RUN, "orders")["heal_round"] == 1
    chunks = s.get_chunks(RUN, "orders")
    assert s.outstanding(chunks, CHUNKS, 1) == reopened  # what a resume sends again
    # a late round-0 delivery of a reopened chunk neither replaces its entry nor counts
    assert s.mark_chunk_done(RUN, "orders", reopened[0], 0, _info(reopened[0], "stale")) == (False, -1)
    last = None
    for chunk in reopened:
        recorded, last = s.mark_chunk_done(RUN, "orders", chunk, 1, _info(chunk, "healed"))
        assert recorded
    assert last == CHUNKS  # the last re-copy completes the round
    chunks = s.get_chunks(RUN, "orders")
    assert s.outstanding(chunks, CHUNKS, 1) == []
    assert all(chunks[c]["attempt"].endswith("-healed") and chunks[c]["round"] == 1 for c in reopened)
    assert chunks[1]["attempt"].endswith("-first") and chunks[1]["round"] == 0
