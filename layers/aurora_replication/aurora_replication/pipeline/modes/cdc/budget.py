"""A cdc window inside the scheduler's invocation: how many tables it takes, how long it reads, and which
tables wait for the next window when the invocation's time runs short.

The scheduler's cdc work grows with the tables a request names: each one is planned (its schema read,
its position checked), leased and recorded, and each one's window is staged, defined and sent. On a
database of thousands of tables that is more than one invocation holds (``docs/scale.md``), and a
scheduler ended at its deadline would leave tables leased and a run that never ends. So the invocation's
time (its deadline less ``DEADLINE_MARGIN_SECONDS``) is shared out:

- **planning**: tables are planned while less than ``PLAN_SHARE`` of the time left at the start has
  passed (the first table always: a window moves at least one table). The tables not reached are
  **deferred**: not part of this window's run, their positions untouched, nothing written for them.
- **the read**: the binlog window reads for at most ``CDC_MAX_SECONDS`` and at most ``READ_SHARE`` of the
  time left when it starts, so staging and sending have the rest.
- **sending**: a table is staged, defined and sent only while time is left; a table not reached is
  deferred too (its lease released, its status ``declined`` with the reason), its changes read again by
  the next window from its stored position.

The next window starts at the first deferred table (``rotate``; the point is kept per scope in the
ledger, ``CdcState.rotation``), so the tables at the end of a long list are not deferred window after
window: every table is reached within a few windows. Leases are taken for the invocation's own time and
renewed to ``LEASE_SECONDS`` by the workers that apply its window or copy (each batch, chunk and finaliser
renews it), so a scheduler killed anyway leaves no table leased for longer than its deadline and a worker's
timeout (``lease_seconds``), not the two hours of ``LEASE_SECONDS``. Should a table's messages wait in the
queue longer than that, another run may take it: the old run's batches then apply nothing new (the MERGE
keeps the newer position of a row) and its finaliser finds the run superseded, so nothing is lost or
applied twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aurora_replication.pipeline import planning
from aurora_replication.services import Services
from aurora_replication.services.deadline import Deadline

# the share of the invocation's time planning (and opening) may take; the read and the sending the rest
PLAN_SHARE = 0.2
# the share of the time left when the read starts that it may take: the other half stages and sends
READ_SHARE = 0.5
DEFERRED = "deferred"  # a table's answer in the scheduler's summary (its status in the run: declined)
DEFERRED_REASON = (
    "deferred to the next window: the scheduler's invocation had no time left for this table in this one "
    "(many tables; docs/scale.md#change-data-capture-over-many-tables); its position is where it was, and "
    "the next window starts with it"
)


@dataclass
class WindowBudget:
    """The invocation's time for one cdc window (``deadline``: the scheduler's)."""

    deadline: Deadline
    started: float = field(default_factory=time.monotonic)
    total: float = field(init=False)  # the time left at the start (infinite without a deadline: the CLI, a test)
    planned: int = 0

    def __post_init__(self) -> None:
        self.total = self.deadline.seconds_left()

    def may_plan(self) -> bool:
        """Whether another table may be planned in this window (the first one always)."""
        if self.planned == 0 or math.isinf(self.total):
            return True
        return time.monotonic() - self.started < self.total * PLAN_SHARE

    def read_seconds(self, most: float) -> float:
        """How long the binlog read may take: ``most`` (CDC_MAX_SECONDS), and at most READ_SHARE of the time
        left (never less than a second: a window reads something)."""
        left = self.deadline.seconds_left()
        if math.isinf(left):
            return most
        return max(1.0, min(most, left * READ_SHARE))

    def may_send(self) -> bool:
        """Whether a table's window may still be staged, defined and sent in this invocation."""
        return self.deadline.seconds_left() > 0


def lease_seconds(services: Services) -> int:
    """How long a cdc table's lease is taken for: the invocation's time left and a worker's timeout (its
    messages are taken and the lease renewed by then), at most LEASE_SECONDS, at least a minute."""
    return planning.lease_seconds_while_planning(services, after=services.settings.worker_timeout_seconds)


class Unread:
    """A scope's rotation point not read yet (``reader.plan_tables`` reads it)."""


UNREAD = Unread()


def rotate(names: Sequence[str], first: str | None) -> list[str]:
    """``names`` starting at ``first`` (the first table deferred by the last window), wrapping round; in
    their order when ``first`` is None or no longer named."""
    if first is None or first not in names:
        return list(names)
    at = list(names).index(first)
    return [*names[at:], *names[:at]]


def first_deferred(order: Sequence[str], deferred: set[str]) -> str | None:
    """The first table of ``order`` that was deferred (where the next window starts), or None."""
    return next((name for name in order if name in deferred), None)
