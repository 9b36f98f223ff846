"""A run's ledger expires (the state table's TTL attribute), what the next run depends on does not."""

from __future__ import annotations

import time

from aurora_replication.ledger import keys as state_keys

DAY = 86400
# the items one table keeps for good: one of each, however many runs
PERSISTENT = {"LEASE", "WATERMARK", "LAST_RUN", "CDC"}


def _scan(stack) -> list[dict]:
    items: list[dict] = []
    for page in stack.dynamodb.get_paginator("scan").paginate(TableName=stack.table_name):
        items.extend(page["Items"])
    return items


def test_run_items_carry_the_ttl_attribute_and_state_items_do_not(env) -> None:
    env.sql(
        "CREATE TABLE w (id INT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME NOT NULL)",
        "INSERT INTO w SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq MINUTE FROM seq_1_to_60",
    )
    stack = env.start_stack({"RUN_RETENTION_DAYS": "7"})
    ttl = stack.dynamodb.describe_time_to_live(TableName=stack.table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == state_keys.EXPIRATION
    before = int(time.time())
    first = stack.run({"tables": "w", "mode": "full", "chunk_rows": 10}, workers=2)
    env.sql("UPDATE w SET v = 'changed', updated_at = '2025-01-01' WHERE id <= 5")
    second = stack.run({"tables": "w", "mode": "incremental", "chunk_rows": 10}, workers=2)
    after = int(time.time())
    assert first.ok and second.ok, (first.run, second.run)

    kinds: dict[str, int] = {}
    for item in _scan(stack):
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith("idempotency#"):
            continue  # Powertools' own records, with its own 24 h expiration
        if pk.startswith("RUN#"):
            kind = sk.split("#")[0]
            kinds[kind] = kinds.get(kind, 0) + 1
            assert state_keys.EXPIRATION in item, f"{pk}/{sk} never expires"
            expires = int(item[state_keys.EXPIRATION]["N"])
            assert before + 7 * DAY <= expires <= after + 7 * DAY, (pk, sk, expires - before)
        else:
            assert state_keys.EXPIRATION not in item, f"{pk}/{sk} would expire but a later run needs it"
            assert pk == "CATALOG" or sk in PERSISTENT, (pk, sk)
    # every kind of a run's item was seen (and so checked), for both runs
    assert {"RUN", "TABLE", "CHUNK", "BOUNDS", "ATTEMPT", "COST"} <= set(kinds), kinds
    assert kinds["RUN"] == 2 and kinds["CHUNK"] >= 7
