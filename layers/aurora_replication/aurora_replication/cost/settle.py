"""An invocation's cost, settled into the ledger per table (``cost_ledger``) at the end of it.

The handler measures its own duration and reads its configured memory from the Lambda context;
each unit of work it did (a worker's SQS record, the scheduler's run request) had a ``meter.Meter``
counting that unit's SQS, DynamoDB and Snowflake figures per table. ``settle`` then:

1. shares the invocation's GB-seconds (duration x memory) and the request itself among its units
   by the time each took (the time outside any unit, such as a batch's bookkeeping, goes with them
   in the same proportion);
2. adds the SQS requests the event source mapping made for a worker's batch (one receive and one
   delete, shared among the batch's messages) and one received message per record;
3. spreads a unit's unattributed figures (counted with no table in scope, e.g. the scheduler's
   run-level calls) evenly over the tables the unit worked on;
4. adds each table's figures to the run's ledger, with one write unit for that ledger write itself.

A unit that failed, or repeated work already done (a redelivered message, a duplicate finalise),
is settled like any other: it was paid for. A unit with no run (a message that does not parse)
names nowhere to put its figures, and they are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.cost import meter
from aurora_replication.cost.meter import UNATTRIBUTED, Meter
from aurora_replication.services import Services

logger = Logger(child=True)
LEDGER_WRITE_UNITS = 1.0  # the cost item's own UpdateItem (well under 1 KB)
MB_PER_GB = 1024


def shares(total_seconds: float, unit_seconds: Sequence[float]) -> list[float]:
    """The invocation's ``total_seconds`` divided among its units in proportion to the time each took
    (evenly when none took measurable time); never less than what each unit took by itself."""
    if not unit_seconds:
        return []
    total = max(total_seconds, sum(unit_seconds))
    measured = sum(unit_seconds)
    if measured <= 0:
        return [total / len(unit_seconds)] * len(unit_seconds)
    return [total * s / measured for s in unit_seconds]


def spread(by_table: dict[str, dict[str, float]], tables: Iterable[str] = ()) -> dict[str, dict[str, float]]:
    """Each table's figures, the unattributed ones shared evenly among ``tables`` (default: the tables
    that have figures); with no table at all they stay under ``""``."""
    named = sorted(set(tables) | {t for t in by_table if t != UNATTRIBUTED})
    out: dict[str, dict[str, float]] = {t: dict(by_table.get(t, {})) for t in named}
    rest = by_table.get(UNATTRIBUTED)
    if rest:
        if not named:
            return {UNATTRIBUTED: dict(rest)}
        for t in named:
            for k, v in rest.items():
                out[t][k] = out[t].get(k, 0.0) + v / len(named)
    return out


def attribute(
    meters: Sequence[Meter],
    unit_seconds: Sequence[float],
    total_seconds: float,
    memory_mb: float,
    function: str,
    sqs_requests: float = 0.0,
    received: int = 0,
    tables: dict[int, list[str]] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """The figures to settle, by run and table (pure: ``settle`` writes them)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    n = len(meters)
    for i, (m, seconds) in enumerate(zip(meters, shares(total_seconds, unit_seconds), strict=True)):
        if m.run_id is None:
            continue
        m.add(f"lambda_gb_seconds_{function}", seconds * memory_mb / MB_PER_GB, UNATTRIBUTED)
        m.add(f"lambda_requests_{function}", 1 / n, UNATTRIBUTED)
        if sqs_requests:
            m.add("sqs_requests", sqs_requests / n, UNATTRIBUTED)
        if received:
            m.add("sqs_messages_received", received / n, UNATTRIBUTED)
        named = (tables or {}).get(i) or ([m.table] if m.table else [])
        per_table = spread(m.by_table, named)
        for table, figures in per_table.items():
            if table == UNATTRIBUTED:
                continue
            figures["dynamodb_write_units"] = figures.get("dynamodb_write_units", 0.0) + LEDGER_WRITE_UNITS
            run = out.setdefault(m.run_id, {})
            into = run.setdefault(table, {})
            for k, v in figures.items():
                into[k] = into.get(k, 0.0) + v
    return out


def settle(services: Services, figures: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Add the figures to the ledger; returns them by table (for the EstimatedCost metric). Best
    effort: a failed write is logged, never a reason to fail the work it measured."""
    by_table: dict[str, dict[str, float]] = {}
    for run_id, tables in figures.items():
        for table, counters in tables.items():
            try:
                cost_ledger.add_figures(
                    services.state.table, run_id, table, counters, services.state.run_retention_seconds
                )
            except Exception:  # noqa: BLE001 - cost is a report
                logger.warning("could not record the cost figures", extra={"run_id": run_id, "table": table})
                continue
            into = by_table.setdefault(table, {})
            for k, v in counters.items():
                into[k] = into.get(k, 0.0) + v
    return by_table


class Invocation:
    """One handler invocation: its units' meters and the time each took."""

    def __init__(self, function: str, context: Any) -> None:
        self.function = function
        self.memory_mb = float(getattr(context, "memory_limit_in_mb", 0) or 0)
        self.started = time.perf_counter()
        self.meters: list[Meter] = []
        self.unit_seconds: list[float] = []

    def unit(self) -> _Unit:
        return _Unit(self)

    def settle(
        self,
        services: Services,
        sqs_requests: float = 0.0,
        received: int = 0,
        tables: dict[int, list[str]] | None = None,
    ) -> dict[str, dict[str, float]]:
        """``figures`` added to the ledger (``settle``); returns them by table. Never raises: what the
        invocation cost is a report, and the work it measured stands whatever happens to it."""
        try:
            return settle(services, self.figures(sqs_requests, received, tables))
        except Exception:  # noqa: BLE001
            logger.warning("could not settle the invocation's cost", exc_info=True)
            return {}

    def figures(
        self, sqs_requests: float = 0.0, received: int = 0, tables: dict[int, list[str]] | None = None
    ) -> dict[str, dict[str, dict[str, float]]]:
        total = time.perf_counter() - self.started
        return attribute(
            self.meters, self.unit_seconds, total, self.memory_mb, self.function, sqs_requests, received, tables
        )


class _Unit:
    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        self._cm: Any = None

    def __enter__(self) -> Meter:
        self._cm = meter.metered(self.invocation.function)
        m: Meter = self._cm.__enter__()
        self.m = m
        self.invocation.meters.append(m)
        return m

    def __exit__(self, *exc: Any) -> None:
        self.invocation.unit_seconds.append(time.perf_counter() - self.m.started)
        self._cm.__exit__(*exc)
