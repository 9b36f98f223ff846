"""Powertools idempotency on, as deployed: a result that means "not done yet" must not be kept as the
answer for its key, and a duplicate that arrives while its key is in progress comes back later."""

from __future__ import annotations

import threading
import time

from aurora_replication.ledger.store import StateStore
from compare import assert_same

ROWS = 120


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2), note VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        f"INSERT INTO orders (id, total, note, updated_at) SELECT seq, seq * 2.5, CONCAT('n', seq), "
        f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )


def _store(stack) -> StateStore:
    return StateStore(stack.table_name, stack.session.resource("dynamodb"))


def _finalise_attempts(stack, run_id: str) -> list[dict]:
    return [a for a in _store(stack).get_attempts(run_id) if a["kind"] == "finalise"]


def test_an_early_finaliser_is_not_cached_and_the_last_chunks_finalise_publishes(env):
    """Chunk 0 fails after it was counted (a transient error once its ledger entry is written): it is
    delivered again and counted twice, so the table's count reaches its chunk count while chunk 1 is
    still being copied, and chunk 0's second attempt sends the finalise early. That finaliser finds
    chunk 1 outstanding and answers "waiting". Chunk 1 then completes and sends the finalise again,
    with the same idempotency key: it must publish the table, not be answered with the stored
    "waiting" of the early one (which would leave the table unfinished, and a resume too: its
    finalise has the same key)."""
    _seed(env)
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "true", "SMALL_CHUNK_ROWS": "0", "REDELIVERY_BASE_SECONDS": "0"})
    marked: list[int] = []  # chunk ids, each time one is marked done
    held: list[str] = []
    changed = threading.Condition()

    def wait_for(condition, what: str) -> None:
        with changed:
            assert changed.wait_for(condition, timeout=60), f"timed out waiting for {what}"

    def fault(step: str, message=None) -> None:
        if message is None or message.kind != "chunk":
            return
        others = set(range(2, message.chunk_count))
        if step == "marked_done":
            with changed:
                marked.append(message.chunk_id)
                changed.notify_all()
            if message.chunk_id == 0 and marked.count(0) == 1:
                raise RuntimeError("simulated transient failure after the chunk was counted")
        elif step == "extracted" and message.chunk_id == 0 and 0 in marked and "0" not in held:
            # chunk 0 comes back once every chunk but 1 is done: its count then completes the table
            held.append("0")
            wait_for(lambda: others <= set(marked), f"chunks {sorted(others)}")
        elif step == "extracted" and message.chunk_id == 1 and "1" not in held:
            held.append("1")  # chunk 1 is slow: it completes once the early finaliser has answered
            deadline = time.monotonic() + 60
            while not _finalise_attempts(stack, message.run_id):
                assert time.monotonic() < deadline, "no early finaliser"
                time.sleep(0.1)

    # three containers: one holds chunk 1, one chunk 0's second attempt, one copies the rest
    outcome = stack.run({"tables": "orders", "mode": "full", "chunk_rows": 30}, workers=3, fault=fault, timeout=120)
    assert held == ["1", "0"] or held == ["0", "1"], held
    attempts = _finalise_attempts(stack, outcome.run_id)
    # the early finaliser ran as a message of its own, and found chunk 1 outstanding
    assert [a["status"] for a in sorted(attempts, key=lambda a: a["start"])][0] == "waiting", attempts
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["status"] == "succeeded"
    assert outcome.run["table_states"]["orders"]["status"] == "published"
    assert any(a["status"] == "published" for a in attempts), attempts
    assert assert_same(env, "orders") == ROWS


def test_a_duplicate_delivered_while_its_key_is_in_progress_fails_comes_back_and_is_answered(env):
    """One chunk's message delivered twice (SQS delivers at least once): the second delivery reaches
    another container while the first is still copying. Powertools refuses it (its key is
    INPROGRESS): the worker reports it as a partial batch failure and makes it visible again (the
    redelivery backoff), never deletes it. Delivered again after the first finished, it is answered
    from the first one's record: the chunk is copied and counted once."""
    import boto3

    from aurora_replication_dev.local.stack import LocalContext

    _seed(env)
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "true", "SMALL_CHUNK_ROWS": "0", "REDELIVERY_BASE_SECONDS": "0"})
    summary = stack.invoke("SchedulerFunction", {"tables": "orders", "mode": "full", "chunk_rows": 30})
    run_id = summary["run_id"]
    sqs = boto3.client("sqs")
    held = []  # every chunk message, received and kept in flight while the test delivers one of them twice
    while msgs := stack.receive(10):
        held.extend(msgs)
    first = next(m for m in held if '"chunk_id":1,' in m["Body"])
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=first["Body"])  # the duplicate delivery
    (duplicate,) = stack.receive(10)
    assert duplicate["Body"] == first["Body"] and duplicate["MessageId"] != first["MessageId"]

    copying = threading.Event()
    refused = threading.Event()
    one = stack.load_module("WorkerFunction")

    def fault(step: str, message=None) -> None:
        if step == "extracted":  # the first delivery is copying: its key is INPROGRESS
            copying.set()
            assert refused.wait(60), "the duplicate was not handled"

    one.services.hooks.fault = fault
    results: list = []
    thread = threading.Thread(
        target=lambda: results.append(one.lambda_handler({"Records": [stack._record(first)]}, LocalContext("w", 900)))
    )
    thread.start()
    try:
        assert copying.wait(60), "the first delivery did not start copying"
        other = stack.load_handler("WorkerFunction")  # another container
        refusal = other({"Records": [stack._record(duplicate)]}, LocalContext("w", 900))
    finally:
        refused.set()
        thread.join(60)
    assert refusal == {"batchItemFailures": [{"itemIdentifier": duplicate["MessageId"]}]}, refusal
    assert results == [{"batchItemFailures": []}], results
    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=first["ReceiptHandle"])  # as the event source does
    # not lost: the worker made the refused duplicate visible again (REDELIVERY_BASE_SECONDS=0: at once)
    (back,) = stack.receive(10)
    assert back["MessageId"] == duplicate["MessageId"], back
    assert back["Attributes"]["ApproximateReceiveCount"] == "2", back["Attributes"]
    for m in [back, *(m for m in held if m is not first)]:
        sqs.change_message_visibility(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    outcome = stack.drain(run_id, workers=2, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "orders") == ROWS
    # the duplicate was answered from the record: chunk 1 copied once, never by the duplicate
    copies = [a for a in _store(stack).get_attempts(run_id) if a["kind"] == "chunk" and a["chunk"] == 1]
    assert len(copies) == 1, copies
    assert outcome.run["table_states"]["orders"]["done_count"] == outcome.run["table_states"]["orders"]["chunk_count"]
