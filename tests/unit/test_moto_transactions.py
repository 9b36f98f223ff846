"""The local stack's TransactWriteItems (``local/moto_server.install_transaction_patch``): all or nothing
as moto (and DynamoDB) make it, restoring the items it named instead of a copy of the whole table; and
IAM's check of it, one action per item on its table, as AWS makes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from state_table import STATE_TABLE

from aurora_replication_dev.local import moto_server
from aurora_replication_dev.local.moto_server import _transaction_actions


@pytest.fixture
def table() -> Iterator[Any]:
    moto_server.install_transaction_patch()
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        resource.create_table(**STATE_TABLE)
        yield resource.Table("state")


def _count(table: Any, run: str, name: str) -> list[dict[str, Any]]:
    return [
        {
            "Put": {
                "TableName": "state",
                "Item": {"pk": run, "sk": f"FINISHED#{name}"},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Update": {
                "TableName": "state",
                "Key": {"pk": run, "sk": "TALLY"},
                "UpdateExpression": "ADD n :one SET who = :name",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":one": 1, ":name": name},
            }
        },
    ]


def _items(table: Any, run: str) -> dict[str, Any]:
    found = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": run})["Items"]
    return {str(i["sk"]): i for i in found}


def test_a_transaction_applies_every_action_or_none(table: Any) -> None:
    client = table.meta.client
    table.put_item(Item={"pk": "r", "sk": "TALLY", "n": 0, "who": "-"})
    client.transact_write_items(TransactItems=_count(table, "r", "a"))
    assert _items(table, "r")["TALLY"]["n"] == 1 and "FINISHED#a" in _items(table, "r")
    before = _items(table, "r")
    # the first action's condition fails: nothing changes, and the reason names it
    with pytest.raises(ClientError) as again:
        client.transact_write_items(TransactItems=_count(table, "r", "a"))
    assert [r["Code"] for r in again.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    assert _items(table, "r") == before
    # the second fails after the first was applied (no TALLY): the first is undone, the item not created
    with pytest.raises(ClientError) as missing:
        client.transact_write_items(TransactItems=_count(table, "other", "b"))
    assert [r["Code"] for r in missing.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert _items(table, "other") == {}
    # an existing item changed by the first action and a failing second: the first item is as it was
    table.put_item(Item={"pk": "s", "sk": "A", "v": 1})
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "state",
                        "Key": {"pk": "s", "sk": "A"},
                        "UpdateExpression": "SET v = :two",
                        "ExpressionAttributeValues": {":two": 2},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": "state",
                        "Key": {"pk": "s", "sk": "B"},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert _items(table, "s") == {"A": {"pk": "s", "sk": "A", "v": 1}}


def test_iam_checks_each_action_of_a_transaction_on_its_table() -> None:
    body = json.dumps({"TransactItems": json.loads(json.dumps(_count(None, "r", "a")))})
    assert _transaction_actions(body) == [("PutItem", "state"), ("UpdateItem", "state")]
    assert _transaction_actions("not json") == [("TransactWriteItems", "*")]
