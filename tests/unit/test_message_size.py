"""A chunk message references its run's plan and its chunk's key range instead of carrying them: a
table of 1,000 columns with a 3,000-character key and 3,000 chunks keeps every message a few hundred
bytes (SQS: 256 KiB a message and a batch of ten) and every ledger item below 400 KB."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fake_dynamodb import ITEM_LIMIT, FakeResource, item_size

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.store import StateStore
from aurora_replication.models import ChunkMessage, ChunkRef, Column, TablePlan
from aurora_replication.pipeline import worker
from aurora_replication.pipeline.chunks import chunk_messages, finalise_message

RUN = "20261201T000000Z-wide01"
CHUNKS = 3_000
SQS_LIMIT = 256 * 1024


def _plan() -> TablePlan:
    columns = [Column(name=f"k{i}", kind="text", warehouse_type="VARCHAR(1000)", target=f"K{i}") for i in range(3)] + [
        Column(name=f"a_rather_long_column_name_{i:04d}", kind="text", target=f"C{i:04d}") for i in range(1_000)
    ]
    return TablePlan(table="wide", target_table="WIDE", columns=columns, key=["k0", "k1", "k2"], mode="full")


def _key(i: int) -> list[str]:
    return [f"{i:08d}" + "é" * 992, "x" * 1000, f"{i}" * 3]


def test_wide_keys_and_many_chunks_keep_messages_small_and_items_below_the_limit() -> None:
    resource = FakeResource()
    state = StateStore("state", resource)
    plan = _plan()
    bounds = [(_key(i) if i else None, _key(i + 1) if i < CHUNKS - 1 else None) for i in range(CHUNKS)]
    state.record_table(
        RUN, "wide", status="running", mode="full", plan=plan.model_dump(mode="json"), chunk_count=CHUNKS
    )
    state.save_bounds(RUN, "wide", bounds)
    items = resource.tables["state"].items.values()
    assert max(item_size(i) for i in items) < ITEM_LIMIT * 0.8
    assert sum(1 for i in items if str(i["sk"]).startswith("BOUNDS#")) > CHUNKS // 250  # pages split by size

    messages = chunk_messages(RUN, plan, bounds, None)
    whole = len(messages[1].model_dump_json())
    assert whole > 100_000  # what each message carried before: the plan and both bounds
    bodies = [m.body() for m in messages]
    assert max(len(b.encode()) for b in bodies) < 300
    assert max(sum(len(b.encode()) for b in bodies[i : i + 10]) for i in range(0, CHUNKS, 10)) < SQS_LIMIT // 100
    assert "plan" not in json.loads(bodies[0]) and "lower" not in json.loads(bodies[5])

    services = SimpleNamespace(state=state, connections=SimpleNamespace(with_retries=lambda fn, what: fn()))
    worker._PLANS.clear()
    calls = resource.tables["state"].calls
    for i in (0, 1, 249, 250, 1234, CHUNKS - 1):
        ref = worker.parse_message(bodies[i])
        assert isinstance(ref, ChunkRef)
        assert worker.hydrate(ref, services) == messages[i]  # type: ignore[arg-type]
    assert resource.tables["state"].calls - calls == 1 + 6  # the plan read once, one bounds query each
    final = worker.parse_message(finalise_message(RUN, plan, CHUNKS).body())
    assert worker.hydrate(final, services).plan == plan  # type: ignore[arg-type]


def test_a_reference_without_a_ledger_says_so_and_a_whole_message_still_parses() -> None:
    state = StateStore("state", FakeResource())
    services = SimpleNamespace(state=state, connections=SimpleNamespace(with_retries=lambda fn, what: fn()))
    worker._PLANS.clear()
    ref = ChunkRef(run_id="r-gone", table="wide", chunk_id=0, chunk_count=1)
    with pytest.raises(BadInputError, match="has no plan of table 'wide'.*RUN_RETENTION_DAYS"):
        worker.hydrate(ref, services)  # type: ignore[arg-type]
    plan = _plan()
    whole = chunk_messages("r1", plan, [(None, None)], None)[0]
    assert worker.parse_message(whole.model_dump_json()) == whole  # sample events, earlier versions
    assert isinstance(worker.parse_message(whole.body()), ChunkRef)
    assert ChunkMessage.model_validate_json(whole.model_dump_json()).ref().idempotency_key == whole.idempotency_key
