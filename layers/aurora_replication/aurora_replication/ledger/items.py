"""How the ledger's items are read and written: plain values out of DynamoDB's, JSON fields decoded,
conditional writes that may not hold, forward-only conditions."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from aurora_replication.ledger.keys import Held, Scope

# DynamoDB's ExpressionAttributeValues of a request (``:name`` -> value)
Values = dict[str, Any]
# an item as DynamoDB stores it (numbers as Decimal, JSON fields as text), before it is read as its record's
# type (``runs.TableItem``, ...) or as it is written
StoredItem = dict[str, Any]

# forward only: no item written by a run that started later, nor by another run that started at the same time
FORWARD = "attribute_not_exists(#order) OR #order < :order OR (#order = :order AND #writer = :run)"


def plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, set):
        return {plain(x) for x in v}
    return v


def decoded(item: Mapping[str, Any], field: str) -> Any:
    """An item as the code uses it: plain values, and ``field`` (a TABLE item's plan, the RUN item's
    tables), stored as JSON text, as the value it encodes (an item written by an earlier version holds
    it as a map or a list; either reads the same)."""
    out = plain(dict(item))
    if isinstance(out.get(field), str):
        out[field] = json.loads(out[field])
    return out


def leased_text(table: str, holder: str, until: int) -> str:
    return (
        f"table {table!r} is leased by run {holder} until "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))} "
        "(a run in progress, or the minimum interval between runs)"
    )


def forward_condition(field: str, held: Held) -> tuple[str, Values]:
    """The condition (and its values) that a catalog note of ``field`` (``watermark``, ``last_run``) moves
    forward only: the run that wrote it last (``watermark_run``, ``last_run``) did not start after ``held``'s."""
    writer = "watermark_run" if field == "watermark" else "last_run"
    order = f"{writer}_started_at"
    condition = f"attribute_not_exists({order}) OR {order} < :order OR ({order} = :order AND {writer} = :run)"
    return condition, {":order": held.order, ":run": held.run_id}


def catalog_prefix(scope: Scope) -> str:
    return f"TABLE#{scope.text}#"


def if_condition_holds[T](write: Callable[..., T], **kwargs: Any) -> T | None:
    """Run a conditional DynamoDB write (``put_item``, ``update_item``); None when its condition does
    not hold (``ConditionalCheckFailedException``), any other error raised."""
    try:
        return write(**kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return None


def set_fields(fields: Mapping[str, object], names: dict[str, str], values: Values, sets: list[str]) -> None:
    """Add ``SET #fN = :fN`` clauses for arbitrary attribute names (floats as Decimal, as boto3 needs)."""
    for i, (k, v) in enumerate(fields.items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = Decimal(str(v)) if isinstance(v, float) else v
        sets.append(f"#f{i} = :f{i}")
