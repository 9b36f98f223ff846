"""CloudWatch metrics from a health report, published as embedded metric format (EMF) log lines.

The health function runs on a schedule (``HealthCheckSchedule``) and on Function URL calls; each
run turns its report into gauges that the template's alarms and dashboard read:

- ``ReplicationLagSeconds`` (dimension ``table``): the table's freshness, now minus ``source_as_of``
  (the newest state of the source the target is known to reflect: the snapshot of its last
  validated run), not the age of its newest row; a table never validated publishes none;
- ``MaxReplicationLagSeconds``: the largest of those (what ``ReplicationLagAlarm`` watches);
- ``StalledRuns``: runs still ``running`` after the stall limit;
- ``DeadLetterMessages``: messages in the chunk dead-letter queue;
- ``FailingChecks``: how many checks failed;
- ``NothingChangedRuns`` (dimension ``table``): 1 for a table whose last incremental or cdc run
  moved no rows but cost something (docs/cost.md): a table whose schedule could be longer;
- ``CdcLagSeconds`` (dimension ``table``) and ``MaxCdcLagSeconds``: for tables replicated by cdc, the
  seconds since the point up to which every binlog change is applied (``pipeline/modes/cdc/health.py``).

Every metric also carries Powertools' ``service`` dimension (``POWERTOOLS_SERVICE_NAME``) and goes
to the namespace ``POWERTOOLS_METRICS_NAMESPACE``. A gauge whose source check failed without data
is left out rather than published as 0, so an outage of the check cannot look like a healthy value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric


@dataclass(frozen=True)
class Gauge:
    name: str
    value: float
    unit: MetricUnit
    dimensions: dict[str, str] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _stalled(checks: Mapping[str, Any]) -> float | None:
    """Stalled runs from a ``stalled`` check when there is one, else from the ``replication`` check.

    Either may carry a count (``count``) or a list of runs (``stalled_runs`` or ``runs``). With
    neither check in the report, 0; with a check that failed and carries no data, None.
    """
    for name in ("stalled", "replication"):
        check = checks.get(name)
        if not isinstance(check, Mapping):
            continue
        count = _number(check.get("count"))
        if count is not None:
            return count
        for key in ("stalled_runs", "runs"):
            if isinstance(check.get(key), list):
                return float(len(check[key]))
        if name == "stalled":  # present but without data: the replication check may still know
            continue
        return None
    return 0.0


def _cdc_lags(checks: Mapping[str, Any]) -> list[Gauge]:
    """``CdcLagSeconds`` per table and ``MaxCdcLagSeconds`` from the ``cdc`` check (pipeline/modes/cdc/health.py)."""
    cdc = checks.get("cdc")
    tables = cdc.get("tables") if isinstance(cdc, Mapping) else None
    out = []
    for table, info in sorted((tables or {}).items()):
        lag = _number(info.get("cdc_lag_seconds")) if isinstance(info, Mapping) else None
        if lag is not None:
            out.append(Gauge("CdcLagSeconds", lag, MetricUnit.Seconds, {"table": str(table)}))
    if out:
        out.append(Gauge("MaxCdcLagSeconds", max(g.value for g in out), MetricUnit.Seconds))
    return out


def gauges(report: Mapping[str, Any]) -> list[Gauge]:
    """The metrics of one health report (the dict ``health.report`` returns)."""
    checks: Mapping[str, Any] = report.get("checks") or {}
    out: list[Gauge] = []
    replication = checks.get("replication")
    tables = replication.get("tables") if isinstance(replication, Mapping) else None
    lags: list[float] = []
    for table, info in sorted((tables or {}).items()):
        lag = _number(info.get("lag_seconds")) if isinstance(info, Mapping) else None
        if lag is not None:
            lags.append(lag)
            out.append(Gauge("ReplicationLagSeconds", lag, MetricUnit.Seconds, {"table": str(table)}))
    if lags:
        out.append(Gauge("MaxReplicationLagSeconds", max(lags), MetricUnit.Seconds))
    for table, info in sorted((tables or {}).items()):
        spent = info.get("cost") if isinstance(info, Mapping) else None
        if isinstance(spent, Mapping) and spent.get("nothing_changed"):
            out.append(Gauge("NothingChangedRuns", 1.0, MetricUnit.Count, {"table": str(table)}))
    out += _cdc_lags(checks)
    stalled = _stalled(checks)
    if stalled is not None:
        out.append(Gauge("StalledRuns", stalled, MetricUnit.Count))
    dlq = checks.get("dead_letter_queue")
    depth = _number(dlq.get("depth")) if isinstance(dlq, Mapping) else None
    if depth is not None:
        out.append(Gauge("DeadLetterMessages", depth, MetricUnit.Count))
    out.append(Gauge("FailingChecks", float(len(report.get("failing") or [])), MetricUnit.Count))
    return out


def publish(report: Mapping[str, Any], namespace: str | None = None) -> list[Gauge]:
    """Print one EMF line per gauge (its own dimension set each); returns what was published."""
    published = gauges(report)
    for g in published:
        with single_metric(name=g.name, unit=g.unit, value=g.value, namespace=namespace) as metric:
            for key, value in g.dimensions.items():
                metric.add_dimension(name=key, value=value)
    return published
