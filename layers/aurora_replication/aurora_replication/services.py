"""The clients a handler needs, built once per container from the validated settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from aurora_replication import retry, secrets
from aurora_replication.config import Settings
from aurora_replication.source import connect as source_connect
from aurora_replication.state import StateStore
from aurora_replication.target import client as target

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


def _no_fault(step: str, message: Any = None) -> None:
    """Production does nothing at step boundaries; fault tests inject crashes here."""


def _no_metric(name: str, value: float, unit: str = "Count", step: str | None = None) -> None:
    """Without a handler's metrics (the CLI, tests) a metric goes nowhere."""


@dataclass
class Services:
    settings: Settings
    state: StateStore
    sqs: SQSClient
    fault: Callable[[str, Any], None] = field(default=_no_fault)
    # (name, value, unit, step): the handler points it at Powertools Metrics
    metric: Callable[..., None] = field(default=_no_metric)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        config = retry.boto_config(settings.retry_attempts)
        return cls(
            settings=settings,
            state=StateStore(settings.state_table, boto3.resource("dynamodb", config=config)),
            sqs=boto3.client("sqs", config=config),
        )

    def mysql_settings(self, force: bool = False) -> secrets.MySQLSettings:
        s = self.settings
        return secrets.mysql_settings(s.source_secret_arn, s.secret_max_age_seconds, force, s.mysql_ca_bundle)

    def snowflake_settings(self, force: bool = False) -> secrets.SnowflakeSettings:
        return secrets.snowflake_settings(self.settings.target_secret_arn, self.settings.secret_max_age_seconds, force)

    def with_retries(self, fn: Callable[[], Any], what: str) -> Any:
        s = self.settings
        return retry.call_with_retries(
            fn, s.retry_attempts, s.retry_base_seconds, s.retry_max_seconds, what, lambda: self.metric("Retries", 1)
        )

    def mysql(self) -> Any:
        return self.with_retries(lambda: source_connect.connect_with_rotation(self.mysql_settings), "MySQL connect")

    def snowflake(self) -> Any:
        return self.with_retries(lambda: target.connect_with_rotation(self.snowflake_settings), "Snowflake connect")

    def send_messages(self, bodies: list[str]) -> None:
        """Send in batches of ten; a partly failed batch is resent until every entry is accepted."""
        for i in range(0, len(bodies), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])
            ]
            for _attempt in range(5):
                resp = self.sqs.send_message_batch(QueueUrl=self.settings.chunk_queue_url, Entries=entries)
                failed = {f["Id"] for f in resp.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise RuntimeError(f"SQS refused {len(entries)} chunk messages after 5 attempts")
