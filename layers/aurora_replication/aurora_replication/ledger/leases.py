"""One run per table at a time: the table's LEASE, taken, held, renewed and released."""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from aurora_replication.ledger import keys
from aurora_replication.ledger.catalog import CatalogNotes
from aurora_replication.ledger.items import if_condition_holds, leased_text, plain
from aurora_replication.ledger.keys import Held, TableKey


class LeaseItem(TypedDict, total=False):
    """A table's LEASE item (``TABLE#<key>`` / ``LEASE``): the run holding it, until when, and when it
    released it (a released lease still blocks new runs until ``expires_at``: the minimum interval)."""

    pk: str
    sk: str
    run_id: str
    expires_at: int
    released_at: int


class Leases(CatalogNotes):
    """One run per table at a time: the table's LEASE, taken, held, renewed and released."""

    # ---- leases ----------------------------------------------------------------------------
    def acquire_lease(self, key: TableKey, run_id: str, seconds: int) -> tuple[bool, str]:
        ok, reason, _lapsed = self.take_lease(key, run_id, seconds)
        return ok, reason

    def take_lease(self, key: TableKey, run_id: str, seconds: int) -> tuple[bool, str, str | None]:
        """Take the table's lease for ``seconds`` (``acquire_lease``); also the run whose lease had **lapsed**
        (ended without being released: that run stopped with the table unfinished, its scheduler killed
        say), told by the same write (its old item), or None."""
        now = keys.now()
        held = self._unscoped_holder(key, run_id, now)
        if held:
            return False, held, None
        taken = if_condition_holds(
            self.table.put_item,  # the whole item: a released lease taken again is no longer released
            Item={**key.item("LEASE"), "run_id": run_id, "expires_at": now + seconds},
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR run_id = :run",
            ExpressionAttributeValues={":now": now, ":run": run_id},
            ReturnValues="ALL_OLD",
        )
        if taken is not None:
            self.note_table_started(key, run_id, now)  # catalog (operator's view)
            old: LeaseItem = plain(taken.get("Attributes") or {})
            before = str(old.get("run_id") or "")
            return True, "", before if before and before != run_id and not old.get("released_at") else None
        item: LeaseItem = plain(self.table.get_item(Key=key.item("LEASE")).get("Item", {}))
        return False, leased_text(key.table, str(item.get("run_id", "?")), int(item.get("expires_at", 0))), None

    def _unscoped_holder(self, key: TableKey, run_id: str, now: int) -> str:
        """Why the table is not free under its unscoped key (a run recorded before state was scoped, still
        in flight across the upgrade, holds it), or ''. One read; it goes with the code that wrote those."""
        if key.scope is None:
            return ""
        item = self.table.get_item(Key=key.unscoped().item("LEASE"), ConsistentRead=True).get("Item")
        if not item or str(item.get("run_id")) == run_id or int(item.get("expires_at", 0)) < now:
            return ""
        return (
            leased_text(key.table, str(item["run_id"]), int(item["expires_at"])) + " (a run started before the upgrade)"
        )

    def hold_lease(self, key: TableKey, run_id: str, seconds: int, order: Decimal) -> Held | None:
        """Renew ``run_id``'s lease on the table for ``seconds`` from now (a conditional write: the run holds
        it and has not released it, or nobody does); None when another run has taken it since (this run is
        superseded) or this run released it (it has finished the table). What a finaliser does before it
        publishes and before each write of the table's lasting state (watermark, last run, cdc position):
        DynamoDB conditions cover one item, so the holder check is this write, which keeps the lease for
        ``seconds`` (LEASE_SECONDS, longer than any invocation), and the write that follows is conditional
        on ``order`` (forward only)."""
        now = keys.now()
        done = if_condition_holds(
            self.table.update_item,
            Key=key.item("LEASE"),
            UpdateExpression="SET run_id = :run, expires_at = :until",
            ConditionExpression="attribute_not_exists(pk) OR (run_id = :run AND attribute_not_exists(released_at))",
            ExpressionAttributeValues={":run": run_id, ":until": now + seconds},
        )
        if done is None:
            return None
        self._renewed[(key.pk, run_id)] = now
        return Held(key, run_id, order, now + seconds, seconds)

    def renew_lease(self, key: TableKey, run_id: str, seconds: int, order: Decimal) -> bool:
        """A run made progress (a chunk or a batch done): its lease is renewed, at most every quarter of
        ``seconds`` from one container, so a run that keeps working keeps its table however long it takes,
        and a run that stops loses it ``seconds`` after its last progress. False when the run no longer
        holds it (superseded, or finished)."""
        last = self._renewed.get((key.pk, run_id))
        if last is not None and keys.now() - last < seconds // 4:
            return True
        if len(self._renewed) > 1024:
            self._renewed.clear()
        return self.hold_lease(key, run_id, seconds, order) is not None

    def still_held(self, held: Held) -> Held | None:
        """``held``, renewed when half of it has passed (a long commit): the write that follows stays inside it."""
        if keys.now() < held.until - held.seconds // 2:
            return held
        return self.hold_lease(held.key, held.run_id, held.seconds, held.order)

    def lease_holder(self, key: TableKey) -> str | None:
        """The run holding the table's lease (or last holding it), if any."""
        item = self.table.get_item(Key=key.item("LEASE"), ConsistentRead=True).get("Item")
        return str(item["run_id"]) if item and item.get("run_id") else None

    def claim_auto_resume(self, run_id: str, table: str) -> bool:
        """Mark the running table of a stalled run as resumed automatically; only the first claim wins
        (``auto_resumed_at``), so a scheduler resumes a run's table once, never in a loop."""
        return self._update_if(
            run_id,
            table,
            "SET auto_resumed_at = :now, progress_at = :now",
            "attribute_exists(pk) AND #s = :running AND attribute_not_exists(auto_resumed_at)",
            {"#s": "status"},
            {":now": keys.now(), ":running": "running"},
        )

    def release_lease(self, key: TableKey, run_id: str, hold_seconds: int) -> None:
        """End the lease of ``run_id``; it keeps blocking new runs for ``hold_seconds`` (minimum interval).
        A released lease is not renewed again by the run (a late duplicate of one of its chunks)."""
        if_condition_holds(
            self.table.update_item,
            Key=key.item("LEASE"),
            UpdateExpression="SET expires_at = :until, released_at = :now",
            ConditionExpression="run_id = :run",
            ExpressionAttributeValues={":until": keys.now() + hold_seconds - 1, ":run": run_id, ":now": keys.now()},
        )
