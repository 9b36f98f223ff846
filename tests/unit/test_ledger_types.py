"""The ledger's record types say what the ledger stores: every attribute written to an item is a key of
its record's ``TypedDict`` (``ledger/runs.py``, ``chunks.py``, ``leases.py``, ``lasting.py``,
``catalog.py``, ``cdc.py``). A field written without being declared fails here, so the types cannot
drift from the items: mypy checks the code that reads a record against the same declarations.

Two ways in: a round trip through every writer of the ledger (moto), then a scan of what landed; and,
for the fields the pipeline hands the ledger by name (``record_table(..., reason=...)``), the keyword
names at every call site in the package."""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from state_table import moto_store

from aurora_replication.ledger import status
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.cdc import CdcItem, CdcState
from aurora_replication.ledger.chunks import AttemptItem, ChunkInfo, ChunkItem, chunk_is_done
from aurora_replication.ledger.keys import CHUNK_FIELDS, Scope
from aurora_replication.ledger.lasting import LastRunItem, WatermarkItem
from aurora_replication.ledger.leases import LeaseItem
from aurora_replication.ledger.records import declared, record_type, undeclared
from aurora_replication.ledger.runs import (
    NewTable,
    RunItem,
    TableFields,
    TableItem,
    every_table_published,
    still_running,
    table_count,
    table_is_final,
)
from aurora_replication.ledger.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "aurora_replication" / "aurora_replication"
SCOPE = Scope.of("shop", "analytics", "public", "upper")
KEY = SCOPE.key("orders")
RUN = "20261206T000000Z-aaaaaa"


@pytest.fixture
def store() -> Any:
    with moto_store() as s:
        yield s


def _write_every_record(store: StateStore) -> None:
    """One run of two tables through each writer of the ledger, as the pipeline calls them."""
    cdc = CdcState(store)
    store.note_several_databases()
    store.create_run(RUN, "full", ["orders", "items"], {"mode": "full", "tables": ["orders", "items"]}, SCOPE)
    assert store.claim_planning(RUN, 2_000_000_000)
    assert store.acquire_lease(KEY, RUN, 900)[0]
    store.record_tables(
        RUN,
        [("orders", {"status": "running", "mode": "full", "plan": {"table": "orders"}, "chunk_count": 2}, [])],
        SCOPE,
    )
    store.record_table(RUN, "items", SCOPE, status="declined", reason="no key", chunk_count=0)
    store.note_planned(RUN, 2, release=True)
    info = {field: 1 for field in CHUNK_FIELDS} | {"attempt": "a-1", "ignored": "not a chunk field"}
    store.mark_chunk_done(RUN, "orders", 0, 0, info)
    store.mark_dead_lettered(RUN, "orders", 1, "boom")
    store.mark_chunk_done(RUN, "orders", 1, 0, info)
    store.reopen_chunks(RUN, "orders", [1], 0, 2, heal_note="asked again")
    store.mark_chunk_done(RUN, "orders", 1, 1, info)
    store.record_attempts(
        RUN,
        "orders",
        [
            {"chunk": 0, "attempt": "a-1", "kind": "chunk", "round": 0, "worker": "w", "start": 1.5, "seconds": 0.25}
            | {"steps": "[]", "status": "ok", "rows": 3},
            {"chunk": "final", "attempt": "a-2", "kind": "finalise", "round": 0, "worker": "w", "start": 2.0}
            | {"seconds": 0.5, "steps": "[]", "status": "failed", "error": "boom"},
        ],
    )
    assert store.note_once(RUN, "orders", "audit_differences", 0)
    assert store.swap_table_text(RUN, "orders", "long_publish", "{}", None)
    store.touch_table(RUN, "orders")
    assert store.claim_auto_resume(RUN, "orders")
    held = store.hold_lease(KEY, RUN, 900, Decimal(100))
    assert held is not None
    assert store.set_watermark(held, "42")
    store.note_schema_changes(KEY, [{"change": "column dropped", "column": "OLD", "at": 1, "run": RUN}])
    store.set_column_versions(KEY, {"price": {"target": "PRICE"}})
    assert store.advance_audit(KEY, RUN, None, '["5"]', 1.5, 5)
    assert store.note_fresh(KEY, 1.25, RUN)
    outcome = {"validation": "ok", "source_rows": 3, "target_rows": 3, "source_as_of": 1.5}
    store.set_table_status(RUN, "orders", "published", finished_at=2.5, **outcome)
    summary = {"status": "published", "table_rows": 3, "key_high": "5", "not_null": ["id"], "verified_at": 1.0}
    assert store.set_last_run(held, {**summary, **outcome, "differences": []})
    store.release_lease(KEY, RUN, 60)
    assert store.finish_run_if_complete(RUN, "orders")
    # a cdc table's state and a window of a run
    cdc_key = SCOPE.key("events")
    store.acquire_lease(cdc_key, RUN, 900)
    cdc_held = store.hold_lease(cdc_key, RUN, 900, Decimal(100))
    assert cdc_held is not None
    first, later = {"file": "bin.000001", "pos": 4, "gtid": ""}, {"file": "bin.000001", "pos": 90, "gtid": ""}
    assert cdc.start_snapshot(cdc_held, first, [["id", "int"]])
    assert cdc.mark_streaming(cdc_key, RUN)
    assert cdc.advance(cdc_held, first, later, 3.5, 3)
    cdc.set_columns(cdc_key, [["id", "int"]])
    cdc.set_versions(cdc_key, {})
    cdc.refute_rename(cdc_key, "a", "b")
    cdc.stop(cdc_key, "a reason")
    store.record_table(RUN, "events", SCOPE, status="running", mode="cdc", chunk_count=0, cdc_from=first)
    assert cdc.define_window(RUN, "events", cdc_to=later, batches=[], window_read_at=Decimal("3.5"), upserts=1)
    assert cdc.start_streaming(cdc_held, later, [])


def test_every_attribute_the_ledger_writes_is_declared_on_its_record_type(store: StateStore) -> None:
    _write_every_record(store)
    items = store.table.scan()["Items"]
    kinds = {record_type(str(i["pk"]), str(i["sk"])) for i in items}
    assert {RunItem, TableItem, ChunkItem, AttemptItem, LeaseItem, WatermarkItem, LastRunItem, CatalogNote} <= kinds
    assert CdcItem in kinds
    wrong = {f"{i['pk']} / {i['sk']}": sorted(undeclared(i)) for i in items if undeclared(i)}
    # ``heal_note``: a field this test writes on purpose, undeclared, to prove the check sees one
    assert wrong == {f"RUN#{RUN} / TABLE#orders": ["heal_note"]}


def test_a_new_field_written_without_being_declared_is_found() -> None:
    item = {"pk": f"RUN#{RUN}", "sk": "TABLE#orders", "status": "running", "brand_new_field": 1, "long_merge": "x"}
    assert undeclared(item) == {"brand_new_field"}
    assert undeclared({"pk": "TABLE#x", "sk": "LEASE", "run_id": RUN, "holder": "?"}) == {"holder"}


def test_the_chunk_fields_a_worker_records_are_the_chunk_types_fields() -> None:
    assert set(CHUNK_FIELDS) == declared(ChunkInfo)


def _calls(name: str) -> list[ast.Call]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
                found.append(node)
    return found


def test_the_table_fields_the_pipeline_names_are_declared() -> None:
    """Keyword names given to the TABLE item's writers, the literal keys of ``record_tables``' fields, and
    ``note_once``'s field names, at every call site in the package."""
    named: set[str] = set()
    for writer in ("record_table", "set_table_status", "reopen_chunks", "define_window"):
        calls = _calls(writer)
        assert calls, writer
        named |= {kw.arg for call in calls for kw in call.keywords if kw.arg is not None}
    for call in _calls("record_tables"):
        for node in ast.walk(call):
            if isinstance(node, ast.Dict):
                named |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    for call in _calls("note_once"):
        named |= {a.value for a in call.args[2:3] if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    assert named - declared(NewTable) == set()
    assert "status" not in declared(TableFields)  # ``set_table_status`` takes it by position


def test_the_last_run_fields_the_pipeline_names_are_declared() -> None:
    """The literal keys of every summary given to ``set_last_run`` (the rest are a finalise's outcome,
    ``TableOutcome``, which LAST_RUN shares with the TABLE item)."""
    named: set[str] = set()
    calls = _calls("set_last_run")
    assert calls
    for call in calls:
        for node in ast.walk(call):
            if isinstance(node, ast.Dict):
                named |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    assert named and named - declared(LastRunItem) == set()


def test_the_rules_on_the_records() -> None:
    assert table_is_final({"status": "published"}) and table_is_final({"status": status.SUPERSEDED})
    assert not table_is_final({"status": "declined"}) and not table_is_final({})
    assert status.is_terminal("declined") and not status.is_terminal("running")
    assert status.run_outcome(["published", "declined", "superseded"]) == "succeeded"
    assert status.run_outcome(["published", "failed"]) == "failed"
    values: dict[str, Any] = {}
    condition = status.not_final_condition(values)
    assert sorted(values.values()) == sorted(status.FINAL) and all(p in condition for p in values)
    assert still_running({"status": "running"}) and not still_running({"status": "published"})
    assert every_table_published({"table_states": {"a": {"status": "published"}}})
    assert not every_table_published({"table_states": {"a": {"status": "published"}, "b": {"status": "declined"}}})
    assert not every_table_published({"table_states": {}})
    assert table_count({"table_count": 3}) == 3 and table_count({"tables": ["a", "b"]}) == 2
    assert not chunk_is_done(None, 0)
    assert chunk_is_done({"round": 0}, 0)
    assert not chunk_is_done({"round": 0, "need_round": 1}, 1)  # a heal of round 1 asked it again
    assert chunk_is_done({"round": 1, "need_round": 2}, 1)  # asked by a heal whose round never began


def test_a_table_item_of_an_earlier_version_reads_as_its_type(store: StateStore) -> None:
    """A plan stored as a map (an earlier version), a RUN item listing its tables: read the same."""
    store.table.put_item(Item={"pk": f"RUN#{RUN}", "sk": "RUN", "tables": json.dumps(["a", "b"]), "status": "running"})
    store.table.put_item(Item={"pk": f"RUN#{RUN}", "sk": "TABLE#a", "table": "a", "plan": {"table": "a"}})
    run = store.get_run(RUN)
    assert run["tables"] == ["a", "b"] and table_count(run) == 2
    assert run["table_states"]["a"]["plan"] == {"table": "a"}
