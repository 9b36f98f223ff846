"""Retries with exponential backoff and jitter for transient errors (tenacity), and boto3's own for AWS.

Transient: MySQL connection lost or gone away, lock wait timeouts and deadlocks; Snowflake network
and service errors. Never retried: bad input, SQL errors, authentication failures (those re-read
the secret once instead, see ``source`` and ``target``).
"""

from __future__ import annotations

from collections.abc import Callable

import pymysql
import snowflake.connector.errors as sf_errors
from aws_lambda_powertools import Logger
from botocore.config import Config
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

logger = Logger(child=True)

MYSQL_TRANSIENT = {1040, 1205, 1213, 2003, 2006, 2013, 2055}


def is_transient(error: BaseException) -> bool:
    if isinstance(error, pymysql.err.OperationalError):
        return bool(error.args) and error.args[0] in MYSQL_TRANSIENT
    if isinstance(error, (pymysql.err.InterfaceError, ConnectionError, TimeoutError)):
        return True
    if isinstance(error, sf_errors.OperationalError):  # network, service unavailable, throttled
        return True
    return False


def call_with_retries[T](
    fn: Callable[[], T],
    attempts: int,
    base: float,
    maximum: float,
    what: str,
    on_retry: Callable[[], None] | None = None,
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
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(max(attempts, 1)),
        wait=wait_exponential_jitter(multiplier=base, max=maximum),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def boto_config(attempts: int) -> Config:
    """Throttling and 5xx from DynamoDB and SQS: botocore's standard retry mode (backoff with jitter)."""
    return Config(retries={"mode": "standard", "max_attempts": max(attempts, 1)})
