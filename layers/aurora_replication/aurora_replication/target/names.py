"""The project's names in the warehouse, whatever the warehouse: each run's load table of a table, and
the columns every loaded row carries. A warehouse's own modules build their statements on these."""

from __future__ import annotations

from aurora_replication.identifiers import bounded_name
from aurora_replication.models import MODE_RULES, TablePlan

CHUNK_COLUMN = "_ASR_CHUNK"  # the chunk (or cdc batch) a loaded row came in
ATTEMPT_COLUMN = "_ASR_ATTEMPT"  # the attempt of that chunk that loaded it


def load_table_name(plan: TablePlan, run_id: str) -> str:
    """The run's load table of ``plan``'s table (a copy's chunks, an incremental window, reconcile's keys)."""
    prefix = MODE_RULES[plan.mode].load_prefix
    if not prefix:
        raise ValueError(f"mode {plan.mode!r} has no load table of chunks (cdc's batches: cdc_load_table_name)")
    return bounded_name(f"{prefix}{run_id}_{plan.target_table}")


def cdc_load_table_name(plan: TablePlan, run_id: str) -> str:
    """The run's load table of a cdc table's batches of changes."""
    return bounded_name(f"_ASR_CDC_{run_id}_{plan.target_table}")


def cdc_fill_table_name(plan: TablePlan, run_id: str) -> str:
    """The run's load table of a cdc table's column version pages (key columns and the column)."""
    return bounded_name(f"_ASR_FILL_{run_id}_{plan.target_table}")
