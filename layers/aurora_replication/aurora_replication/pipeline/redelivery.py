"""When a failed chunk message comes back: in seconds to minutes, with backoff.

The SQS event source does not touch a message its function reported as failed: the message
becomes visible again when the queue's visibility timeout (5400 s, six times the worker's timeout
as AWS advises) runs out, so five receives would take hours. The worker therefore sets the failed
message's visibility itself (``ChangeMessageVisibility``): ``REDELIVERY_BASE_SECONDS`` doubling
with every receive up to ``REDELIVERY_MAX_SECONDS``, with jitter so failed chunks of one run do
not all come back at once. A message that cannot succeed (bad input) and one on its last receive
come back at once, so a poison message reaches the dead-letter queue after ``maxReceiveCount``
receives in minutes. The failure is reported as a partial batch failure, never as a failed
invocation: an expected retry is not a Lambda error and raises no alarm.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from aurora_replication.cost import meter
from aurora_replication.errors import BadInputError
from aurora_replication.services import Services

logger = Logger(child=True)
MAX_VISIBILITY_SECONDS = 43200  # SQS's maximum visibility timeout (12 hours)


def delay_seconds(
    receive_count: int,
    base: int,
    maximum: int,
    immediate: bool = False,
    rand: Callable[[], float] = random.random,
) -> int:
    """Seconds until the next receive: between half and all of ``min(maximum, base * 2**(n-1))``."""
    if immediate or base <= 0:
        return 0
    ceiling: int = min(maximum, base << max(receive_count - 1, 0), MAX_VISIBILITY_SECONDS)
    return max(1, round(ceiling / 2 + rand() * ceiling / 2))


def after_failure(receipt_handle: str, receive_count: int, error: BaseException, services: Services) -> int | None:
    """Make the failed message visible again after the backoff; returns the delay, or None when SQS
    refused (the message then waits out the queue's visibility timeout: late, never lost)."""
    s = services.settings
    last = receive_count >= s.max_receive_count
    delay = delay_seconds(
        receive_count, s.redelivery_base_seconds, s.redelivery_max_seconds, isinstance(error, BadInputError) or last
    )
    # the error is logged here: a partial batch failure is not an invocation error, which Lambda
    # would have logged itself
    what: dict[str, Any] = {"receive": receive_count, "of": s.max_receive_count, "redelivery_seconds": delay}
    failure = f"{type(error).__name__}: {error}"
    services.hooks.metric("FailedAttempts", 1)
    meter.add("sqs_requests", 1)
    try:
        services.queue.sqs.change_message_visibility(
            QueueUrl=s.chunk_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
        )
    except (ClientError, BotoCoreError) as e:
        what["redelivery_seconds"] = None
        logger.warning(
            f"failed: {failure}; the redelivery could not be scheduled ({type(e).__name__}: {e}), so the "
            "message returns after the queue's visibility timeout",
            extra=what,
            exc_info=error,
        )
        return None
    if last:
        logger.warning(f"failed on its last receive, to the dead-letter queue: {failure}", extra=what, exc_info=error)
    else:
        logger.warning(f"failed, retried in {delay} s: {failure}", extra=what, exc_info=error)
    return delay
