"""Health-check Lambda: a Function URL (IAM auth) answering 200 or 503, or a direct invoke.

Either way the report's lag, stalled-run and dead-letter gauges are published as metrics.
"""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_replication.config import load_settings
from aurora_replication.ops import health, health_metrics
from aurora_replication.services import Services

logger = Logger()
tracer = Tracer()
app = LambdaFunctionUrlResolver()
services = Services.from_settings(load_settings())


@app.get("/")
@tracer.capture_method
def get_health() -> Response:
    result = health.report(services)
    health_metrics.publish(result)
    return Response(
        status_code=200 if result["healthy"] else 503, content_type=content_types.APPLICATION_JSON, body=result
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if health.is_function_url(event):  # through the Function URL (anything but it or {} is refused)
        return app.resolve(event, context)
    result = health.report(services)  # direct invoke, e.g. the HealthCheckSchedule
    health_metrics.publish(result)
    if not result["healthy"]:
        logger.warning("unhealthy", extra={"failing": result["failing"]})
    return result
