"""What a run cost, in money: the measured figures of each table (``cost_ledger``) times the prices
the deployment names (``Settings``: PRICE_* and SNOWFLAKE_WAREHOUSE_SIZE). docs/cost.md says how
each figure is measured and what the estimate leaves out.

- Lambda: GB-seconds of each function x PRICE_LAMBDA_GB_SECOND, plus invocations x
  PRICE_LAMBDA_MILLION_REQUESTS / 1e6;
- SQS: requests x PRICE_SQS_MILLION_REQUESTS / 1e6;
- DynamoDB: read and write units consumed x PRICE_DYNAMODB_MILLION_{READ,WRITE}_UNITS / 1e6;
- Snowflake: credits x PRICE_SNOWFLAKE_CREDIT, where credits are the ones Snowflake attributed to the
  table's query tags once a reconciliation has read them (``snowflake_credits_attributed``), else
  the elapsed seconds of our statements x the warehouse size's credits per hour / 3600.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from aurora_replication.config import Settings, settings_from
from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.ops.health_metrics import Gauge
from aurora_replication.pipeline import modes

SERVICES = ("Lambda", "SQS", "DynamoDB", "Snowflake")
# credits per hour of a standard warehouse by size (Snowflake's "Virtual warehouse credit usage")
CREDITS_PER_HOUR = {
    "XSMALL": 1,
    "SMALL": 2,
    "MEDIUM": 4,
    "LARGE": 8,
    "XLARGE": 16,
    "XXLARGE": 32,
    "XXXLARGE": 64,
    "X4LARGE": 128,
    "X5LARGE": 256,
    "X6LARGE": 512,
}
# how QUERY_HISTORY spells the sizes
HISTORY_SIZES = {
    "X-SMALL": "XSMALL",
    "SMALL": "SMALL",
    "MEDIUM": "MEDIUM",
    "LARGE": "LARGE",
    "X-LARGE": "XLARGE",
    "2X-LARGE": "XXLARGE",
    "3X-LARGE": "XXXLARGE",
    "4X-LARGE": "X4LARGE",
    "5X-LARGE": "X5LARGE",
    "6X-LARGE": "X6LARGE",
}
PRICE_FIELDS = (
    "price_lambda_gb_second",
    "price_lambda_million_requests",
    "price_sqs_million_requests",
    "price_dynamodb_million_reads",
    "price_dynamodb_million_writes",
    "price_snowflake_credit",
    "snowflake_warehouse_size",
)


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float
    lambda_million_requests: float
    sqs_million_requests: float
    dynamodb_million_reads: float
    dynamodb_million_writes: float
    snowflake_credit: float
    warehouse_credits_per_hour: float

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Prices:
        """The prices the PRICE_* and SNOWFLAKE_WAREHOUSE_SIZE variables of ``env`` name (Settings'
        defaults for the others), without the rest of the settings (the CLI, a report)."""
        aliases = [str(Settings.model_fields[name].alias) for name in PRICE_FIELDS]
        given = {alias: env[alias] for alias in aliases if alias in env}
        required = {"STATE_TABLE": "-", "CHUNK_QUEUE_URL": "-", "SOURCE_SECRET_ARN": "-", "TARGET_SECRET_ARN": "-"}
        return cls.from_settings(settings_from({**required, **given}))

    @classmethod
    def from_settings(cls, s: Settings) -> Prices:
        return cls(
            s.price_lambda_gb_second,
            s.price_lambda_million_requests,
            s.price_sqs_million_requests,
            s.price_dynamodb_million_reads,
            s.price_dynamodb_million_writes,
            s.price_snowflake_credit,
            float(CREDITS_PER_HOUR[s.snowflake_warehouse_size]),
        )


@dataclass(frozen=True)
class Estimate:
    by_service: dict[str, float]
    snowflake_credits: float
    snowflake_basis: str  # "attributed" (reconciled from Snowflake's views) or "elapsed" (our statements' time)

    @property
    def total(self) -> float:
        return sum(self.by_service.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimated_cost": round(self.total, 8),
            "by_service": {k: round(v, 8) for k, v in self.by_service.items()},
            "snowflake_credits": round(self.snowflake_credits, 8),
            "snowflake_basis": self.snowflake_basis,
        }


def _f(figures: Mapping[str, Any], name: str) -> float:
    try:
        return float(figures.get(name) or 0)
    except (TypeError, ValueError):
        return 0.0


def lambda_gb_seconds(figures: Mapping[str, Any]) -> dict[str, float]:
    """GB-seconds by function (``lambda_gb_seconds_<function>``)."""
    prefix = "lambda_gb_seconds_"
    return {k[len(prefix) :]: _f(figures, k) for k in sorted(figures) if k.startswith(prefix)}


def estimate(figures: Mapping[str, Any], prices: Prices) -> Estimate:
    """The money one table's figures (of a run, or summed over runs) cost at ``prices``."""
    gb_s = sum(lambda_gb_seconds(figures).values())
    invocations = sum(_f(figures, k) for k in figures if k.startswith("lambda_requests_"))
    attributed = figures.get("snowflake_credits_attributed")
    if attributed is not None:
        credits, basis = _f(figures, "snowflake_credits_attributed"), "attributed"
    else:
        credits, basis = _f(figures, "snowflake_seconds") / 3600 * prices.warehouse_credits_per_hour, "elapsed"
    by_service = {
        "Lambda": gb_s * prices.lambda_gb_second + invocations * prices.lambda_million_requests / 1e6,
        "SQS": _f(figures, "sqs_requests") * prices.sqs_million_requests / 1e6,
        "DynamoDB": _f(figures, "dynamodb_read_units") * prices.dynamodb_million_reads / 1e6
        + _f(figures, "dynamodb_write_units") * prices.dynamodb_million_writes / 1e6,
        "Snowflake": credits * prices.snowflake_credit,
    }
    return Estimate(by_service, credits, basis)


def nothing_changed(mode: str | None, rows_moved: int | None, cost: float) -> bool:
    """An incremental or cdc run of the table that moved no rows but still cost something: a sign
    its schedule could be longer."""
    idle = mode is not None and mode in modes.MODES and modes.get(mode).idle_when_unchanged
    return idle and not rows_moved and cost > 0


def table_cost(figures: Mapping[str, Any], prices: Prices, mode: str | None, rows_moved: int | None) -> dict[str, Any]:
    """One table's cost in a run, as the run summary, the health report and the run report show it."""
    est = estimate(figures, prices)
    out = est.as_dict()
    out["figures"] = {k: figures[k] for k in sorted(figures) if k not in ("reconciled_from", "reconciled_at")}
    if figures.get("reconciled_from"):
        out["reconciled_from"] = figures["reconciled_from"]
    out["nothing_changed"] = nothing_changed(mode, rows_moved, est.total)
    return out


def run_costs(run: Mapping[str, Any], figures: Mapping[str, Mapping[str, Any]], prices: Prices) -> dict[str, Any]:
    """``table_cost`` of each table of a run (``StateStore.get_run`` and ``cost_ledger.get_figures``)."""
    states = run.get("table_states", {})
    out = {}
    for name, f in sorted(figures.items()):
        t = states.get(name, {})
        out[name] = table_cost(f, prices, t.get("mode"), int(t.get("rows_copied") or 0))
    return out


def last_run_costs(state: Any, last_runs: Mapping[str, str], prices: Prices) -> dict[str, dict[str, Any]]:
    """The cost of each table's last run (``last_runs``: table -> run id), for the health report: two
    queries per distinct run (its table items and its cost items), never a scan."""
    by_run: dict[str, list[str]] = {}
    for table, run_id in last_runs.items():
        by_run.setdefault(run_id, []).append(table)
    out: dict[str, dict[str, Any]] = {}
    for run_id, tables in sorted(by_run.items()):
        costs = run_costs(state.get_run(run_id), cost_ledger.get_figures(state.table, run_id), prices)
        for table in tables:
            if table in costs:
                c = costs[table]
                out[table] = {
                    "run": run_id,
                    "estimated_cost": c["estimated_cost"],
                    "by_service": c["by_service"],
                    "snowflake_basis": c["snowflake_basis"],
                    "nothing_changed": c["nothing_changed"],
                }
    return out


def money(value: float) -> str:
    """Dollars, with enough digits to show a small run's cost (``$0.000042``)."""
    if value >= 1:
        return f"${value:,.2f}"
    if value <= 0:
        return "$0"
    digits = max(2, min(8, 1 - math.floor(math.log10(value)) + 1))
    return f"${value:.{digits}f}"


# ---- EMF: EstimatedCost per table and service ----------------------------------------------------


def cost_gauges(by_table: Mapping[str, Mapping[str, float]], prices: Prices) -> list[Gauge]:
    """``EstimatedCost`` (dimensions ``table`` and ``Service``) of what each table's work just spent."""
    out = []
    for table, figures in sorted(by_table.items()):
        for service, value in estimate(figures, prices).by_service.items():
            if value > 0:
                out.append(Gauge("EstimatedCost", value, MetricUnit.NoUnit, {"table": table, "Service": service}))
    return out


def publish(gauges: Iterable[Gauge], namespace: str | None = None) -> None:
    """One EMF line per gauge (single_metric flushes whatever POWERTOOLS_METRICS_DISABLED says, so it
    is honoured here)."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() == "true":
        return
    for g in gauges:
        with single_metric(name=g.name, unit=g.unit, value=g.value, namespace=namespace) as metric:
            for key, value in g.dimensions.items():
                metric.add_dimension(name=key, value=value)


# ---- the reconciliation's results (cost/reconcile.py runs the queries) -------------------------


def credits_from_attribution(rows: Iterable[tuple[Any, ...]]) -> dict[str, float]:
    """Rows of ``cost_sql.attributed_credits``: (table, statements, credits) -> credits by table."""
    out: dict[str, float] = {}
    for table, _statements, credits in rows:
        if table is not None:
            out[str(table)] = out.get(str(table), 0.0) + float(credits or 0)
    return out


def credits_from_history(rows: Iterable[tuple[Any, ...]]) -> dict[str, float]:
    """Rows of ``cost_sql.history_seconds``: (table, warehouse size, statements, seconds) -> credits
    by table, at each size's hourly rate (an upper bound of the compute: no idle time, no sharing)."""
    out: dict[str, float] = {}
    for table, size, _statements, seconds in rows:
        rate = CREDITS_PER_HOUR.get(HISTORY_SIZES.get(str(size or "").upper(), ""), 0)
        if table is not None and rate:
            out[str(table)] = out.get(str(table), 0.0) + float(seconds or 0) / 3600 * rate
    return out
