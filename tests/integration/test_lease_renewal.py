"""A run's lease is renewed as its chunks complete: a run longer than LEASE_SECONDS keeps its table, and a
run that stops making progress loses it LEASE_SECONDS after its last progress. Time is the state
store's clock, moved forward by the test (no waiting)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aurora_replication.ledger import keys as state_keys
from aurora_replication_dev.local.stack import LocalContext
from compare import assert_same

LEASE = 900  # the smallest LEASE_SECONDS: a worker renews at most every 225 s


class Clock:
    """The state store's clock: the real one plus what the test has moved it on."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return int(time.time()) + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(state_keys, "now", c)
    return c


def _chunk_messages(stack: Any) -> list[dict[str, Any]]:
    found = []
    while msgs := stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=600
    ).get("Messages", []):
        found.extend(msgs)
    assert all(json.loads(m["Body"])["kind"] == "chunk" for m in found)
    return found


def _copy(stack: Any, worker: Any, m: dict[str, Any]) -> None:
    response = worker({"Records": [stack._record(m)]}, LocalContext("WorkerFunction", 900))
    assert response == {"batchItemFailures": []}, response
    stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_chunks_keep_the_lease_and_a_run_without_progress_loses_it(env, clock: Clock) -> None:
    env.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_200",
    )
    stack = env.start_stack({"LEASE_SECONDS": str(LEASE), "SMALL_CHUNK_ROWS": "0", "IDEMPOTENCY_ENABLED": "false"})
    long_run = stack.invoke("SchedulerFunction", {"tables": "t", "mode": "full", "chunk_rows": 40})["run_id"]
    messages = _chunk_messages(stack)
    assert len(messages) >= 4
    worker = stack.load_handler("WorkerFunction")
    for m in messages[:3]:
        clock.offset += 400  # each chunk takes 400 s: three of them outlast the lease taken at scheduling
        _copy(stack, worker, m)
    # 1,200 s after the lease was taken, the run still holds it: chunks renewed it
    other = stack.invoke("SchedulerFunction", {"tables": "t", "mode": "full"})
    assert other["tables"]["t"]["status"] == "declined", other
    assert f"leased by run {long_run}" in other["tables"]["t"]["reason"]

    # the run stops: its other chunks are lost, nothing renews the lease, which expires
    for m in messages[3:]:
        stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    clock.offset += LEASE - 1
    assert stack.invoke("SchedulerFunction", {"tables": "t", "mode": "full"})["tables"]["t"]["status"] == "declined"
    clock.offset += 2
    newer = stack.invoke("SchedulerFunction", {"tables": "t", "mode": "full"})
    assert newer["tables"]["t"]["status"] == "running", newer
    outcome = stack.drain(newer["run_id"], workers=1)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "t") == 200
