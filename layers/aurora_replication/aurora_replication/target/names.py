"""The project's names in the warehouse, whatever the warehouse: each run's load table of a table, the
columns every loaded row carries, and a history table's current-state view. A warehouse's own modules
build their statements on these."""

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


def current_view_name(plan: TablePlan) -> str:
    """A history table's current-state view (its keys' current versions): ``<target>_CURRENT``."""
    return bounded_name(f"{plan.target_table}_CURRENT")
