"""Move dead-lettered chunk messages back to the chunk queue once their cause is fixed."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


def _arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def peek(sqs: Any, url: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to ``limit`` messages (with their SentTimestamp), left in the queue and visible again at once."""
    seen: dict[str, dict[str, Any]] = {}
    receipts: list[str] = []
    while len(seen) < limit:
        msgs = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=30,
            AttributeNames=["SentTimestamp"],
        ).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            seen[m["MessageId"]] = m
            receipts.append(m["ReceiptHandle"])
    for receipt in receipts:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return list(seen.values())


def redrive(sqs: Any, dlq_url: str, queue_url: str) -> dict[str, Any]:
    """Start SQS's own message move task; where it is not available (the local stack), move the
    messages by receive, send, delete. Returns how it was done and the run ids it moved."""
    try:
        task = sqs.start_message_move_task(SourceArn=_arn(sqs, dlq_url), DestinationArn=_arn(sqs, queue_url))
        return {"method": "StartMessageMoveTask", "task": task.get("TaskHandle"), "moved": None, "run_ids": []}
    except ClientError as e:
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        code = e.response.get("Error", {}).get("Code")
        if status < 500 and code not in ("InvalidAction", "NotImplemented", "UnsupportedOperation"):
            raise
    except NotImplementedError:
        pass
    moved = 0
    run_ids: set[str] = set()
    while True:
        msgs = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            sqs.send_message(QueueUrl=queue_url, MessageBody=m["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
            try:
                run_ids.add(str(json.loads(m["Body"])["run_id"]))
            except (ValueError, KeyError, TypeError):
                pass
    return {"method": "receive-send-delete", "moved": moved, "run_ids": sorted(run_ids)}
