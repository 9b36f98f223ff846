"""Change data capture's state, in the same DynamoDB table as the run ledger (``ledger.store.StateStore``).

Items:
  TABLE#<key> / CDC   the table's binlog position and phase (``<key>``: its ``keys.TableKey``, source and target):
                      ``status`` snapshot (position recorded, initial copy under way in ``snapshot_run``),
                      streaming (windows of changes are applied from ``position``), or stopped
                      (``reason`` says why; a re-snapshot is the fix);
                      ``binlog_pos`` (file, pos, gtid) and ``position_key`` (its sortable text),
                      ``schema_columns`` (the schema the position is valid for), ``caught_up_at`` (the time up
                      to which every change is applied), ``newest_event_at`` (the newest applied event),
                      ``column_versions`` (columns given a new version by a type change, and their fill)
  CDC#<scope> / ROTATION  the table a scope's next cdc window starts with (``first``): the first one the last
                      window deferred because the scheduler's time ran short (``pipeline/modes/cdc/budget.py``);
                      no item when the last window reached every table
  RUN#<run> / TABLE#<t>  (the run ledger's table item) gains, for a window of changes: ``cdc_from``,
                      ``cdc_to`` (position dicts), ``batches`` (one per chunk id), ``window_read_at``

The position only moves forward, and only from the window start a run read from (a conditional
update on ``position_key``), so two finalisers of one window, or a stale one, cannot skip or rewind it;
and only by the run that holds the table's lease: recording a position (``start_snapshot``) and moving
it (``advance``) take a ``ledger.keys.Held``, the proof of a lease renewed by the run just before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

from aurora_replication.ledger.items import Values, if_condition_holds, plain, set_fields
from aurora_replication.ledger.keys import Held, Scope, TableKey, run_table_key
from aurora_replication.ledger.runs import Number
from aurora_replication.ledger.store import StateStore

SNAPSHOT = "snapshot"
STREAMING = "streaming"
STOPPED = "stopped"


class StoredPosition(TypedDict, total=False):
    """A binlog position as stored (``source.binlog.Position.to_dict``)."""

    file: str
    pos: int
    gtid: str


class CdcItem(TypedDict, total=False):
    """A table's CDC item (``TABLE#<key>`` / ``CDC``), as ``CdcState.get`` gives it (``schema_columns`` and
    ``column_versions``, stored as JSON text, decoded)."""

    pk: str
    sk: str
    status: str  # SNAPSHOT, STREAMING or STOPPED
    snapshot_run: str
    without_copy: str
    binlog_pos: StoredPosition
    position_key: str
    position_at: int
    caught_up_at: Number
    newest_event_at: int
    committed_by: str
    schema_columns: list[Any]
    column_versions: dict[str, Any]
    refuted_renames: list[list[str]]
    reason: str
    recopy: str  # a foreign key's cascade changed its rows outside the binlog: the next run copies it again
    updated_at: int
    table: str  # not stored: the reader names the state's table (``pipeline/modes/cdc/reader.py``)


def _rotation_key(scope: Scope) -> dict[str, str]:
    return {"pk": f"CDC#{scope.text}#{scope.table_prefix}", "sk": "ROTATION"}


def _key(position: Mapping[str, Any]) -> str:
    from_file = str(position["file"]).rsplit(".", 1)[-1]
    return f"{int(from_file):010d}:{int(position['pos']):012d}:000000"


def position_key(position: Mapping[str, Any]) -> str:
    """The sortable text of a stored position (``source.binlog.Position.key``)."""
    return _key(position)


class CdcState:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.table = store.table

    def get(self, key: TableKey) -> CdcItem | None:
        item = self.table.get_item(Key=key.item("CDC"), ConsistentRead=True).get("Item")
        if not item:
            return None
        out: CdcItem = plain(item)
        columns, versions = out.get("schema_columns"), out.get("column_versions")
        if isinstance(columns, str):  # stored as JSON text
            out["schema_columns"] = json.loads(columns)
        if isinstance(versions, str):
            out["column_versions"] = json.loads(versions)
        return out

    def all(self, scope: Scope) -> dict[str, CdcItem]:
        """The cdc state of every table of ``scope`` that has one: the catalog names the tables (one query,
        no scan: every cdc run takes a lease, which catalogues its table), then one read each. With them,
        the tables that requests naming several databases stream into the same target database (the
        catalog's, ``StateStore.catalog``), named ``<database>.<table>``."""
        found = {name: self.get(scope.key(name)) for name in self.store.catalogued_tables(scope)}
        for item in self.store.catalog(scope):
            other = Scope.from_item(item.get("scope"))
            if item.get("source_database") and other is not None:
                found[f"{other.source_database}.{item['table']}"] = self.get(other.key(str(item["table"])))
        return {name: item for name, item in found.items() if item is not None}

    def rotation(self, scope: Scope) -> str | None:
        """The table ``scope``'s next window starts with (the first one the last window deferred), or None."""
        item = self.table.get_item(Key=_rotation_key(scope), ConsistentRead=True).get("Item")
        return str(item["first"]) if item and item.get("first") else None

    def set_rotation(self, scope: Scope, first: str | None, was: str | None) -> None:
        """Start ``scope``'s next window with ``first`` (None: in the request's order); nothing is written
        when it is ``was`` already (the point read at the window's start)."""
        if first == was:
            return
        if first is None:
            self.table.delete_item(Key=_rotation_key(scope))
        else:
            self.table.put_item(Item={**_rotation_key(scope), "first": first, "updated_at": int(time.time())})

    def start_snapshot(self, held: Held, position: Mapping[str, Any], columns: list[Any]) -> bool:
        """Record the position before the initial copy (replacing whatever was there), by the run holding
        the table's lease; False (nothing written) when it no longer does."""
        if self.store.still_held(held) is None:
            return False
        now = int(time.time())
        run_id = held.run_id
        self.table.put_item(
            Item={
                **held.key.item("CDC"),
                "status": SNAPSHOT,
                "snapshot_run": run_id,
                "binlog_pos": position,
                "position_key": _key(position),
                "position_at": now,
                "schema_columns": json.dumps(columns),
                "updated_at": now,
            }
        )
        return True

    def start_streaming(self, held: Held, position: Mapping[str, Any], columns: list[Any]) -> bool:
        """start_position now: record the position as streaming at once, without an initial copy
        (``without_copy``: the run; the whole-target check leaves such a table's row count alone), by the
        run holding the table's lease; False (nothing written) when it no longer does."""
        if self.store.still_held(held) is None:
            return False
        now = int(time.time())
        self.table.put_item(
            Item={
                **held.key.item("CDC"),
                "status": STREAMING,
                "without_copy": held.run_id,
                "binlog_pos": position,
                "position_key": _key(position),
                "position_at": now,
                "caught_up_at": now,
                "schema_columns": json.dumps(columns),
                "updated_at": now,
            }
        )
        return True

    def mark_streaming(self, key: TableKey, run_id: str) -> bool:
        """The initial copy of ``run_id`` is published: windows of changes may be applied now."""
        return self._update(
            key,
            "SET #s = :streaming, updated_at = :now, caught_up_at = if_not_exists(caught_up_at, position_at)",
            "#s = :snapshot AND snapshot_run = :run",
            {":streaming": STREAMING, ":snapshot": SNAPSHOT, ":run": run_id, ":now": int(time.time())},
        )

    def advance(
        self,
        held: Held,
        expected: Mapping[str, Any],
        new: Mapping[str, Any],
        caught_up_at: float,
        newest_event_at: int | None,
    ) -> bool:
        """Move the position from ``expected`` to ``new``, by the run holding the table's lease; True also
        when it is already at ``new`` (a repeated finaliser), False when it is somewhere else (the window is
        stale) or the run no longer holds the lease (nothing is written then)."""
        if self.store.still_held(held) is None:
            return False
        key, run_id = held.key, held.run_id
        values: Values = {
            ":pos": new,
            ":key": _key(new),
            ":expected": _key(expected),
            ":run": run_id,
            ":at": Decimal(str(round(caught_up_at, 3))),
            ":now": int(time.time()),
            ":streaming": STREAMING,
        }
        sets = "binlog_pos = :pos, position_key = :key, position_at = :now, committed_by = :run, caught_up_at = :at"
        if newest_event_at is not None:
            sets += ", newest_event_at = :newest"
            values[":newest"] = int(newest_event_at)
        condition = "position_key = :expected AND #s = :streaming"
        if self._update(key, f"SET {sets}, updated_at = :now", condition, values):
            return True
        item = self.get(key) or {}
        return item.get("position_key") == _key(new)

    def set_columns(self, key: TableKey, columns: list[Any]) -> None:
        """The schema the stored position is valid for (after a schema change was applied)."""
        self.table.update_item(
            Key=key.item("CDC"),
            UpdateExpression="SET schema_columns = :c",
            ExpressionAttributeValues={":c": json.dumps(columns)},
        )

    def set_versions(self, key: TableKey, versions: dict[str, Any]) -> None:
        """The table's column versions (``pipeline/modes/cdc/reader.py``, docs/cdc.md#schema-changes): per MySQL
        column, its target column now, the ones kept, and how far its fill got. Written by the run holding
        the table's lease (a new version when it is planned, the fill's cursor when a window commits); a
        new initial copy (``start_snapshot``) replaces the item, and with it the versions."""
        self.table.update_item(
            Key=key.item("CDC"),
            UpdateExpression="SET column_versions = :v",
            ExpressionAttributeValues={":v": json.dumps(versions, sort_keys=True)},
        )

    def stop(self, key: TableKey, reason: str) -> None:
        self.table.update_item(
            Key=key.item("CDC"),
            UpdateExpression="SET #s = :s, reason = :r, updated_at = :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": STOPPED, ":r": reason[:1000], ":now": int(time.time())},
        )

    def require_copy(self, key: TableKey, reason: str) -> None:
        """The table's target cannot be brought up to date from the binlog (a foreign key's cascade changed
        its rows: ``pipeline/modes/cdc/cascades.py``): its next run copies it again. A new initial copy
        (``start_snapshot``) replaces the item, and with it this mark."""
        self.table.update_item(
            Key=key.item("CDC"),
            UpdateExpression="SET recopy = :r, updated_at = :now",
            ExpressionAttributeValues={":r": reason[:1000], ":now": int(time.time())},
        )

    def refute_rename(self, key: TableKey, old: str, new: str) -> None:
        """A rename candidate (``old`` went, ``new`` came at its place) whose window read to the server's
        end without the statement that renames it: from now on the pair is a drop and an add (the added
        column filled from MySQL), not a rename (``modes/cdc/reader.py``, ``rename_candidate``)."""
        self.table.update_item(
            Key=key.item("CDC"),
            UpdateExpression="SET refuted_renames = list_append(if_not_exists(refuted_renames, :none), :pair)",
            ExpressionAttributeValues={":none": [], ":pair": [[old, new]]},
        )

    def define_window(self, run_id: str, table: str, **fields: Any) -> bool:
        """Record a run's window (its end and batches) once: the first reader to define it wins."""
        names = {"#to": "cdc_to"}
        values: Values = {}
        sets: list[str] = []
        set_fields(fields, names, values, sets)
        return (
            if_condition_holds(
                self.table.update_item,
                Key=run_table_key(run_id, table),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#to)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def _update(self, key: TableKey, update: str, condition: str, values: Values) -> bool:
        return (
            if_condition_holds(
                self.table.update_item,
                Key=key.item("CDC"),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
            is not None
        )
