"""Runs cannot go back in time. A run that stopped making progress loses its table's lease; a newer
run takes the table and publishes it; whatever the older run does afterwards (its finaliser arrives,
an operator resumes it) leaves the newer run's target and watermark as they are.

Each test drives the messages of the older run by hand (no timing): all its chunks but one are
copied, the last one is held back (or lost), its lease is aged past its expiry, a newer run
publishes, and then the older run's last chunk (and so its finaliser) or a resume comes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aurora_replication_dev.local.stack import LocalContext
from compare import assert_same

ROWS = 120


def _seed(env: Any) -> None:
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2), note VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        f"INSERT INTO acct (id, balance, note, updated_at) SELECT seq, seq, 'v1', '2024-01-01' + INTERVAL seq SECOND "
        f"FROM seq_1_to_{ROWS}",
    )


def _start(env: Any) -> Any:
    # chunks through stage files (no small-chunk INSERT path that finalises inline), idempotency off: a
    # message handled twice must be safe without it
    return env.start_stack({"SMALL_CHUNK_ROWS": "0", "IDEMPOTENCY_ENABLED": "false"})


def _work(stack: Any, keep: int) -> list[str]:
    """Handle ``keep`` chunk messages of the queue one by one with a worker container, as the event source
    would; the other messages are taken off the queue and returned unhandled (held back, or lost: what a
    purged queue does to a run)."""
    worker = stack.load_handler("WorkerFunction")
    held: list[str] = []
    done = 0
    while msgs := stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"]
    ).get("Messages", []):
        m = msgs[0]
        if json.loads(m["Body"]).get("kind") == "chunk" and done < keep:
            response = worker({"Records": [stack._record(m)]}, LocalContext("WorkerFunction", 900))
            assert response == {"batchItemFailures": []}, response
            done += 1
        else:
            held.append(m["Body"])
        stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert done == keep, f"{done} chunks handled, {keep} expected"
    return held


def _schedule(stack: Any, request: dict[str, Any]) -> tuple[str, int]:
    summary = stack.invoke("SchedulerFunction", request)
    return summary["run_id"], int(summary["tables"]["acct"]["chunks"])


def _age_lease(stack: Any, env: Any) -> None:
    """The run holding the table made no progress for LEASE_SECONDS: its lease has expired."""
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": env.key("acct").pk}, "sk": {"S": "LEASE"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )


def _item(stack: Any, env: Any, sk: str) -> dict[str, Any]:
    key = {"pk": {"S": env.key("acct").pk}, "sk": {"S": sk}}
    return stack.dynamodb.get_item(TableName=stack.table_name, Key=key, ConsistentRead=True)["Item"]


def _ledger(stack: Any) -> Any:
    from aurora_replication.ledger.store import StateStore

    return StateStore(stack.table_name, stack.session.resource("dynamodb"))


def _change(env: Any, note: str, where: str) -> None:
    env.sql(f"UPDATE acct SET balance = balance + 1000, note = '{note}' WHERE {where}")


def test_the_finaliser_of_a_superseded_run_publishes_nothing(env) -> None:
    _seed(env)
    stack = _start(env)
    older, chunks = _schedule(stack, {"tables": "acct", "mode": "full", "chunk_rows": 30})
    held = _work(stack, chunks - 1)  # the older run's last chunk (and so its finaliser) is late
    assert len(held) == 1
    _change(env, "v2", "id <= 60")
    _age_lease(stack, env)
    newer = stack.run({"tables": "acct", "mode": "full", "chunk_rows": 30}, workers=2)
    assert newer.ok, newer.run["table_states"]
    watermark = _item(stack, env, "WATERMARK")
    assert watermark["run_id"]["S"] == newer.run_id

    # the older run's last chunk arrives now: its finaliser must not publish the older run's rows
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=held[0])
    outcome = stack.drain(older, workers=1)
    t = outcome.run["table_states"]["acct"]
    assert t["status"] == "superseded", t
    assert f"run {newer.run_id} took the lease of table 'acct'" in t["reason"], t["reason"]
    assert assert_same(env, "acct") == ROWS  # the newer run's rows, value by value
    assert _item(stack, env, "WATERMARK") == watermark  # not moved back
    assert _item(stack, env, "LAST_RUN")["run_id"]["S"] == newer.run_id
    lease = _item(stack, env, "LEASE")
    assert lease["run_id"]["S"] == newer.run_id  # the superseded run released nothing of the newer one's


def test_an_incremental_run_superseded_before_its_merge_merges_nothing(env) -> None:
    _seed(env)
    stack = _start(env)
    assert stack.run({"tables": "acct", "mode": "full"}, workers=2).ok
    _change(env, "v2", "id % 2 = 0")
    older, chunks = _schedule(stack, {"tables": "acct", "mode": "incremental", "chunk_rows": 30})
    held = _work(stack, chunks - 1)
    assert len(held) == 1 and chunks > 1
    _change(env, "v3", "id % 4 = 0")  # newer values for half of the rows the older run copied
    _age_lease(stack, env)
    newer = stack.run({"tables": "acct", "mode": "incremental", "chunk_rows": 30}, workers=2)
    assert newer.ok, newer.run["table_states"]
    watermark = _item(stack, env, "WATERMARK")

    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=held[0])
    outcome = stack.drain(older, workers=1)
    assert outcome.run["table_states"]["acct"]["status"] == "superseded"
    assert assert_same(env, "acct") == ROWS  # a late MERGE would have put the v2 values back
    assert _item(stack, env, "WATERMARK") == watermark


def _older_run_interrupted_then_newer_published(env: Any, restart: bool) -> tuple[Any, str, str]:
    """The issue's sequence: run A interrupted half way (its other chunks lost), the source changed, a
    newer full run B published. ``restart``: as with the local CLI, each step is a new process (the
    stack starts again from its state file, which does not carry leases); else A's lease expired."""
    _seed(env)
    stack = _start(env)
    older, chunks = _schedule(stack, {"tables": "acct", "mode": "full", "chunk_rows": 30})
    _work(stack, chunks // 2)  # half way; the rest is lost (Ctrl-C, a purged queue)
    _change(env, "v2", "id % 3 = 0")
    if restart:
        stack.stop()
        stack = _start(env)
    else:
        _age_lease(stack, env)
    newer = stack.run({"tables": "acct", "mode": "full", "chunk_rows": 30}, workers=2)
    assert newer.ok, newer.run["table_states"]
    assert assert_same(env, "acct") == ROWS
    return stack, older, newer.run_id


@pytest.mark.parametrize("restart", [False, True], ids=["lease-expired", "stack-restarted"])
def test_resuming_a_superseded_run_is_refused_and_writes_nothing(env, restart: bool) -> None:
    stack, older, newer = _older_run_interrupted_then_newer_published(env, restart)
    watermark, last_run = _item(stack, env, "WATERMARK"), _item(stack, env, "LAST_RUN")
    if restart:
        stack.stop()
        stack = _start(env)
    before = _ledger(stack).get_table(older, "acct")
    summary = stack.invoke("SchedulerFunction", {"resume_run": older})
    t = summary["tables"]["acct"]
    assert t["sent"] == 0 and summary["refused"] == ["acct"] and summary["resumed"] is False, summary
    assert t["refused"].startswith(f"resume refused for table 'acct': run {older} is superseded: run {newer}")
    assert "\n" not in t["refused"]
    assert stack.queue_depth(stack.queue_url) == (0, 0)  # nothing sent
    after = _ledger(stack).get_table(older, "acct")
    assert after == before  # nothing written to the older run either
    assert assert_same(env, "acct") == ROWS  # the newer run's rows, value by value
    assert _item(stack, env, "WATERMARK") == watermark  # not moved back
    assert _item(stack, env, "LAST_RUN") == last_run


def test_replicate_resume_of_a_superseded_run_says_why_and_exits_1(env, capsys) -> None:
    from aurora_replication_dev import cli

    stack, older, newer = _older_run_interrupted_then_newer_published(env, restart=True)
    watermark = _item(stack, env, "WATERMARK")
    stack.stop()
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main(["--home", str(env.home), "resume", older, *urls, "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert f"resume refused for table 'acct': run {older} is superseded: run {newer}" in err, err
    assert assert_same(env, "acct") == ROWS
    stack = _start(env)
    assert _item(stack, env, "WATERMARK") == watermark


def test_a_resume_of_a_run_nobody_superseded_still_finishes_it(env) -> None:
    _seed(env)
    stack = _start(env)
    run_id, chunks = _schedule(stack, {"tables": "acct", "mode": "full", "chunk_rows": 30})
    _work(stack, chunks // 2)
    _age_lease(stack, env)  # stalled past its lease, but no other run took the table
    summary = stack.invoke("SchedulerFunction", {"resume_run": run_id})
    assert summary["tables"]["acct"]["sent"] == chunks - chunks // 2 and "refused" not in summary, summary
    outcome = stack.drain(run_id, workers=2)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "acct") == ROWS
