"""Awaiting the rolling audit's period in tests that need a run's slice to be due in full."""

from __future__ import annotations

import time

from aurora_replication.ledger.store import StateStore


def await_audit_period(env, stack, table: str, seconds: float = 1.0) -> None:
    """Return once the table's last audit (or verification) is ``seconds`` old: the next run's slice is
    then due in full (``pipeline.audit.due_rows``), however quickly the previous run finished."""
    entry = StateStore(stack.table_name).catalog_entries([env.key(table)]).get(table, {})
    last = max(float(entry.get(k) or 0) for k in ("audit_at", "verified_at", "table_rows_at"))
    while time.time() < last + seconds + 1.0:  # audit_at is in whole seconds
        time.sleep(0.05)
