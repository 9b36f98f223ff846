"""A worker killed at every step boundary, then redelivery: the target ends equal to the source."""

from __future__ import annotations

import threading

import pytest

from compare import assert_same

FULL_STEPS = ["extracted", "staged", "copied", "marked_done", "published", "status_set", "after_handler"]
INCREMENTAL_STEPS = ["extracted", "staged", "copied", "merged", "marked_done", "status_set", "after_handler"]
# Every step with idempotency off (correctness must not depend on it), and with it on (as deployed)
# the steps where it changes what happens next: a chunk killed while copying (its record left in
# progress until the invocation's deadline), after it was counted (counted again: a finalise may go
# out early, answered "waiting", which must not be kept under the finalise's key), a finaliser killed
# in its commit, and a message that comes back after its handler finished (answered from the record,
# not copied again). The other steps differ from these only in where the work stopped, which
# idempotency does not see: one representative each keeps the added time small.
KILLED_WITH_IDEMPOTENCY = [
    ("full", "copied"),
    ("full", "marked_done"),
    ("full", "published"),
    ("full", "after_handler"),
]


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2), note VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO orders (id, total, note, updated_at) SELECT seq, seq * 2.5, CONCAT('n', seq), "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_120",
    )


def _crash_once_per_thread_at(step_to_kill: str):
    crashed: set[str] = set()

    def fault(step: str, message=None) -> None:
        key = threading.current_thread().name
        if step == step_to_kill and key not in crashed and len(crashed) < 2:
            crashed.add(key)
            raise SystemExit(f"simulated worker death at {step}")  # nothing below catches it

    return fault, crashed


@pytest.mark.parametrize(
    "mode, step, idempotency",
    [("full", s, "false") for s in FULL_STEPS]
    + [("incremental", s, "false") for s in INCREMENTAL_STEPS]
    + [(m, s, "true") for m, s in KILLED_WITH_IDEMPOTENCY],
)
def test_worker_killed_at_each_step_then_redelivered(env, mode, step, idempotency):
    _seed(env)
    # a dead worker cleans nothing up; recovery must not need the idempotency record. A crashed
    # invocation's message comes back only when the queue's visibility timeout ends (the event
    # source leaves it alone): 5400 s in the template, shortened here, and the worker's deadline (an
    # idempotency record's in-progress expiry) with it
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": idempotency, "SMALL_CHUNK_ROWS": "0"}, visibility_timeout=5)
    if mode == "incremental":
        assert stack.run({"tables": "orders", "mode": "full"}, workers=1).ok
        env.sql("UPDATE orders SET total = total * 3, note = 'changed' WHERE id % 2 = 0")
    if step == "after_handler":
        # the handler finished but the container died before the event source deleted the message
        summary = stack.invoke("SchedulerFunction", {"tables": "orders", "mode": mode, "chunk_rows": 30})
        import json

        import boto3

        sqs = boto3.client("sqs")
        first = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"])[
            "Messages"
        ][0]
        first_chunk = json.loads(first["Body"])["chunk_id"]
        worker = stack.load_handler("WorkerFunction")
        from aurora_replication_dev.local.stack import LocalContext

        worker({"Records": [stack._record(first)]}, LocalContext("WorkerFunction", 900))
        sqs.change_message_visibility(
            QueueUrl=stack.queue_url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
        )
        done_again: list[int] = []

        def record_done(step: str, message=None) -> None:
            if step == "marked_done":
                done_again.append(message.chunk_id)

        outcome = stack.drain(summary["run_id"], workers=2, timeout=120, fault=record_done)
        # the message the first worker handled came back: copied again, or with idempotency answered
        # from the record its first handling kept
        assert done_again.count(first_chunk) == (0 if idempotency == "true" else 1), done_again
    else:
        fault, crashed = _crash_once_per_thread_at(step)
        outcome = stack.run({"tables": "orders", "mode": mode, "chunk_rows": 30}, workers=2, fault=fault, timeout=120)
        assert crashed, f"no worker reached step {step!r}, so none was killed there"
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "orders") == 120
    # killed after the table's status, before the run's: the finalise that came back marked the run
    assert outcome.run["status"] == "succeeded", outcome.run.get("status")


@pytest.mark.parametrize(
    "mode, step, idempotency",
    [
        ("full", "copied", "false"),
        ("full", "marked_done", "false"),
        ("full", "published", "false"),
        ("full", "status_set", "false"),
        ("incremental", "merged", "false"),
        ("incremental", "status_set", "false"),
        ("full", "published", "true"),  # the inline finaliser killed: the chunk's own record in progress
    ],
)
def test_small_chunks_finalised_in_the_last_chunks_invocation_survive_a_kill_at_each_step(env, mode, step, idempotency):
    """Small chunks (the INSERT path): the worker that completes the table finalises it in the same
    invocation, on its warm connections. Killed there, its chunk message comes back, is copied again
    and finalises the table."""
    _seed(env)
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": idempotency}, visibility_timeout=5)
    if mode == "incremental":
        assert stack.run({"tables": "orders", "mode": "full"}, workers=1).ok
        env.sql("UPDATE orders SET total = total * 3, note = 'changed' WHERE id % 2 = 0")
    fault, crashed = _crash_once_per_thread_at(step)
    outcome = stack.run({"tables": "orders", "mode": mode, "chunk_rows": 30}, workers=2, fault=fault, timeout=120)
    assert crashed, f"no worker reached step {step!r}, so none was killed there"
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "orders") == 120
    # killed after the table's status: the chunk that came back found the table finished and marked the run
    assert outcome.run["status"] == "succeeded", outcome.run.get("status")
    assert outcome.run["table_states"]["orders"]["chunk_count"] > 1
    if step == "status_set":
        return  # the finalise that published died with its invocation, before its attempt was recorded
    # the finalise that published started inside a chunk's invocation (its attempt within the chunk's). The
    # stack's worker deadline is the visibility timeout's sixth (under a second here), so its publish may
    # outlast the invocation's wait: then that finalise answered "polling" and the publish statement ended
    # in a finalise message of its own (pipeline/finalise.py), which published
    from aurora_replication.ledger.store import StateStore

    attempts = StateStore(stack.table_name, stack.session.resource("dynamodb")).get_attempts(outcome.run_id)
    published = [a for a in attempts if a["chunk"] == "final" and a["status"] == "published"]
    assert published, attempts
    started = [a for a in attempts if a["chunk"] == "final" and a["status"] in ("published", "polling")]
    final = [min(started, key=lambda a: a["start"])]
    chunks = [a for a in attempts if a["kind"] == "chunk"]
    for f in final:
        assert any(
            c["worker"] == f["worker"] and c["start"] <= f["start"] <= c["start"] + c["seconds"] for c in chunks
        ), (f, chunks)


@pytest.mark.parametrize("copies", [2, 3])
def test_every_message_delivered_several_times_to_concurrent_workers(env, copies):
    import boto3

    _seed(env)
    stack = env.start_stack()
    summary = stack.invoke("SchedulerFunction", {"tables": "orders", "mode": "full", "chunk_rows": 25})
    sqs = boto3.client("sqs")
    bodies = []
    while msgs := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in msgs)
    for body in bodies:
        for _ in range(copies):
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    outcome = stack.drain(summary["run_id"], workers=3, timeout=180)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "orders") == 120
