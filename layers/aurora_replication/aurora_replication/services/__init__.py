"""What a handler's work needs, built once per container from the validated settings, one part for each thing
it provides:

* ``settings``: the validated settings (``config.Settings``);
* ``state``: the ledger (``ledger.store.StateStore``, DynamoDB);
* ``endpoints`` (``endpoints.py``): the source's and the target's settings from their secrets, the scope, and
  where the message in hand reads and writes (``locate``);
* ``connections`` (``connections.py``): connections to both sides, warm between messages, with retries;
* ``queue`` (``queue.py``): the chunk queue, whose messages are sent and counted there;
* ``hooks`` (``hooks.py``): the metric and fault hooks the handler points the work at;
* ``deadline`` (``deadline.py``): the invocation's deadline.

``Services`` holds them so that a step takes one argument; it does nothing itself but build them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from aurora_replication import retry
from aurora_replication.config import Settings
from aurora_replication.ledger.store import StateStore
from aurora_replication.services.connections import Connections
from aurora_replication.services.deadline import Deadline
from aurora_replication.services.endpoints import Endpoints
from aurora_replication.services.hooks import Hooks, no_metric
from aurora_replication.services.queue import ChunkQueue

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_sqs import SQSClient


@dataclass
class Services:
    settings: Settings
    state: StateStore
    endpoints: Endpoints
    connections: Connections
    queue: ChunkQueue
    hooks: Hooks
    deadline: Deadline

    @classmethod
    def of(
        cls,
        settings: Settings,
        state: StateStore,
        sqs: SQSClient,
        secrets_provider: SecretsProvider | None = None,
        metric: Callable[..., None] = no_metric,
    ) -> Services:
        """The parts wired together: ``secrets_provider`` reads and caches the two secrets (None: Powertools'
        process-wide default provider); ``metric``: where the work's metrics go (nowhere by default)."""
        hooks = Hooks(metric=metric)
        endpoints = Endpoints(settings, secrets_provider)
        return cls(
            settings=settings,
            state=state,
            endpoints=endpoints,
            connections=Connections(settings, endpoints, hooks),
            queue=ChunkQueue(sqs, settings.chunk_queue_url),
            hooks=hooks,
            deadline=Deadline(settings.deadline_margin_seconds),
        )

    @classmethod
    def from_settings(cls, settings: Settings, metric: Callable[..., None] = no_metric) -> Services:
        """Every AWS client is made here, at cold start: with the credentials the function has then.
        ``metric``: where the work's metrics go (the handler's Powertools metrics; nowhere by default)."""
        config = retry.boto_config(settings.retry_attempts)
        return cls.of(
            settings,
            StateStore(settings.state_table, boto3.resource("dynamodb", config=config), settings.run_retention_seconds),
            boto3.client("sqs", config=config),
            SecretsProvider(boto_config=config),
            metric,
        )
