"""Worker Lambda: copies the chunks of an SQS batch, reporting partial batch failures."""

import functools
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_replication import retry
from aurora_replication.config import load_settings
from aurora_replication.cost import estimate as cost
from aurora_replication.cost import meter
from aurora_replication.cost import settle as metering
from aurora_replication.models import ChunkMessage, ChunkRef
from aurora_replication.pipeline import redelivery, worker
from aurora_replication.services import Services

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# a failed chunk is a partial batch failure, redelivered with backoff (pipeline/redelivery.py), never a
# failed invocation: with BatchSize 1 the default would raise for every failed record, counting as
# a Lambda error (WorkerErrorsAlarm, a canary's rollback) for what is an expected retry
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


# read once per container: single_metric flushes at once whatever the setting, and a disabled
# flush never empties Powertools' metric set
METRICS_DISABLED = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true"


def put_metric(name: str, value: float, unit: str = "Count", step: str | None = None) -> None:
    """Step durations carry a Step dimension (their own EMF record); the rest go with the invocation's."""
    if METRICS_DISABLED:
        return
    if step is None:
        metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
        return
    with single_metric(
        name=name, unit=MetricUnit(unit), value=value, default_dimensions=metrics.default_dimensions
    ) as m:
        m.add_dimension(name="Step", value=step)


settings = load_settings()
services = Services.from_settings(settings, metric=put_metric)
prices = cost.Prices.from_settings(settings)
idempotency = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=24 * 3600)
# a plain client of boto3's default session, which the state store's resource is of: DynamoDB's service
# model is then loaded and parsed once per cold start, not again for a session of Powertools' own. Not the
# resource's own client (``meta.client``): the resource's handlers on it would serialize Powertools'
# attribute values a second time
persistence = DynamoDBPersistenceLayer(
    table_name=settings.state_table,
    key_attr="pk",
    sort_key_attr="sk",
    boto3_client=boto3.client("dynamodb", config=retry.boto_config(settings.retry_attempts)),
)


@idempotent_function(data_keyword_argument="work", config=idempotency, persistence_store=persistence)
def handle_once(work: dict[str, Any], message: ChunkMessage | ChunkRef) -> dict[str, Any]:
    """First guard against concurrent duplicates, keyed on run, table and chunk (``work["key"]``, not the
    SQS message id). A result that is not final for its key raises, so Powertools deletes the record
    instead of storing it."""
    result = worker.handle(message, services)
    if not worker.settled(result):
        raise worker.Unsettled(result)
    return result


@tracer.capture_method
def record_handler(record: SQSRecord, invocation: metering.Invocation) -> dict[str, Any]:
    """One record: parsed once; a failure is recorded (dead-lettered on its last receive) and its
    redelivery scheduled (pipeline/redelivery.py) before it is reported as the batch's failure."""
    with invocation.unit():  # what this record's work costs, whatever its outcome (docs/cost.md)
        message: ChunkMessage | ChunkRef | None = None
        try:
            message = worker.parse_message(record.body)
            return handle_message(message)
        except Exception as e:
            receives = int(record.raw_event.get("attributes", {}).get("ApproximateReceiveCount", 1))
            worker.record_final_failure(message, receives, e, services)
            redelivery.after_failure(record.receipt_handle, receives, e, services)
            raise


def handle_message(message: ChunkMessage | ChunkRef) -> dict[str, Any]:
    meter.set_unit(message.run_id, message.table, message.kind)
    logger.append_keys(run_id=message.run_id, table=message.table, chunk=message.chunk_id, step=message.kind)
    if not settings.idempotency_enabled:
        return worker.handle(message, services)
    try:
        return handle_once(work={"key": message.idempotency_key}, message=message)
    except worker.Unsettled as e:  # done with this message; a later one of the same key does the work
        return e.result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    idempotency.register_lambda_context(context)
    services.deadline.start(context)  # a finaliser waits for Snowflake no longer than the invocation may
    invocation = metering.Invocation("worker", context)
    try:
        return process_partial_response(
            event=event,
            record_handler=functools.partial(record_handler, invocation=invocation),
            processor=processor,
            context=context,
        )
    finally:
        # the batch's GB-seconds and the event source mapping's receive and delete, by table
        records = len(event.get("Records") or [])
        spent = invocation.settle(services, sqs_requests=2.0 if records else 0.0, received=records)
        cost.publish(cost.cost_gauges(spent, prices))
