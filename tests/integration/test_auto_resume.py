"""A stalled run is resumed once by the next scheduler that finds its lease; a second stall is reported."""

from __future__ import annotations

import time

from compare import assert_same

STALL = 60  # STALL_SECONDS' minimum; a table's progress is aged past it instead of waiting


def _lose_messages(stack) -> int:
    """What a purged queue or expired messages do: the run's messages are gone for good."""
    lost = 0
    while msgs := stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for m in msgs:
            stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
        lost += len(msgs)
    return lost


def _age(stack, run_id: str, table: str) -> None:
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": f"TABLE#{table}"}},
        UpdateExpression="SET progress_at = :old",
        ExpressionAttributeValues={":old": {"N": str(int(time.time()) - 10 * STALL)}},
    )


def test_a_stalled_run_is_resumed_once_and_a_second_stall_is_reported(env) -> None:
    env.sql("CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO s SELECT seq, 'v' FROM seq_1_to_50")
    stack = env.start_stack({"STALL_SECONDS": str(STALL)})
    first = stack.invoke("SchedulerFunction", {"tables": "s", "mode": "full", "chunk_rows": 10})
    stalled, chunks = first["run_id"], first["tables"]["s"]["chunks"]
    assert chunks > 1 and _lose_messages(stack) == chunks

    # not stalled yet: the next run is declined as before, nothing resumed
    early = stack.invoke("SchedulerFunction", {"tables": "s", "mode": "full"})
    assert early["tables"]["s"]["status"] == "declined" and "resumed_run" not in early["tables"]["s"]
    assert stack.queue_depth(stack.queue_url) == (0, 0)

    _age(stack, stalled, "s")
    second = stack.invoke("SchedulerFunction", {"tables": "s", "mode": "full"})
    t = second["tables"]["s"]
    assert t["status"] == "declined" and t["resumed_run"] == stalled and t["resumed"] is True, t
    assert f"resumed it once automatically ({chunks} message(s) sent)" in t["reason"]
    assert _lose_messages(stack) == chunks  # the missing chunks were sent again ... and are lost again

    _age(stack, stalled, "s")
    third = stack.invoke("SchedulerFunction", {"tables": "s", "mode": "full"})
    t = third["tables"]["s"]
    assert t["resumed"] is False and "stalled again" in t["reason"] and "not resumed again" in t["reason"], t
    assert stack.queue_depth(stack.queue_url) == (0, 0)  # not retried
    health = stack.invoke("HealthFunction", {})
    replication = health["checks"]["replication"]
    assert [x["run_id"] for x in replication["stalled_runs"]] == [stalled]
    assert replication["stalled_runs"][0]["auto_resumed_at"]
    assert "stalled again after an automatic resume" in replication["detail"]

    # the operator's resume still works, and the run finishes
    stack.invoke("SchedulerFunction", {"resume_run": stalled})
    outcome = stack.drain(stalled, workers=2)
    assert outcome.ok, outcome.run["table_states"]["s"]
    assert_same(env, "s")
