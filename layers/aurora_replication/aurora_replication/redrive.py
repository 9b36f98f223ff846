"""Move dead-lettered chunk messages back to the chunk queue once their cause is fixed."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError


def _arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


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
        msgs = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   VisibilityTimeout=60).get("Messages", [])
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
