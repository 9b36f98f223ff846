"""The local stack keeps the atomicity AWS promises, so fault tests measure our code, not moto's races."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import boto3

from aurora_replication.ledger.store import StateStore
from aurora_replication_dev.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
TABLES = 150
WORKERS = 4


def test_chunks_marked_done_at_the_same_moment_are_all_kept(tmp_path: Path) -> None:
    """The first chunks of a table often finish together. moto alone can lose one of two concurrent
    updates of the same item (it copies and mutates the item without a lock); DynamoDB never does,
    and the local stack must not either, or a run would wait for a chunk it already copied."""
    stack = LocalStack(tmp_path / "home", ROOT / "template.yaml")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads (moto's among them) as often as possible
    stack.start({"host": "127.0.0.1", "username": "u", "password": "p", "dbname": "d"}, {"account": "a"})
    try:
        state = StateStore(stack.table_name)
        for t in range(TABLES):
            state.record_table("r1", f"t{t}", status="running", chunk_count=WORKERS, started_at=1)
        barrier = threading.Barrier(WORKERS)
        session_lock = threading.Lock()
        errors: list[BaseException] = []

        def worker(chunk: int) -> None:
            with session_lock:  # boto3's default session is not safe to build clients from concurrently
                own = StateStore(stack.table_name, boto3.session.Session().resource("dynamodb"))
            try:
                for t in range(TABLES):
                    barrier.wait(timeout=30)
                    own.mark_chunk_done("r1", f"t{t}", chunk, 0, {"attempt": f"a{chunk}", "rows": 1, "seconds": 0.01})
            except BaseException as e:  # surfaced below: a thread's exception does not fail the test
                errors.append(e)
                barrier.abort()

        threads = [threading.Thread(target=worker, args=(c,)) for c in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        lost = {
            f"t{t}": (int(item.get("done_count", 0)), int(item.get("rows_copied", 0)), len(chunks))
            for t in range(TABLES)
            if (
                int((item := state.get_table("r1", f"t{t}")).get("done_count", 0)) != WORKERS
                or int(item.get("rows_copied", 0)) != WORKERS
                or len(chunks := state.get_chunks("r1", f"t{t}")) != WORKERS
            )
        }
        assert not lost, f"chunk marks lost: {lost}"
    finally:
        sys.setswitchinterval(interval)
        stack.stop()


def test_without_sams_translator_the_stack_reads_the_template_and_says_so(env, monkeypatch) -> None:
    """The fallback (no aws-sam-translator, or REPLICATE_STACK_FROM_TEMPLATE): queues and table from a
    reading of the template, no roles, IAM not enforced, and the log says which it was."""
    monkeypatch.setenv("REPLICATE_STACK_FROM_TEMPLATE", "1")
    env.sql("CREATE TABLE f (id INT PRIMARY KEY)", "INSERT INTO f VALUES (1), (2), (3)")
    stack = env.start_stack()
    assert stack.provisioned_by == "template" and stack.cloudformation is None
    assert stack.event_source.batch_size == 1 and stack.event_source.report_batch_item_failures
    attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "5400"
    assert stack.run({"tables": "f", "mode": "full"}, workers=1).ok
    assert "no roles, IAM not enforced" in stack.log_path.read_text()


def test_worker_containers_can_be_processes_of_their_own(env) -> None:
    """As Lambda runs them: each worker container a process with its own interpreter, polling the
    stack's moto over HTTP with the worker's role, and reporting its own peak memory when it stops."""
    import os

    from compare import assert_same

    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20), price DECIMAL(8,2))",
        "INSERT INTO items SELECT seq, CONCAT('item ', seq), seq * 1.5 FROM seq_1_to_120",
        "CREATE TABLE tags (code VARCHAR(8) PRIMARY KEY, note TEXT)",
        "INSERT INTO tags VALUES ('a', 'x'), ('b', NULL), ('c', '')",
    )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "10"})
    outcome = stack.run({"tables": "items,tags", "mode": "full", "chunk_rows": 30}, workers=2, processes=True)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "items") == 120 and assert_same(env, "tags") == 3
    results = stack.container_results
    assert len(results) == 2 and all(r["exit_code"] == 0 and not r["errors"] for r in results), results
    assert sum(r["invocations"] for r in results) >= 5  # four chunks of items, one of tags, a finalise
    assert outcome.worker_peak_mb is not None and 30 < outcome.worker_peak_mb < 1024
    # the attempts were made by other processes than this one (the timeline names each worker's)
    workers = {a["worker"] for a in StateStore(stack.table_name).get_attempts(outcome.run_id)}
    assert workers and not any(w.startswith(f"p{os.getpid()}-") for w in workers), workers
    # the threads' mapping still refuses nothing it did before: a fault injector needs threads
    import pytest

    from aurora_replication.errors import BadInputError

    with pytest.raises(BadInputError, match="threads"):
        stack.drive_workers(1, threading.Event(), fault=lambda step, msg: None, processes=True)
