"""The hooks a handler points the work at: where its metrics go and where fault tests inject crashes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def no_fault(step: str, message: Any = None) -> None:
    """Production does nothing at step boundaries; fault tests inject crashes here."""


def no_metric(name: str, value: float, unit: str = "Count", step: str | None = None) -> None:
    """Without a handler's metrics (the CLI, tests) a metric goes nowhere."""


@dataclass
class Hooks:
    """``fault(step, message)`` at each step boundary; ``metric(name, value, unit, step)``: the handler points it
    at Powertools Metrics. Both may be replaced after the services are built (fault tests, the local stack)."""

    fault: Callable[[str, Any], None] = field(default=no_fault)
    metric: Callable[..., None] = field(default=no_metric)
