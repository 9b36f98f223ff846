"""A table's lasting state: its WATERMARK and LAST_RUN, written only by the run holding the lease and
only forward (a run that started earlier never overwrites what a later one wrote)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypedDict

from aurora_replication.ledger import keys
from aurora_replication.ledger.items import FORWARD, if_condition_holds, plain
from aurora_replication.ledger.keys import Held, TableKey
from aurora_replication.ledger.leases import LeaseItem, Leases
from aurora_replication.ledger.runs import Number, TableOutcome


class WatermarkItem(TypedDict, total=False):
    """A table's WATERMARK item (``TABLE#<key>`` / ``WATERMARK``): the committed watermark, and the run
    that committed it (``run_started_at``: its order, what forward-only writes compare)."""

    pk: str
    sk: str
    value: str
    updated_at: int
    run_id: str
    run_started_at: Number


class LastRunItem(TableOutcome, total=False):
    """A table's LAST_RUN item (``TABLE#<key>`` / ``LAST_RUN``): its latest finished run's outcome (the
    finaliser's summary: status, validation, ``source_as_of``, ...), when, and which run."""

    pk: str
    sk: str
    status: str
    at: int
    run_id: str
    run_started_at: Number


# a table's lasting items, each with its ``sk`` (``last_writes``)
LastingItem = LeaseItem | WatermarkItem | LastRunItem


class TableState(Leases):
    """A table's lasting state: its WATERMARK and LAST_RUN, written only by the run holding the lease and."""

    # ---- watermarks ------------------------------------------------------------------------
    def get_watermark_item(self, key: TableKey) -> WatermarkItem | None:
        """The table's WATERMARK item (value, run_id, updated_at), if any."""
        item = self.table.get_item(Key=key.item("WATERMARK"), ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def get_watermark(self, key: TableKey) -> str | None:
        item = self.get_watermark_item(key)
        return None if not item else str(item["value"])

    def set_watermark(self, held: Held, value: str) -> bool:
        """Commit the table's watermark, only while ``held`` (the lease is still the run's) and only forward:
        never over one a later run committed (``order``: the runs' start on the table, which orders
        correctly whatever the watermark column's type). False when refused; nothing is written then."""
        return self._put_forward(
            held, "WATERMARK", {"value": value, "updated_at": keys.now()}, lambda: self.note_watermark(held, value)
        )

    def set_last_run(self, held: Held, summary: Mapping[str, Any]) -> bool:
        """The table's latest finished run; ``summary`` carries its status, validation and
        ``source_as_of`` (epoch seconds: the oldest chunk snapshot the target is known to reflect).
        Written, as the watermark, only while ``held`` and only forward; False when refused."""
        summary = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in summary.items()}
        fields = {"at": keys.now(), **summary}
        return self._put_forward(held, "LAST_RUN", fields, lambda: self.note_table_finished(held, summary))

    def _put_forward(self, held: Held, sk: str, fields: dict[str, Any], then: Callable[[], Any]) -> bool:
        current = self.still_held(held)
        if current is None:
            return False
        written = if_condition_holds(
            self.table.put_item,
            Item={**held.key.item(sk), **fields, "run_id": held.run_id, "run_started_at": held.order},
            ConditionExpression=FORWARD,
            ExpressionAttributeNames={"#order": "run_started_at", "#writer": "run_id"},
            ExpressionAttributeValues={":order": held.order, ":run": held.run_id},
        )
        if written is None:
            return False
        then()  # catalog (operator's view)
        return True

    def last_writes(self, key: TableKey) -> list[LastingItem]:
        """The table's LEASE, WATERMARK and LAST_RUN items (those there are), each with ``sk``: what a
        resume compares its run with."""
        found = []
        for sk in ("LEASE", "WATERMARK", "LAST_RUN"):
            item = self.table.get_item(Key=key.item(sk), ConsistentRead=True).get("Item")
            if item:
                found.append(plain(item))
        return found
