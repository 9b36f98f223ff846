"""Opening a run in the ledger, shared by the scheduler and the cdc reader: once planning has
succeeded, the run item and a failed item for each table that could not be planned; and ending a
run's table as superseded, shared by the finalisers."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Scope, TableKey
from aurora_replication.ledger.runs import table_is_final
from aurora_replication.ledger.status import SUPERSEDED
from aurora_replication.models import RunRequest
from aurora_replication.services import Services

logger = Logger(child=True)


def open_run(
    services: Services,
    run_id: str,
    request: RunRequest,
    tables: list[str],
    failed: dict[str, str],
    scope: Scope | None = None,
    **table_fields: Any,
) -> dict[str, Any]:
    """Record the run (refused when its id is taken) with the ``scope`` it is planned in, and its
    unplanned tables as failed; returns the run summary with those tables in it. ``table_fields`` go on
    each failed table's item."""
    if services.state.get_run(run_id).get("sk"):
        raise BadInputError(f"run {run_id!r} already exists; omit run_id to get a new one, or choose another")
    services.state.create_run(run_id, request.mode, tables, request.model_dump(mode="json"), scope)
    summary: dict[str, Any] = {"run_id": run_id, "tables": {}}
    for table, reason in failed.items():
        record_failed(services, run_id, summary, table, reason, **table_fields)
    return summary


def record_failed(
    services: Services, run_id: str, summary: dict[str, Any], table: str, reason: str, **table_fields: Any
) -> None:
    """A table of the run that could not be planned: recorded failed (and counted finished)."""
    logger.error("table not replicated", extra={"run_id": run_id, "table": table, "reason": reason})
    services.state.record_table(run_id, table, status="failed", reason=reason, chunk_count=0, **table_fields)
    summary["tables"][table] = {"status": "failed", "reason": reason}


def superseded_reason(table: str, run_id: str, holder: str | None) -> str:
    """One line: which run took the table from ``run_id``, and what that means."""
    newer = f"run {holder}" if holder else "another run"
    return (
        f"superseded: {newer} took the lease of table {table!r} after run {run_id} started on it (run {run_id} "
        f"made no progress for LEASE_SECONDS, or was stopped); nothing more of run {run_id} is published and its "
        f"watermark is not committed: {newer} carries the table"
    )


def end_superseded(services: Services, run_id: str, key: TableKey) -> dict[str, Any]:
    """The run no longer holds the table's lease (``StateStore.hold_lease`` refused): its table ends
    ``superseded`` with the reason, nothing else is written (no watermark, last run, or release of a lease
    that is another run's). When a duplicate of the finaliser has just finished the table (and released
    the lease), that outcome stands and is reported as a repeat."""
    table = key.table
    now = services.state.get_table(run_id, table)
    if table_is_final(now):
        services.state.finish_run_if_complete(run_id, table)
        return {"status": now["status"], "repeat": True}
    reason = superseded_reason(table, run_id, services.state.lease_holder(key))
    services.state.set_table_status(run_id, table, SUPERSEDED, reason=reason, finished_at=time.time())
    logger.warning(reason, extra={"run_id": run_id, "table": table})
    services.state.finish_run_if_complete(run_id, table)
    return {"status": SUPERSEDED, "reason": reason}


def record_schema_changes(
    services: Services, run_id: str, key: TableKey, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Schema changes a run follows without stopping the table (``schema_changes.drop_records``, whose
    ``run`` is stamped here): appended to the table's catalog item, logged, counted in the
    ``SchemaChanges`` metric. Returns them, for the run's TABLE item."""
    stamped = [{**r, "run": run_id} for r in records]
    if stamped:
        added = services.state.note_schema_changes(key, stamped)  # a retried step adds (and counts) none again
        for r in added:
            logger.info("schema change followed", extra={"run_id": run_id, "table": key.table, **r})
        if added:
            services.hooks.metric("SchemaChanges", len(added))
    return stamped
