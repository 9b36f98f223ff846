"""``StateStore``: every record of the ledger over one DynamoDB table, and the views that join them."""

from __future__ import annotations

from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.items import catalog_prefix, plain
from aurora_replication.ledger.keys import CATALOG_PK, SEVERAL_DATABASES, Scope
from aurora_replication.ledger.lasting import TableState
from aurora_replication.ledger.runs import Runs


class StateStore(Runs, TableState):
    """``StateStore``: every record of the ledger over one DynamoDB table, and the views that join them."""

    def catalog(self, scope: Scope) -> list[CatalogNote]:
        """Every catalogued table of ``scope`` (one query of its part of the CATALOG partition), each
        with ``current``: the ledger item of its run in progress (empty when its latest run has finished);
        and those that runs of a request naming several databases (``Scope.mapping``) copied into the same
        target database. Tables of another scope (a target the stack no longer copies to) are not among
        them. With no such run the query reads the scope's part only; with one, the whole partition."""
        own = catalog_prefix(scope)
        several = self.table.get_item(Key={"pk": CATALOG_PK, "sk": SEVERAL_DATABASES}).get("Item") is not None
        found = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": CATALOG_PK, ":t": "TABLE#" if several else own},
        )
        items: list[CatalogNote] = []
        for i in map(plain, found):
            other = Scope.from_item(i.get("scope"))
            if str(i["sk"]).startswith(own):
                items.append(i)
            elif other is not None and other.mapping and other.target_database == scope.target_database:
                i["source_database"] = other.source_database  # named ``<database>.<table>`` by the health check
                items.append(i)
        for item in items:
            run_id = item.get("run_id")
            item["current"] = self.get_table(run_id, item["table"]) if run_id and run_id != item.get("last_run") else {}
        return items
