"""The ledger's table: the DynamoDB table every record lives in, and what all records share."""

from __future__ import annotations

from typing import Any

import boto3

from aurora_replication.cost.meter import MeteredTable
from aurora_replication.ledger import keys
from aurora_replication.ledger.items import StoredItem, Values, if_condition_holds
from aurora_replication.ledger.keys import RUN_RETENTION_SECONDS, run_table_key


class Ledger:
    """The table, its meter, and the retention of a run's items."""

    def __init__(
        self, table_name: str, resource: Any = None, run_retention_seconds: int = RUN_RETENTION_SECONDS
    ) -> None:
        # every item call asks for and counts its consumed capacity (docs/cost.md)
        self.resource = resource or boto3.resource("dynamodb")
        self.table = MeteredTable(self.resource.Table(table_name))
        self.run_retention_seconds = run_retention_seconds
        self._renewed: dict[tuple[str, str], int] = {}  # (lease, run) -> when this container last renewed it

    def _expires(self) -> int:
        """The ``expiration`` (epoch seconds) of a run's item written now."""
        return keys.now() + self.run_retention_seconds

    def _query_all(self, **kwargs: Any) -> list[StoredItem]:
        """Every item of a (consistent) query, across pages."""
        items: list[StoredItem] = []
        while True:
            resp = self.table.query(ConsistentRead=True, **kwargs)
            items.extend(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _update_if(
        self, run_id: str, table: str, update: str, condition: str, names: dict[str, str], values: Values
    ) -> bool:
        """A conditional update of a run's table item; False when the condition does not hold."""
        return (
            if_condition_holds(
                self.table.update_item,
                Key=run_table_key(run_id, table),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def ping(self) -> None:
        """One cheap read that proves the state table answers (the health check's DynamoDB check)."""
        self.table.get_item(Key={"pk": "HEALTH", "sk": "PING"})
