"""A run of many tables with long names: its RUN item does not grow with them.

DynamoDB refuses an item over 400 KB ("Service, account, and table quotas in Amazon DynamoDB": item
size). The RUN item used to hold the run's list of tables (JSON text) and the set of those finished;
with 1,200 tables whose names are MySQL's longest (64 characters, here of three bytes each in UTF-8),
that item no longer fits: moto refuses it as DynamoDB would, which this test checks first, so the test
fails on a ledger that keeps the names in the RUN item. The run is then recorded, every table is
counted finished (one in twenty twice, as a redelivered finaliser counts), and the run finishes
exactly when the last table is counted, once.

moto runs in this process with the local stack's patches (a transaction restores the items it named,
not a copy of the table; a query reads its partition): about ten seconds, one request per count.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aurora_replication.ledger.keys import NAMES_PAGE, Scope
from aurora_replication.ledger.store import StateStore
from aurora_replication_dev.local import moto_server

RUN = "20261206T120000Z-a1b2c3"
TABLES = 1_200
ITEM_LIMIT = 400 * 1024
# the longest names MySQL allows (64 characters), of characters of three bytes in UTF-8, all distinct
NAMES = [f"{i:05d}" + "表" * 59 for i in range(TABLES)]
SCOPE = Scope.of("数" * 64, "ANALYTICS_" + "Z" * 54, '"Schéma ' + "é" * 50 + '"', "preserve")
STATE_TABLE: dict[str, Any] = {
    "TableName": "state",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture
def ddb() -> Iterator[Any]:
    moto_server.install_query_patch()
    moto_server.install_update_expression_cache()
    moto_server.install_transaction_patch()
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        resource.create_table(**STATE_TABLE)
        yield resource


def _size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, for the string and number attributes these items hold."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        total += len(value.encode()) if isinstance(value, str) else len(json.dumps(value, default=str).encode())
    return total


def test_the_old_run_item_of_these_tables_does_not_fit_in_dynamodb(ddb: Any) -> None:
    """What the ledger wrote before: the list in the RUN item. moto refuses it, as DynamoDB does."""
    old = {"pk": f"RUN#{RUN}", "sk": "RUN", "tables": json.dumps(NAMES, separators=(",", ":")), "status": "running"}
    assert _size(old) > ITEM_LIMIT
    with pytest.raises(ClientError) as refused:
        ddb.Table("state").put_item(Item=old)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "size" in refused.value.response["Error"]["Message"]


def test_a_run_of_1200_long_named_tables_records_counts_each_once_and_finishes(ddb: Any) -> None:
    store = StateStore("state", ddb)
    store.create_run(RUN, "full", NAMES, {"tables": list(NAMES), "mode": "full"}, SCOPE)
    run = store.run_item(RUN)
    assert store.run_tables(RUN, run) == NAMES  # every name, in order, from its pages
    assert store.run_request(run, NAMES)["tables"] == NAMES
    # the run's tables recorded as the planner records them, in batch writes (here a hundred at a time)
    for first in range(0, TABLES, 100):
        group = NAMES[first : first + 100]
        store.record_tables(
            RUN, [(t, {"status": "published", "mode": "full", "chunk_count": 1}, []) for t in group], SCOPE
        )

    order = list(NAMES)
    random.Random(27).shuffle(order)
    last = order[-1]
    repeats = set(order[::20])  # counted again right after their first count, as a redelivered finaliser
    complete_at = []
    tally_reads = []
    read_tally = store._tally
    store._tally = lambda pk: tally_reads.append(pk) or read_tally(pk)  # type: ignore[method-assign]
    for n, table in enumerate(order):
        if store.finish_run_if_complete(RUN, table):
            complete_at.append((n, table))
        if table in repeats and store.finish_run_if_complete(RUN, table):
            complete_at.append((n, table))
    assert complete_at == [(TABLES - 1, last)]  # once, at the last table's first count
    # a count short of the last table's is known not to complete the run without reading the TALLY: it is
    # read for the repeats and for the last table only (its count, then the run's check that every table
    # is recorded before the statuses say it finished)
    assert len(tally_reads) == len(repeats) + 2, len(tally_reads)
    assert store.counted(RUN) == (TABLES, TABLES)
    assert store.finish_run_if_complete(RUN, order[0])  # a repeat after the end: still complete, no more
    assert store.counted(RUN) == (TABLES, TABLES)
    assert store.run_status(RUN) == "succeeded"

    table = ddb.Table("state")
    run_item = table.get_item(Key={"pk": f"RUN#{RUN}", "sk": "RUN"})["Item"]
    assert _size(run_item) < 4 * 1024, _size(run_item)  # a few hundred bytes, whatever the number of tables
    assert _size(table.get_item(Key={"pk": f"RUN#{RUN}", "sk": "TALLY"})["Item"]) < 1024
    pages = store._query_all(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :n)",
        ExpressionAttributeValues={":pk": f"RUN#{RUN}", ":n": "NAMES#"},
    )
    assert len(pages) == -(-TABLES // NAMES_PAGE) and max(_size(p) for p in pages) < ITEM_LIMIT
    marks = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
        ExpressionAttributeValues={":pk": f"RUN#{RUN}", ":f": "FINISHED#"},
        Select="COUNT",
    )
    assert marks["Count"] == TABLES and "LastEvaluatedKey" not in marks


def test_a_run_lists_its_tables_before_they_are_recorded_and_does_not_finish_early(ddb: Any) -> None:
    """Planning continues while the first tables finish: every recorded table final is not the end
    while the run lists more than are recorded."""
    store = StateStore("state", ddb)
    names = NAMES[:30]
    store.create_run(RUN, "full", names, {"tables": ["*"]}, SCOPE)
    store.record_tables(RUN, [(t, {"status": "published", "chunk_count": 1}, []) for t in names[:20]], SCOPE)
    for t in names[:20]:
        assert not store.finish_run_if_complete(RUN, t)
    assert not store.finish_run_if_complete(RUN)  # the scheduler's look, without a table
    assert store.run_status(RUN) == "running"
    for t in names[20:]:
        store.record_table(RUN, t, SCOPE, status="declined", reason="leased", chunk_count=0)  # counted as recorded
    assert store.counted(RUN) == (30, 30)
    assert store.finish_run_if_complete(RUN) and store.run_status(RUN) == "succeeded"
