"""The local stack's moto answers a table Query from the asked-for partition only
(``local/moto_server.install_query_patch``), with exactly the results moto gives otherwise."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from moto import mock_aws

from aurora_replication_dev.local import moto_server


@pytest.fixture
def table() -> Any:
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        t = ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_g",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        with t.batch_writer() as w:
            for p in range(12):
                for i in range(40):
                    w.put_item(Item={"pk": f"P#{p:02d}", "sk": f"S#{i:03d}", "n": i, "g": f"G{i % 3}", "pad": "x" * 50})
        yield t


def _all_pages(table: Any, **kwargs: Any) -> list[dict[str, Any]]:
    items, start = [], None
    while True:
        page = table.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        items.extend(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": Key("pk").eq("P#07")},
    {"KeyConditionExpression": Key("pk").eq("P#07") & Key("sk").begins_with("S#01")},
    {"KeyConditionExpression": Key("pk").eq("P#07") & Key("sk").between("S#005", "S#022")},
    {"KeyConditionExpression": Key("pk").eq("P#07") & Key("sk").gte("S#030"), "ScanIndexForward": False},
    {"KeyConditionExpression": Key("pk").eq("P#07"), "Limit": 7},
    {"KeyConditionExpression": Key("pk").eq("P#07"), "FilterExpression": Attr("n").gt(30), "Limit": 5},
    {"KeyConditionExpression": Key("pk").eq("P#07"), "ProjectionExpression": "sk, n"},
    {"KeyConditionExpression": Key("pk").eq("P#99")},
    {"KeyConditionExpression": Key("g").eq("G1"), "IndexName": "by_g"},
]


@pytest.mark.parametrize("query", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_a_query_gives_what_moto_gives(table: Any, query: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models.table import Table

    monkeypatch.setattr(moto_server, "_query_patched", False)
    monkeypatch.setattr(Table, "query", Table.query)  # undone after the test: moto's own again
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    before = _all_pages(table, **query)
    moto_server.install_query_patch()
    after = _all_pages(table, **query)
    assert after == before
    if "IndexName" not in query and query["KeyConditionExpression"] != Key("pk").eq("P#99"):
        assert after, "the query should find items"


def _install_query_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The query patch for this test only: moto's own query again afterwards."""
    from moto.dynamodb.models.table import Table

    monkeypatch.setattr(moto_server, "_query_patched", False)
    monkeypatch.setattr(Table, "query", Table.query)
    monkeypatch.setattr(Table, "all_items", Table.all_items)
    moto_server.install_query_patch()


def test_a_query_lists_only_its_own_partition(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_query_patch(monkeypatch)
    listed: list[int] = []
    partition_items = moto_server._partition_items

    def spy(t: Any, hash_key: Any, comparison: str | None, objs: list[Any]) -> list[Any]:
        items = partition_items(t, hash_key, comparison, objs)
        listed.append(len(items))
        return items

    monkeypatch.setattr(moto_server, "_partition_items", spy)
    items = _all_pages(table, KeyConditionExpression=Key("pk").eq("P#03"))
    assert [i["sk"] for i in items] == [f"S#{i:03d}" for i in range(40)]
    assert listed == [40]  # 40 items of the 480 in the table
    # a scan, and a later query of another partition, still see everything moto holds
    assert len(table.scan()["Items"]) == 480
    assert len(_all_pages(table, KeyConditionExpression=Key("pk").eq("P#11"))) == 40


def test_a_query_sizes_only_the_items_its_key_condition_reads(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto sizes every item of the partition for the 1 MB page limit before it tests the sort key
    condition; DynamoDB reads (and counts toward the limit) only the items in the key condition's
    range. The patched query sizes those only, and still pages backwards and forwards as moto does."""
    from moto.dynamodb.models.dynamo_type import Item

    _install_query_patch(monkeypatch)
    sized: list[str] = []
    size = Item.size

    def counted(item: Any) -> int:
        sized.append(item.range_key.value)
        return size(item)

    monkeypatch.setattr(Item, "size", counted)
    # the shape of ``StateStore.get_chunk_bounds``: the last page at or below a chunk, backwards
    page = table.query(
        KeyConditionExpression=Key("pk").eq("P#05") & Key("sk").between("S#010", "S#014"),
        ScanIndexForward=False,
        Limit=1,
    )
    assert [i["sk"] for i in page["Items"]] == ["S#014"]
    assert set(sized) <= {f"S#{i:03d}" for i in range(10, 15)}, sorted(set(sized))
    sized.clear()
    items = _all_pages(table, KeyConditionExpression=Key("pk").eq("P#05") & Key("sk").begins_with("S#02"), Limit=3)
    assert [i["sk"] for i in items] == [f"S#{i:03d}" for i in range(20, 30)]
    assert set(sized) == {f"S#{i:03d}" for i in range(20, 30)}


def test_motos_module_list_is_read_once_and_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto looks its package's directory up for each request; the local stack lists it once."""
    import os

    from moto import backends

    monkeypatch.setattr(moto_server, "_modules_listed", False)
    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    listed = list(backends.list_of_moto_modules())
    assert "dynamodb" in listed and "sqs" in listed
    moto_server.install_module_list_cache()
    calls: list[str] = []
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: calls.append(p) or listdir(p))
    assert list(backends.list_of_moto_modules()) == listed
    assert list(backends.list_of_moto_modules()) == listed
    assert calls == []
