"""A table's lasting state (watermark, last run, cdc position) is written only by the run holding the
table's lease, and only forward: a run that started on the table before the run that wrote it last
changes nothing, whatever the values (a watermark of 9 after one of 10 is not "older" as text)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from state_table import moto_store

from aurora_replication.ledger import keys as state_keys
from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.keys import Scope
from aurora_replication.ledger.store import StateStore

KEY = Scope.of("shop", "analytics", "public", "upper").key("orders")
LEASE = 900
A, B, C = "20261205T100000Z-aaaaaa", "20261205T110000Z-bbbbbb", "20261205T120000Z-cccccc"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(state_keys, "now", c)
    return c


@pytest.fixture
def store() -> Any:
    with moto_store() as s:
        yield s


def _item(store: StateStore, sk: str) -> dict[str, Any] | None:
    item = store.table.get_item(Key=KEY.item(sk), ConsistentRead=True).get("Item")
    return dict(item) if item else None


def test_a_run_whose_lease_another_run_took_cannot_hold_it_nor_write(store: StateStore, clock: Clock) -> None:
    assert store.acquire_lease(KEY, A, LEASE)[0]
    held_a = store.hold_lease(KEY, A, LEASE, Decimal(100))
    assert held_a is not None
    clock.now += LEASE + 1  # A made no progress: its lease expired, B takes the table
    assert store.acquire_lease(KEY, B, LEASE)[0]
    assert store.hold_lease(KEY, A, LEASE, Decimal(100)) is None  # the publish guard refuses A
    held_b = store.hold_lease(KEY, B, LEASE, Decimal(200))
    assert held_b is not None and store.set_watermark(held_b, "10")
    # A's proof is stale: its write renews first (half its lease has passed) and is refused
    assert not store.set_watermark(held_a, "5")
    assert not store.set_last_run(held_a, {"status": "published"})
    watermark = _item(store, "WATERMARK")
    assert watermark is not None and (watermark["value"], watermark["run_id"]) == ("10", B)
    assert _item(store, "LAST_RUN") is None


def test_watermarks_move_forward_by_run_order_not_by_value(store: StateStore, clock: Clock) -> None:
    # B started later and committed "10"; A, older, resumed into a free lease, would put "9" back
    store.acquire_lease(KEY, B, LEASE)
    held_b = store.hold_lease(KEY, B, LEASE, Decimal(200))
    assert held_b is not None and store.set_watermark(held_b, "10")
    store.release_lease(KEY, B, 0)
    assert store.hold_lease(KEY, B, LEASE, Decimal(200)) is None  # released: not held again by B
    clock.now += 1
    store.table.delete_item(Key=KEY.item("LEASE"))  # as the local stack does when it starts again
    held_a = store.hold_lease(KEY, A, LEASE, Decimal(100))
    assert held_a is not None  # nobody holds the table: A may hold it ...
    assert not store.set_watermark(held_a, "9")  # ... but not move the watermark back
    assert _item(store, "WATERMARK")["value"] == "10"  # type: ignore[index]
    # a later run may commit a smaller value (the newest rows were deleted): runs order, not values
    store.release_lease(KEY, A, 0)
    clock.now += 1
    assert store.acquire_lease(KEY, C, LEASE)[0]
    held_c = store.hold_lease(KEY, C, LEASE, Decimal(300))
    assert held_c is not None and store.set_watermark(held_c, "9")
    assert store.set_watermark(held_c, "9")  # a repeated finaliser of the same run writes again
    watermark = _item(store, "WATERMARK")
    assert watermark is not None and (watermark["value"], watermark["run_id"]) == ("9", C)
    note = store.table.get_item(Key={"pk": "CATALOG", "sk": KEY.catalog_sk})["Item"]
    assert (note["watermark"], note["watermark_run"]) == ("9", C)


def test_the_last_run_moves_forward_only(store: StateStore, clock: Clock) -> None:
    store.acquire_lease(KEY, B, LEASE)
    held_b = store.hold_lease(KEY, B, LEASE, Decimal(200))
    assert held_b is not None and store.set_last_run(held_b, {"status": "published", "source_rows": 5})
    store.table.delete_item(Key=KEY.item("LEASE"))
    held_a = store.hold_lease(KEY, A, LEASE, Decimal(100))
    assert held_a is not None and not store.set_last_run(held_a, {"status": "failed"})
    last = _item(store, "LAST_RUN")
    assert last is not None and (last["run_id"], last["status"]) == (B, "published")
    catalog = store.table.get_item(Key={"pk": "CATALOG", "sk": KEY.catalog_sk})["Item"]
    assert (catalog["last_run"], catalog["last_status"]) == (B, "published")


def test_a_cdc_position_moves_only_by_the_lease_holder(store: StateStore, clock: Clock) -> None:
    cdc = CdcState(store)
    first = {"file": "mysql-bin.000001", "pos": 4}
    later = {"file": "mysql-bin.000001", "pos": 900}
    store.acquire_lease(KEY, A, LEASE)
    held_a = store.hold_lease(KEY, A, LEASE, Decimal(100))
    assert held_a is not None and cdc.start_snapshot(held_a, first, [])
    assert cdc.mark_streaming(KEY, A)
    clock.now += LEASE + 1
    assert store.acquire_lease(KEY, B, LEASE)[0]  # A's lease expired: B has the table
    # A's window is the one the position is at, but A no longer holds the lease
    assert not cdc.advance(held_a, first, later, 1.0, None)
    assert cdc.get(KEY)["position_key"] == "0000000001:000000000004:000000"  # type: ignore[index]
    held_b = store.hold_lease(KEY, B, LEASE, Decimal(200))
    assert held_b is not None and cdc.advance(held_b, first, later, 2.0, None)
    assert cdc.get(KEY)["committed_by"] == B  # type: ignore[index]


def test_a_schema_change_noted_twice_by_one_run_is_recorded_and_counted_once(store: StateStore) -> None:
    """A planning step retried after a transient error notes the same change again: the catalog keeps
    one record and the second note adds (so the SchemaChanges metric counts) nothing; another run's
    record of the same column is a change of its own."""
    record = {"change": "column dropped", "column": "LEGACY", "at": 1, "run": A}
    assert store.note_schema_changes(KEY, [record]) == [record]
    assert store.note_schema_changes(KEY, [{**record, "at": 2}]) == []
    later = {**record, "run": B}
    assert store.note_schema_changes(KEY, [later]) == [later]
    item = store.table.get_item(Key={"pk": "CATALOG", "sk": KEY.catalog_sk}, ConsistentRead=True)["Item"]
    assert [(r["column"], r["run"]) for r in item["schema_changes"]] == [("LEGACY", A), ("LEGACY", B)]
