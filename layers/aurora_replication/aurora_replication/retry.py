"""Retries with exponential backoff and jitter for transient errors (tenacity), and boto3's own for AWS.

Which errors are transient is each driver's business, told by its side: ``source.connect.is_transient``
(MySQL connection lost or gone away, lock wait timeouts and deadlocks) and ``target.client.is_transient``
(Snowflake network and service errors); ``services.connections`` hands their union to ``call_with_retries``. This
module imports no driver. Never retried: bad input, SQL errors, authentication failures (those re-read
the secret once instead, see ``source`` and ``target``).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools import Logger
from botocore.config import Config
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

logger = Logger(child=True)

Classifier = Callable[[BaseException], bool]


def is_transient(error: BaseException) -> bool:
    """Python's own network failures, whoever raised them."""
    return isinstance(error, (ConnectionError, TimeoutError))


def any_of(*classifiers: Classifier) -> Classifier:
    """Transient when ``is_transient`` or any of ``classifiers`` says so."""

    def transient(error: BaseException) -> bool:
        return is_transient(error) or any(c(error) for c in classifiers)

    return transient


def call_with_retries[T](
    fn: Callable[[], T],
    attempts: int,
    base: float,
    maximum: float,
    what: str,
    on_retry: Callable[[], None] | None = None,
    transient: Classifier = is_transient,
) -> T:
    def before_sleep(state: RetryCallState) -> None:
        logger.warning(
            "%s: transient %s, retrying (attempt %d of %d)",
            what,
            type(state.outcome.exception()).__name__ if state.outcome else "error",
            state.attempt_number,
            attempts,
        )
        if on_retry is not None:
            on_retry()

    retrying = Retrying(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(max(attempts, 1)),
        wait=wait_exponential_jitter(multiplier=base, max=maximum),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def boto_config(attempts: int) -> Config:
    """Throttling and 5xx from DynamoDB and SQS: botocore's standard retry mode (backoff with jitter)."""
    return Config(retries={"mode": "standard", "max_attempts": max(attempts, 1)})
