"""The chunk queue: sending the work's messages (chunks, finalise steps, cdc batches) and counting their cost."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aurora_replication.cost import meter

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


SQS_BILLING_CHUNK = 64 * 1024


def sqs_requests(bodies: Iterable[str]) -> int:
    """The billed requests of one SendMessageBatch: every 64 KB of its payload is one request."""
    size = sum(len(b.encode()) for b in bodies)
    return max(1, -(-size // SQS_BILLING_CHUNK))


@dataclass
class ChunkQueue:
    """The SQS client and the chunk queue's URL (``CHUNK_QUEUE_URL``)."""

    sqs: SQSClient
    url: str

    def send(self, bodies: list[str], tables: list[str] | None = None, delay_seconds: int = 0) -> None:
        """Send in batches of ten; a partly failed batch is resent until every entry is accepted.
        ``tables``: the table of each message, whose cost figures it counts toward (the scheduler
        sends several tables' messages in one batch); by default the table the meter is on.
        ``delay_seconds``: each message is delivered that much later (SQS DelaySeconds, 0 to 900)."""
        owners: list[str | None] = list(tables) if tables is not None else [None] * len(bodies)
        delay = max(0, min(900, int(delay_seconds)))
        for i in range(0, len(bodies), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])
            ]
            if delay:
                for entry in entries:
                    entry["DelaySeconds"] = delay
            batch_owners = owners[i : i + 10]
            for _attempt in range(5):
                resp = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
                requests = sqs_requests(e["MessageBody"] for e in entries)
                for j in (int(e["Id"]) for e in entries):  # the request's cost, shared by its messages
                    meter.add("sqs_requests", requests / len(entries), batch_owners[j])
                failed = {f["Id"] for f in resp.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            for owner in batch_owners:
                meter.add("sqs_messages_sent", 1, owner)
            if entries:
                raise RuntimeError(f"SQS refused {len(entries)} chunk messages after 5 attempts")
