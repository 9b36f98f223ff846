"""The state table's key schema, as the template declares it, for tests that create it in moto."""

from __future__ import annotations

from typing import Any

STATE_TABLE: dict[str, Any] = {
    "TableName": "state",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
