"""Change data capture under faults: workers killed at every step of applying a batch, batches
delivered twice and out of order, the reader killed mid-window. The target ends exact and the stored
position never skips ahead of what was applied."""

from __future__ import annotations

import threading

import boto3
import pytest

from cdc_acct import ENV
from cdc_acct import change as _change
from cdc_acct import position as _position
from cdc_acct import seed as _seed
from cdc_acct import server_end as _server_end
from compare import assert_same

APPLY_STEPS = ["copied", "tombstoned", "merged", "marked_done", "committed"]


def _crash_once_per_thread_at(step_to_kill: str):
    crashed: set[str] = set()

    def fault(step: str, message=None) -> None:
        key = threading.current_thread().name
        if step == step_to_kill and key not in crashed and len(crashed) < 2:
            crashed.add(key)
            raise SystemExit(f"simulated worker death at {step}")

    return fault, crashed


@pytest.mark.parametrize(
    "step, idempotency",
    # every step with idempotency off; on (as deployed), a batch killed after it was counted (counted
    # again: the window's finalise may come early) and a finaliser killed after committing the position
    [(s, "false") for s in APPLY_STEPS] + [("marked_done", "true"), ("committed", "true")],
)
def test_worker_killed_at_each_step_of_applying_a_batch(env, step, idempotency):
    _seed(env)
    stack = env.start_stack({**ENV, "IDEMPOTENCY_ENABLED": idempotency}, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    _change(env)
    end = _server_end(env)
    fault, crashed = _crash_once_per_thread_at(step)
    outcome = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, fault=fault, timeout=180)
    assert crashed
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["table_states"]["acct"]["chunk_count"] > 1  # several batches in the window
    assert _position(env) == end
    assert_same(env, "acct")


@pytest.mark.parametrize("idempotency", ["false", "true"], ids=["idempotency-off", "idempotency-on"])
def test_batches_delivered_twice_out_of_order_and_a_stale_window_again(env, idempotency):
    _seed(env)
    stack = env.start_stack({**ENV, "IDEMPOTENCY_ENABLED": idempotency}, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    _change(env, 0)
    sqs = boto3.client("sqs")
    summary = stack.invoke("SchedulerFunction", {"tables": "acct", "mode": "cdc"})
    bodies = []
    while msgs := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in msgs)
        for m in msgs:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert len(bodies) > 2
    for body in list(reversed(bodies)) * 2:
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    outcome = stack.drain(summary["run_id"], workers=3, timeout=180)
    assert outcome.ok, outcome.run["table_states"]
    assert_same(env, "acct")
    _change(env, 1)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=2).ok
    position = _position(env)
    for body in bodies:  # the first window's batches once more, after a newer window is committed
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    stack.drain(summary["run_id"], workers=2, timeout=60, idle_timeout=3)
    assert _position(env) == position
    assert_same(env, "acct")


@pytest.mark.parametrize("step, nth", [("cdc_window_read", 1), ("cdc_batch_staged", 2), ("cdc_batch_sent", 1)])
def test_reader_killed_mid_window_then_resumed(env, step, nth):
    from aurora_replication_dev.local.stack import LocalContext

    _seed(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    before = _position(env)
    _change(env)
    seen: list[str] = []

    def fault(name: str, message=None) -> None:
        if name == step:
            seen.append(name)
            if len(seen) == nth:
                raise SystemExit(f"simulated reader death at {name}")

    scheduler = stack.load_module("SchedulerFunction")
    scheduler.services.hooks.fault = fault
    with pytest.raises(SystemExit):
        scheduler.lambda_handler({"tables": "acct", "mode": "cdc", "run_id": "dead-reader"}, LocalContext("s", 300))
    stack.drain("dead-reader", workers=2, timeout=60, idle_timeout=3)  # what was sent is applied
    assert _position(env) == before  # never ahead of what was applied
    resumed = stack.run({"resume_run": "dead-reader"}, workers=2, timeout=180)
    assert resumed.ok, resumed.run["table_states"]
    assert _position(env) > before
    _change(env, 1)
    after = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, timeout=180)
    assert after.ok, after.run["table_states"]
    assert _position(env) == _server_end(env)
    assert_same(env, "acct")


# a cdc table with options: the where names an excluded column, updates move rows out of it and back in
OPTIONS = {
    "acct": {
        "exclude": ["note"],
        "mask": {"owner": "sha256"},
        "where": "balance >= 5 AND (note IS NULL OR note <> 'r0')",
    }
}


def _target_rows(env) -> list[tuple]:
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "OWNER", "BALANCE" FROM "ACCT" ORDER BY "ID"')
    rows = cur.fetchall()
    sf.close()
    return rows


@pytest.mark.parametrize("fault", ["reader:cdc_window_read:1", "reader:cdc_batch_staged:2", "worker:merged", "twice"])
def test_a_table_with_options_under_kills_and_redelivery_ends_as_a_full_copy_with_them(env, fault):
    """The options' steps (the where evaluated by MySQL, the masks) sit in the reader between reading the
    window and staging it: a reader killed there and resumed, a worker killed after a merge, batches
    delivered twice in reverse order: the target ends as a full copy with the same options makes it."""
    from aurora_replication_dev.local.stack import LocalContext

    _seed(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    request = {"tables": "acct", "mode": "cdc", "table_options": OPTIONS}
    assert stack.run(request, workers=1).ok
    _change(env, 0)
    kind, _, rest = fault.partition(":")
    if kind == "reader":
        step, nth = rest.split(":")
        seen: list[str] = []

        def die(name: str, message=None) -> None:
            if name == step:
                seen.append(name)
                if len(seen) == int(nth):
                    raise SystemExit(f"simulated reader death at {name}")

        scheduler = stack.load_module("SchedulerFunction")
        scheduler.services.hooks.fault = die
        with pytest.raises(SystemExit):
            scheduler.lambda_handler({**request, "run_id": "dead-options-reader"}, LocalContext("s", 300))
        stack.drain("dead-options-reader", workers=2, timeout=60, idle_timeout=3)
        resumed = stack.run({"resume_run": "dead-options-reader"}, workers=2, timeout=180)
        assert resumed.ok, resumed.run["table_states"]
    elif kind == "worker":
        crash, crashed = _crash_once_per_thread_at(rest)
        assert stack.run(request, workers=2, fault=crash, timeout=180).ok
        assert crashed
    else:
        sqs = boto3.client("sqs")
        summary = stack.invoke("SchedulerFunction", request)
        bodies = []
        while msgs := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            bodies.extend(m["Body"] for m in msgs)
            for m in msgs:
                sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
        assert len(bodies) > 2
        for body in list(reversed(bodies)) * 2:
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
        assert stack.drain(summary["run_id"], workers=3, timeout=180).ok
    _change(env, 1)  # the rows round 0 moved out of the where come back in
    assert stack.run(request, workers=2, timeout=180).ok
    assert _position(env) == _server_end(env)
    by_cdc = _target_rows(env)
    assert stack.run({**request, "mode": "full"}, workers=2, timeout=180).ok
    assert _target_rows(env) == by_cdc and len(by_cdc) > 50


def test_start_position_now_with_the_reader_killed_after_recording_the_position(env):
    """A start_position now run killed right after it recorded the position: the table streams from that
    position once the dead run's lease has expired; the changes made meanwhile are applied, none copied."""
    import time

    from aurora_replication_dev.local.stack import LocalContext

    _seed(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    request = {"tables": "acct", "mode": "cdc", "start_position": "now"}

    def die(name: str, message=None) -> None:
        if name == "cdc_position_recorded":
            raise SystemExit("simulated reader death after the position was recorded")

    scheduler = stack.load_module("SchedulerFunction")
    scheduler.services.hooks.fault = die
    with pytest.raises(SystemExit):
        scheduler.lambda_handler({**request, "run_id": "dead-start"}, LocalContext("s", 300))
    scheduler.services.hooks.fault = lambda *a, **k: None
    recorded = _position(env)
    env.sql("UPDATE acct SET balance = 0 WHERE id <= 3", "DELETE FROM acct WHERE id = 4")
    declined = stack.run(request, workers=1, timeout=120)  # the dead run still holds the lease
    assert declined.run["table_states"]["acct"]["status"] == "declined", declined.run["table_states"]
    stack.dynamodb.update_item(  # the dead run made no progress for LEASE_SECONDS: its lease expired
        TableName=stack.table_name,
        Key={"pk": {"S": env.key("acct").pk}, "sk": {"S": "LEASE"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )
    streamed = stack.run(request, workers=1, timeout=120)  # streaming already: the position is not moved
    t = streamed.run["table_states"]["acct"]
    assert streamed.ok and t["mode"] == "cdc" and t["upserts"] == 3 and t["deletes"] == 1, t
    assert _position(env) > recorded
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "BALANCE" FROM "ACCT" ORDER BY 1')
    assert cur.fetchall() == [(1, 0), (2, 0), (3, 0)]  # only what changed after the position: no copy
    sf.close()
