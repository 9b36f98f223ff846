"""Run ledger, chunk fan-in, leases and watermarks in one DynamoDB table (``pk``/``sk``).

Items:
  RUN#<run>   / RUN              run: mode, tables, created_at, status
  RUN#<run>   / TABLE#<table>    table of a run: plan, chunk_count, done (string set), rows per chunk, status,
                                 progress_at (last chunk done), heal_round (validation re-copies so far)
  RUN#<run>   / BOUNDS#<table>#<page>  the key range of each chunk (pages of BOUNDS_PAGE chunks), for healing
                                 and for resuming a stalled run
  TABLE#<t>   / LEASE            one run per table at a time; expires_at also enforces the minimum interval
  TABLE#<t>   / WATERMARK        last committed watermark and the run that committed it
  TABLE#<t>   / LAST_RUN         the latest finished run of the table (for the health check)
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

TERMINAL = {"published", "failed", "declined"}
BOUNDS_PAGE = 250
Bounds = tuple[list[str] | None, list[str] | None]


def _now() -> int:
    return int(time.time())


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, set):
        return {_plain(x) for x in v}
    return v


def _set_fields(fields: dict[str, Any], names: dict[str, str], values: dict[str, Any], sets: list[str]) -> None:
    """Add ``SET #fN = :fN`` clauses for arbitrary attribute names (floats as Decimal, as boto3 needs)."""
    for i, (k, v) in enumerate(fields.items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = Decimal(str(v)) if isinstance(v, float) else v
        sets.append(f"#f{i} = :f{i}")


class StateStore:
    def __init__(self, table_name: str, resource: Any = None) -> None:
        self.table = (resource or boto3.resource("dynamodb")).Table(table_name)

    # ---- leases ----------------------------------------------------------------------------
    def acquire_lease(self, table: str, run_id: str, seconds: int) -> tuple[bool, str]:
        now = _now()
        try:
            self.table.put_item(
                Item={"pk": f"TABLE#{table}", "sk": "LEASE", "run_id": run_id, "expires_at": now + seconds},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR run_id = :run",
                ExpressionAttributeValues={":now": now, ":run": run_id},
            )
            return True, ""
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item: dict[str, Any] = dict(self.table.get_item(Key={"pk": f"TABLE#{table}", "sk": "LEASE"}).get("Item", {}))
        holder = item.get("run_id", "?")
        until = int(item.get("expires_at", 0))
        return False, (
            f"table {table!r} is leased by run {holder} until "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))} "
            "(a run in progress, or the minimum interval between runs)"
        )

    def release_lease(self, table: str, run_id: str, hold_seconds: int) -> None:
        """End the lease of ``run_id``; it keeps blocking new runs for ``hold_seconds`` (minimum interval)."""
        try:
            self.table.update_item(
                Key={"pk": f"TABLE#{table}", "sk": "LEASE"},
                UpdateExpression="SET expires_at = :until",
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":until": _now() + hold_seconds - 1, ":run": run_id},
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # ---- runs ------------------------------------------------------------------------------
    def create_run(self, run_id: str, mode: str, tables: list[str], request: dict[str, Any]) -> None:
        self.table.put_item(
            Item={
                "pk": f"RUN#{run_id}",
                "sk": "RUN",
                "mode": mode,
                "tables": tables,
                "request": request,
                "created_at": _now(),
                "status": "running",
            }
        )

    def record_table(self, run_id: str, table: str, **fields: Any) -> None:
        now = _now()
        item = {"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}", "table": table, "created_at": now, **fields}
        item.setdefault("progress_at", now)
        item.setdefault("heal_round", 0)
        item.setdefault("chunk_rows", {})
        item.setdefault("chunk_seconds", {})
        self.table.put_item(Item=item)

    def mark_chunk_done(
        self, run_id: str, table: str, chunk_id: int, rows: int, seconds: float
    ) -> tuple[int, int, int]:
        """Idempotently add the chunk to the done set; returns (done, chunk_count, heal round)."""
        resp = self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="ADD done :c DELETE dead_lettered :c "
            "SET chunk_rows.#cid = :rows, chunk_seconds.#cid = :secs, progress_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#cid": str(chunk_id)},
            ExpressionAttributeValues={
                ":c": {str(chunk_id)},
                ":rows": rows,
                ":secs": Decimal(str(round(seconds, 3))),
                ":now": _now(),
            },
            ReturnValues="ALL_NEW",
        )
        item: dict[str, Any] = dict(resp["Attributes"])
        return len(item.get("done", set())), int(item["chunk_count"]), int(item.get("heal_round", 0))

    def mark_dead_lettered(self, run_id: str, table: str, chunk_id: int, error: str) -> None:
        """The chunk failed its last receive and is going to the DLQ: the table is reported failed
        (``dead_lettered``) until a redrive copies the chunk (``mark_chunk_done`` clears it)."""
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="ADD dead_lettered :c SET last_error = :e",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":c": {str(chunk_id)}, ":e": error[:1000]},
        )

    def save_bounds(self, run_id: str, table: str, bounds: list[Bounds]) -> None:
        """The chunks' key ranges, in pages that stay far below DynamoDB's 400 KB item limit."""
        with self.table.batch_writer() as batch:
            for page, start in enumerate(range(0, len(bounds), BOUNDS_PAGE)):
                batch.put_item(
                    Item={
                        "pk": f"RUN#{run_id}",
                        "sk": f"BOUNDS#{table}#{page:06d}",
                        "first": start,
                        "bounds": json.dumps(bounds[start : start + BOUNDS_PAGE], separators=(",", ":")),
                    }
                )

    def get_bounds(self, run_id: str, table: str) -> list[Bounds]:
        pages = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":prefix": f"BOUNDS#{table}#"},
        )
        bounds: list[Bounds] = []
        for item in sorted(pages, key=lambda i: str(i["sk"])):
            bounds.extend((lo, hi) for lo, hi in json.loads(str(item["bounds"])))
        return bounds

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a (consistent) query, across pages."""
        items: list[dict[str, Any]] = []
        while True:
            resp = self.table.query(ConsistentRead=True, **kwargs)
            items.extend(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def reopen_chunks(self, run_id: str, table: str, chunk_ids: list[int], expected_round: int, **fields: Any) -> bool:
        """Take ``chunk_ids`` out of the done set to copy them again, moving the table to the next heal
        round. Only one finaliser of a round wins (conditional on the round); returns whether it was us."""
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":ids": {str(c) for c in chunk_ids},
            ":expected": expected_round,
            ":next": expected_round + 1,
            ":now": _now(),
            ":pub": "published",
            ":failed": "failed",
        }
        sets = ["heal_round = :next", "progress_at = :now"]
        _set_fields(fields, names, values, sets)
        return self._update_if(
            run_id,
            table,
            "DELETE done :ids SET " + ", ".join(sets),
            "attribute_exists(pk) AND NOT #s IN (:pub, :failed) AND "
            "(attribute_not_exists(heal_round) OR heal_round = :expected)",
            names,
            values,
        )

    def _update_if(
        self, run_id: str, table: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """A conditional update of a run's table item; False when the condition does not hold."""
        try:
            self.table.update_item(
                Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False

    def touch_table(self, run_id: str, table: str) -> None:
        """Record progress without a chunk (a resume, a heal): the stall clock starts again."""
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="SET progress_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":now": _now()},
        )

    def get_table(self, run_id: str, table: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"}, ConsistentRead=True)
        return _plain(item.get("Item", {}))

    def set_table_status(self, run_id: str, table: str, status: str, **fields: Any) -> bool:
        """Set the table's status; a table already published or failed keeps its status (returns False)."""
        names = {"#s": "status", "#t": "updated_at"}
        values: dict[str, Any] = {":s": status, ":t": _now(), ":pub": "published", ":failed": "failed"}
        sets = ["#s = :s", "#t = :t"]
        _set_fields(fields, names, values, sets)
        return self._update_if(
            run_id, table, "SET " + ", ".join(sets), "attribute_exists(pk) AND NOT #s IN (:pub, :failed)", names, values
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        # "RUN" and "TABLE#..." sort after "BOUNDS#...": the chunk ranges are not read here
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND sk >= :run",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":run": "RUN"},
        )
        run: dict[str, Any] = {}
        tables: dict[str, dict[str, Any]] = {}
        for item in items:
            if item["sk"] == "RUN":
                run = _plain(item)
            elif str(item["sk"]).startswith("TABLE#"):
                tables[item["table"]] = _plain(item)
        run["table_states"] = tables
        return run

    def finish_run_if_complete(self, run_id: str) -> bool:
        run = self.get_run(run_id)
        states = run.get("table_states", {})
        if not states or any(t.get("status") not in TERMINAL for t in states.values()):
            return False
        status = "succeeded" if all(t.get("status") in ("published", "declined") for t in states.values()) else "failed"
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
            UpdateExpression="SET #s = :s, finished_at = :t",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":t": _now()},
        )
        return True

    # ---- watermarks ------------------------------------------------------------------------
    def get_watermark(self, table: str) -> str | None:
        item = self.table.get_item(Key={"pk": f"TABLE#{table}", "sk": "WATERMARK"}, ConsistentRead=True).get("Item")
        return None if not item else str(item["value"])

    def set_watermark(self, table: str, value: str, run_id: str) -> None:
        self.table.put_item(
            Item={"pk": f"TABLE#{table}", "sk": "WATERMARK", "value": value, "run_id": run_id, "updated_at": _now()}
        )

    def set_last_run(self, table: str, run_id: str, summary: dict[str, Any]) -> None:
        self.table.put_item(Item={"pk": f"TABLE#{table}", "sk": "LAST_RUN", "run_id": run_id, "at": _now(), **summary})
