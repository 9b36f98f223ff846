"""A failed chunk message comes back with backoff, in seconds to minutes, and a poison one at once."""

from __future__ import annotations

from types import SimpleNamespace

from botocore.exceptions import ClientError

from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.pipeline import redelivery

ENV = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "https://q/chunks", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}


def test_the_delay_doubles_per_receive_with_jitter_up_to_the_maximum():
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert [redelivery.delay_seconds(n, 30, 900, rand=high) for n in range(1, 7)] == [30, 60, 120, 240, 480, 900]
    assert [redelivery.delay_seconds(n, 30, 900, rand=low) for n in range(1, 4)] == [15, 30, 60]
    assert redelivery.delay_seconds(1, 1, 900, rand=low) == 1  # never 0 when a delay is asked for
    assert redelivery.delay_seconds(40, 30, 10**9, rand=high) == redelivery.MAX_VISIBILITY_SECONDS
    assert redelivery.delay_seconds(3, 30, 900, immediate=True) == 0
    assert redelivery.delay_seconds(3, 0, 900) == 0
    # the defaults: four retries within minutes, far inside the 5400 s visibility timeout
    defaults = settings_from(ENV)
    total = sum(
        redelivery.delay_seconds(n, defaults.redelivery_base_seconds, defaults.redelivery_max_seconds, rand=high)
        for n in range(1, 5)
    )
    assert total == 450


class FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail = fail

    def change_message_visibility(self, **kwargs):
        if self.fail:
            raise ClientError(
                {"Error": {"Code": "ReceiptHandleIsInvalid", "Message": "gone"}}, "ChangeMessageVisibility"
            )
        self.calls.append(kwargs)


def services(sqs: FakeSqs, **env: str) -> SimpleNamespace:
    metrics: list[str] = []
    return SimpleNamespace(
        settings=settings_from({**ENV, **env}),
        queue=SimpleNamespace(sqs=sqs),
        hooks=SimpleNamespace(metric=lambda name, v: metrics.append(name)),
        metrics=metrics,
    )


def test_after_a_failure_the_message_is_made_visible_after_the_backoff():
    sqs = FakeSqs()
    s = services(sqs, REDELIVERY_BASE_SECONDS="10", REDELIVERY_MAX_SECONDS="10")
    delay = redelivery.after_failure("rh-1", 2, RuntimeError("lost"), s)
    assert delay is not None and 5 <= delay <= 10  # half to all of the capped backoff
    assert sqs.calls == [{"QueueUrl": "https://q/chunks", "ReceiptHandle": "rh-1", "VisibilityTimeout": delay}]
    assert s.metrics == ["FailedAttempts"]


def test_bad_input_and_the_last_receive_come_back_at_once_so_the_dlq_takes_them():
    sqs = FakeSqs()
    s = services(sqs, MAX_RECEIVE_COUNT="5")
    assert redelivery.after_failure("rh", 1, BadInputError("not a chunk message"), s) == 0
    assert redelivery.after_failure("rh", 5, RuntimeError("still failing"), s) == 0
    assert [c["VisibilityTimeout"] for c in sqs.calls] == [0, 0]


def test_a_refused_visibility_change_leaves_the_message_to_its_visibility_timeout():
    s = services(FakeSqs(fail=True))
    assert redelivery.after_failure("rh", 1, RuntimeError("x"), s) is None
