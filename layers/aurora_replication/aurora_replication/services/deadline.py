"""The invocation's deadline: how long the work in hand may still run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Deadline:
    """The invocation's deadline (``time.monotonic()``), from its Lambda context's remaining time; ``at`` None:
    none known (the CLI, tests). Work that may not finish before it less ``margin_seconds``
    (DEADLINE_MARGIN_SECONDS) is not started (the scheduler's planning) or handed to a later invocation (a
    finaliser's wait)."""

    margin_seconds: float
    at: float | None = None

    def start(self, context: Any) -> None:
        """The deadline of the invocation ``context`` describes (``get_remaining_time_in_millis``)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self.at = time.monotonic() + remaining() / 1000 if callable(remaining) else None

    def seconds_left(self) -> float:
        """Seconds until the deadline less the margin (infinite without a deadline)."""
        if self.at is None:
            return float("inf")
        return self.at - self.margin_seconds - time.monotonic()
