"""The cost figures of a run in the state table: one item per table of the run,
``pk = RUN#<run>``, ``sk = COST#<table>``, whose counters only ever grow (DynamoDB ``ADD``).

Every unit of work adds what it spent, whether it succeeded, failed, or was a duplicate of work
already done (a redelivered message, an in-place retry): the money was spent either way, so it
counts. The later Snowflake reconciliation *sets* ``snowflake_credits_attributed`` (and when and
from which view), so running it twice does not double it. ``expiration`` (TTL) is the run's retention
(``RUN_RETENTION_DAYS``), like the rest of its ledger.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

COST_PREFIX = "COST#"
TTL_SECONDS = 30 * 24 * 3600  # the default RUN_RETENTION_DAYS


def _key(run_id: str, table: str) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": f"{COST_PREFIX}{table}"}


def _number(v: float) -> Decimal:
    return Decimal(str(round(float(v), 9)))


def add_figures(
    ddb_table: Any, run_id: str, table: str, figures: dict[str, float], ttl_seconds: int = TTL_SECONDS
) -> None:
    """Add ``figures`` to the table's counters in the run (one UpdateItem)."""
    figures = {k: v for k, v in figures.items() if v}
    if not figures:
        return
    names = {"#tb": "table", "#exp": "expiration"}
    values: dict[str, Any] = {":tb": table, ":exp": int(time.time()) + ttl_seconds, ":now": int(time.time())}
    adds = []
    for i, (k, v) in enumerate(sorted(figures.items())):
        names[f"#c{i}"] = k
        values[f":c{i}"] = _number(v)
        adds.append(f"#c{i} :c{i}")
    ddb_table.update_item(
        Key=_key(run_id, table),
        UpdateExpression="ADD " + ", ".join(adds) + " SET #tb = :tb, #exp = :exp, updated_at = :now",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def set_reconciled(ddb_table: Any, run_id: str, table: str, credits: float, source: str) -> None:
    """The credits Snowflake attributed to the table's statements in the run (idempotent)."""
    ddb_table.update_item(
        Key=_key(run_id, table),
        UpdateExpression="SET #tb = :tb, snowflake_credits_attributed = :c, reconciled_at = :now, "
        "reconciled_from = :src",
        ExpressionAttributeNames={"#tb": "table"},
        ExpressionAttributeValues={":tb": table, ":c": _number(credits), ":now": int(time.time()), ":src": source},
    )


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def get_figures(ddb_table: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """Every table's figures in the run, by table (one paged query of the run's COST items)."""
    out: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :c)",
        "ExpressionAttributeValues": {":pk": f"RUN#{run_id}", ":c": COST_PREFIX},
        "ConsistentRead": True,
    }
    while True:
        resp = ddb_table.query(**kwargs)
        for item in resp["Items"]:
            table = str(item["sk"])[len(COST_PREFIX) :]
            out[table] = {
                k: _plain(v) for k, v in item.items() if k not in ("pk", "sk", "table", "expiration", "updated_at")
            }
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
