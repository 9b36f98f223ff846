"""The state table's key schema, as the template declares it, for tests that create it in moto."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from aurora_replication.ledger.store import StateStore

STATE_TABLE: dict[str, Any] = {
    "TableName": "state",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


@contextmanager
def moto_store() -> Iterator[StateStore]:
    """The ledger on a state table in moto (in process), for as long as the block runs."""
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        resource.create_table(**STATE_TABLE)
        yield StateStore("state", resource)
