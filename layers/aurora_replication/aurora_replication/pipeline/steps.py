"""Timed steps: each is an X-Ray subsegment (``## extract``, ``## publish``, ...) and a duration
(the ChunkSeconds metric, one per step), and a lap of the attempt's timeline for the run report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aurora_replication.cost import meter
from aurora_replication.pipeline import timeline


class Steps:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.laps: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        with self.tracer.provider.in_subsegment(name=f"## {step}"), meter.scope(step=step):
            yield
        seconds = time.perf_counter() - started
        self.laps[step] = self.laps.get(step, 0.0) + seconds
        timeline.lap(step, started, seconds)  # the run report's timeline
