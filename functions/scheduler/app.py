"""Scheduler Lambda: plans a run and sends one SQS message per chunk."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_replication.config import load_settings
from aurora_replication.cost import estimate as cost
from aurora_replication.cost import settle as metering
from aurora_replication.models import parse_scheduler_event
from aurora_replication.ops import preflight
from aurora_replication.pipeline import scheduler
from aurora_replication.pipeline.modes.cdc import follow as cdc_follow
from aurora_replication.services import Services

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def put_metric(name: str, value: float, unit: str = "Count", step: str | None = None) -> None:
    """Planning's metrics (TargetDrift, SchemaChanges) go with the invocation's EMF record."""
    metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)


services = Services.from_settings(load_settings(), metric=put_metric)
prices = cost.Prices.from_settings(services.settings)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    invocation = metering.Invocation("scheduler", context)
    services.deadline.start(context)  # planning stops inside the invocation's budget; a worker plans the rest
    # bad input is refused as one line (BadInputError) before anything connects or is written
    parse_scheduler_event(event, services.settings.default_mode)
    with preflight.actionable_errors(services, logger):
        preflight.check_endpoints(services)  # a run that cannot start writes nothing
        with invocation.unit():
            summary = cdc_follow.follow(event, services, scheduler.schedule)  # a cdc request may follow the binlog
    # a request of several databases answers with a run of each (pipeline/databases.py)
    planned = [summary, *summary.get("runs", {}).values()]
    # the invocation's cost, shared among the tables it planned (docs/cost.md)
    spent = invocation.settle(services, tables={0: sorted({t for s in planned for t in s.get("tables", {})})})
    cost.publish(cost.cost_gauges(spent, prices))
    logger.append_keys(run_id=summary["run_id"])
    chunks = sum(t.get("chunks", 0) for s in planned for t in s.get("tables", {}).values())
    metrics.add_metric(name="ChunksPlanned", unit=MetricUnit.Count, value=chunks)
    return summary
