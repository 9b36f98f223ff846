"""Two finalisers of one table at once (a finalise message delivered twice, or a chunk's inline
finaliser beside a finalise message), and a straggling chunk copy that re-creates the load table
after the first one published and dropped it: the target keeps the validated rows."""

from __future__ import annotations

import threading

import pytest

from aurora_replication_dev.local.stack import LocalContext
from compare import assert_same


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2), note VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO orders (id, total, note, updated_at) SELECT seq, seq * 2.5, CONCAT('n', seq), "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_120",
    )


def _store(stack):
    from aurora_replication.ledger.store import StateStore

    return StateStore(stack.table_name, stack.session.resource("dynamodb"))


def _finalise_elsewhere_then_recreate_the_load_table(env, stack, recreate: bool):
    """A fault at the first finaliser's ``validated`` step: another container finalises the table to
    the end (publishes it, drops the load table); then, with ``recreate``, a chunk copy that checked
    the table's status before that creates the load table again, empty (``CREATE TABLE IF NOT EXISTS``)."""
    seen: list[str] = []

    def fault(step: str, message=None) -> None:
        if step != "validated" or seen:
            return
        seen.append(threading.current_thread().name)
        other = stack.load_handler("WorkerFunction")  # a container of its own, without this fault
        record = {
            "messageId": "duplicate-finalise",
            "receiptHandle": "duplicate-finalise",
            "body": message.body(),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": stack.queue_arn,
            "awsRegion": "us-east-1",
        }
        result = other({"Records": [record]}, LocalContext("WorkerFunction", 900))
        assert result == {"batchItemFailures": []}, result
        run = _store(stack).get_run(message.run_id)
        assert run["table_states"]["orders"]["status"] == "published"
        if recreate:
            from aurora_replication.target.snowflake import sql

            name = sql.load_table_name(message.plan, message.run_id)
            with env.snowflake() as conn:
                conn.cursor().execute(sql.create_load_table(message.plan, name))

    return fault, seen


@pytest.mark.parametrize("recreate", [False, True], ids=["load-table-dropped", "load-table-recreated"])
@pytest.mark.parametrize("mode", ["full", "incremental", "reconcile"])
def test_a_finaliser_that_validated_before_another_published_keeps_the_published_rows(env, mode, recreate):
    """Full: the late INSERT OVERWRITE would have emptied the target; reconcile: the late DELETE of
    keys the (new, empty) keys table lacks would have deleted every row; incremental: the late MERGE
    changes nothing, and its check must not report the table failed."""
    _seed(env)
    # off: with idempotency on, a second finalise of the same key is refused while the first runs
    # (tests/fault/test_idempotency.py), so two finalisers of one message at once happen only without it
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "false"})
    rows = 120
    if mode != "full":
        assert stack.run({"tables": "orders", "mode": "full"}, workers=1).ok
        env.sql("UPDATE orders SET total = total * 3, note = 'changed' WHERE id % 2 = 0")
    if mode == "reconcile":
        env.sql("DELETE FROM orders WHERE id % 10 = 0")
        rows = 108
    fault, seen = _finalise_elsewhere_then_recreate_the_load_table(env, stack, recreate)
    outcome = stack.run({"tables": "orders", "mode": mode, "chunk_rows": 30}, workers=1, fault=fault, timeout=120)
    assert seen, "no finaliser reached its validated step"
    assert outcome.ok, outcome.run["table_states"]
    assert outcome.run["status"] == "succeeded"
    assert outcome.run["table_states"]["orders"]["status"] == "published"
    # the table's last run names the published outcome, not a failure of the late finaliser
    last = _store(stack).table.get_item(Key=env.key("orders").item("LAST_RUN"))["Item"]
    assert last["status"] == "published", last
    if mode == "reconcile":  # the deleted keys are gone and no other row: then bring the changed rows over
        with env.snowflake() as conn:
            keys = sorted(r[0] for r in conn.cursor().execute('SELECT "ID" FROM "ORDERS"').fetchall())
        assert keys == [i for i in range(1, 121) if i % 10], keys
        assert stack.run({"tables": "orders", "mode": "incremental"}, workers=1).ok
    assert assert_same(env, "orders") == rows
