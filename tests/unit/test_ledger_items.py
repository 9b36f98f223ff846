"""What the run ledger's items hold and how few writes they take.

A run's TABLE item holds the table's plan as JSON text: one string attribute rather than a nested map
of attribute values, which every read and update of the item (each chunk's count, the status) would
walk, in DynamoDB's JSON and in boto3's deserializer; the run's list of tables is in pages of its own
(NAMES), counted finished in a TALLY. ``get_table`` and ``get_run`` give them back as they were, and an
item written by an earlier version (a map, a list) reads the same. A finished table's catalog note
takes its outcome and its freshness in one write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws
from state_table import STATE_TABLE

from aurora_replication.ledger.keys import Held, Scope
from aurora_replication.ledger.store import StateStore
from aurora_replication.models import TablePlan

RUN = "20261205T000000Z-abcdef"
KEY = Scope.of("shop", "analytics", "public", "upper").key("orders")
PLAN: dict[str, Any] = TablePlan.model_validate(
    {
        "table": "shop.orders",
        "target_table": "SHOP_ORDERS",
        "columns": [
            {"name": "id", "kind": "integer", "snowflake_type": "NUMBER(20,0)", "target": "ID"},
            {"name": "note", "kind": "text", "snowflake_type": "VARCHAR", "target": "NOTE"},
            {
                "name": "price",
                "kind": "decimal",
                "snowflake_type": "NUMBER(12,2)",
                "target": "PRICE",
                "checksum": False,
            },
        ],
        "key": ["id"],
        "mode": "full",
        "notes": ["a note with 'quotes', \"double quotes\", a tab\t and emoji \U0001f600"],
    }
).model_dump(mode="json")


@pytest.fixture
def ddb() -> Any:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        resource.create_table(**STATE_TABLE)
        yield resource


def test_the_plan_is_one_string_attribute_and_reads_back_as_it_was(ddb: Any) -> None:
    store = StateStore("state", ddb)
    store.create_run(RUN, "full", ["orders"], {"tables": "orders"})
    store.record_table(RUN, "orders", status="running", mode="full", chunk_count=1, plan=PLAN)
    raw = ddb.Table("state").get_item(Key={"pk": f"RUN#{RUN}", "sk": "TABLE#orders"})["Item"]
    assert isinstance(raw["plan"], str)  # one string, not a map of attribute values
    assert store.get_table(RUN, "orders")["plan"] == PLAN
    assert store.get_run(RUN)["table_states"]["orders"]["plan"] == PLAN
    assert TablePlan.model_validate(store.get_table(RUN, "orders")["plan"]).key == ["id"]


def test_a_plan_stored_as_a_map_by_an_earlier_version_reads_the_same(ddb: Any) -> None:
    store = StateStore("state", ddb)
    ddb.Table("state").put_item(
        Item={"pk": f"RUN#{RUN}", "sk": "TABLE#orders", "table": "orders", "status": "running", "plan": PLAN}
    )
    assert store.get_table(RUN, "orders")["plan"] == PLAN
    assert store.get_run(RUN)["table_states"]["orders"]["plan"] == PLAN


def test_the_runs_tables_are_pages_beside_the_run_item_and_every_finished_table_counts_once(ddb: Any) -> None:
    """The RUN item holds a count of its tables, not their names: those are NAMES pages, read back in
    order; a request that lists the run's tables is kept without them and given back whole. Each finished
    table counts once in the TALLY (a repeat adds nothing), the count says when every table is finished,
    and a RUN item of an earlier version (a list, a string set) reads and counts as it did."""
    store = StateStore("state", ddb)
    tables = ["a", "b.c", "d 😀"]
    store.create_run(RUN, "full", tables, {"tables": list(tables), "mode": "full"})
    raw = ddb.Table("state").get_item(Key={"pk": f"RUN#{RUN}", "sk": "RUN"})["Item"]
    assert "tables" not in raw and "tables" not in raw["request"] and raw["table_count"] == 3
    run = store.run_item(RUN)
    assert store.run_tables(RUN, run) == tables
    assert store.run_request(run, tables) == {"tables": tables, "mode": "full"}
    assert not store.count_finished(RUN, "a")
    assert not store.count_finished(RUN, "a")  # a redelivered finaliser counts again: nothing changes
    assert store.counted(RUN) == (1, 3)
    assert not store.count_finished(RUN, "d 😀")
    assert store.count_finished(RUN, "b.c")
    assert store.count_finished(RUN, "b.c")  # still complete, still three
    assert store.counted(RUN) == (3, 3) and store.get_run(RUN)["finished_count"] == 3
    older = "20261101T000000Z-000000"
    ddb.Table("state").put_item(
        Item={
            "pk": f"RUN#{older}",
            "sk": "RUN",
            "tables": '["x","y"]',
            "status": "running",
            "request": {"tables": ["*"]},
        }
    )
    assert not store.count_finished(older, "x")
    assert not store.count_finished(older, "x")
    assert store.counted(older) == (1, 2)
    assert store.count_finished(older, "y")
    assert store.run_tables(older) == ["x", "y"] and store.get_run(older)["tables"] == ["x", "y"]
    assert store.run_request(store.run_item(older), ["x", "y"]) == {"tables": ["*"]}
    # no mark of the failed transactions was left behind for the older run
    marks = ddb.Table("state").query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
        ExpressionAttributeValues={":pk": f"RUN#{older}", ":f": "FINISHED#"},
    )["Items"]
    assert marks == []


def _held(run_id: str, order: int) -> Held:
    return Held(KEY, run_id, Decimal(order), until=10**10, seconds=7200)


def test_a_finished_table_notes_its_outcome_and_freshness_in_one_write_and_neither_moves_back(
    ddb: Any,
) -> None:
    """The catalog item takes a published run's outcome and its freshness together; a later run whose
    freshness is older writes its outcome and leaves the freshness as it was; a run that started before
    the one noted (it finished late: superseded) changes nothing."""
    store = StateStore("state", ddb)
    writes: list[str] = []
    update = store.table.update_item

    def counted(**kwargs: Any) -> Any:
        writes.append(str(kwargs["Key"]["sk"]))
        return update(**kwargs)

    store.table.update_item = counted  # type: ignore[method-assign]
    catalog = ddb.Table("state")

    def noted() -> tuple[Any, ...]:
        item = catalog.get_item(Key={"pk": "CATALOG", "sk": KEY.catalog_sk})["Item"]
        return (
            item["last_run"],
            item["last_status"],
            item["fresh_run"],
            float(item["source_as_of"]),
            int(item.get("source_rows", -1)),
        )

    store.note_table_finished(_held("run-2", 200), {"status": "published", "source_as_of": 2000.5, "source_rows": 7})
    assert writes == [KEY.catalog_sk]
    assert noted() == ("run-2", "published", "run-2", 2000.5, 7)
    writes.clear()
    store.note_table_finished(_held("run-3", 300), {"status": "published", "source_as_of": 1000.0, "source_rows": 5})
    assert len(writes) == 2  # the conditional write did not hold: the outcome alone
    assert noted() == ("run-3", "published", "run-2", 2000.5, 5)
    writes.clear()
    store.note_table_finished(_held("run-1", 100), {"status": "published", "source_as_of": 3000.0, "source_rows": 9})
    assert len(writes) == 2 and noted() == ("run-3", "published", "run-2", 2000.5, 5)  # started first: nothing
    store.note_table_finished(_held("run-4", 400), {"status": "failed", "reason": "mismatch"})
    assert noted()[1:4] == ("failed", "run-2", 2000.5)
