"""Change data capture over several source databases of one server in one request (``databases`` with
``database_mapping`` ``schema`` or ``prefix``, ``mode`` ``cdc``).

As a full or incremental request of several databases (``pipeline/databases.py``), the request is one run
per database (``child_run_id``), each in the scope its database maps to, so that every table's position,
phase, lease, initial copy, window, target table, catalog entry and report is per source database and
table. What differs is the binlog: it is the server's, not a database's, so the tables of every database
that stream this request are read in **one** window (``reader.read_window``: one pass over the binlog
from the earliest stored position of them all, each row event matched to its (database, table)), and each
table's changes are then staged, defined and sent in its own database's run. One read per request, not one
per database: a server-wide binlog read N times for N databases would cost N times the reader's time and
the server's binlog dump for the same events.

Everything the request names is checked before anything is written, as for the other modes: databases,
tables, target names (no two on one Snowflake table) and the overwrite guard (no table lands where another
source database was copied). ``database_mapping: merge`` is refused under cdc (``models.RunRequest``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.cost import meter
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.keys import Scope
from aurora_replication.models import RunRequest
from aurora_replication.pipeline import databases, planning
from aurora_replication.pipeline.modes.cdc import budget as cdc_budget
from aurora_replication.pipeline.modes.cdc import reader as cdc_reader
from aurora_replication.services import Services
from aurora_replication.source import binlog

logger = Logger(child=True)


def _where(request: RunRequest, scope: Scope) -> str | None:
    """The Snowflake schema a database's connections are moved to: its own under ``schema``; under
    ``prefix`` the target secret's (None)."""
    return scope.target_schema if request.database_mapping == "schema" else None


def schedule(request: RunRequest, run_id: str, services: Services) -> dict[str, Any]:
    """Plan every database's tables (each in its scope, its connections located there), record each database's
    run, take leases and start initial copies, then read one binlog window for every table that streams and
    send each table's batches in its run. A database whose every table fails planning is answered failed; the
    request fails only when all do."""
    assert request.databases is not None and request.database_mapping in ("schema", "prefix")
    base = services.endpoints.scope()
    conn = services.connections.mysql()
    try:
        problems = binlog.check_preconditions(conn)
        if problems:
            raise binlog.BinlogUnavailableError("cdc mode cannot read the binlog: " + "; ".join(problems))
        chosen = databases.match_databases(request.databases, databases.list_databases(conn))
        scopes = {d: databases.scope_for(base, d, request.database_mapping) for d in chosen}
        tables = {d: planning.resolve_tables(conn, services, d, request)[0] for d in chosen}
        files = binlog.binlog_files(conn)
    finally:
        conn.close()
    owners = services.state.target_owner_mappings(always=True)  # the stack's own tables too, before the first
    children = planning.claim_databases(services, run_id, request, scopes, tables, owners)

    requests = {d: request.model_copy(update={"databases": [d], "run_id": children[d]}) for d in chosen}
    # the invocation's time, shared by the databases: one whose tables the last window deferred goes first
    budget = cdc_budget.WindowBudget(services.deadline)
    cdc = CdcState(services.state)
    rotations = {d: cdc.rotation(scopes[d]) for d in chosen}
    chosen = sorted(chosen, key=lambda d: rotations[d] is None)
    summary: dict[str, Any] = {"run_id": run_id, "runs": {}}
    planned: dict[str, cdc_reader.Planned] = {}
    readers: dict[str, planning.TargetColumns] = {}  # each database's target-columns reader, located there
    errors: list[str] = []
    try:
        for d in chosen:
            services.endpoints.locate(d, _where(request, scopes[d]))
            meter.set_run(children[d])
            readers[d] = planning.TargetColumns(services)
            source = services.connections.place("source", services.connections.mysql())
            try:
                args = (source, services, d, requests[d], readers[d], files, scopes[d], budget)
                p = cdc_reader.plan_tables(*args, guarded=False, rotation=rotations[d])
            finally:
                source.close()
            if not p.planned and p.failed and not p.stopped:
                error = "; ".join(p.failed.values())
                errors.append(f"database {d!r}: {error}")
                summary["runs"][d] = {"run_id": children[d], "status": "failed", "error": error}
                continue
            if not p.recorded:  # the time went to the databases before it: no run of it in this window
                cdc_reader.note_deferred(services, p, scopes[d], {})
                summary["runs"][d] = {"status": cdc_budget.DEFERRED, "reason": cdc_budget.DEFERRED_REASON}
                continue
            planned[d] = p
        if not planned and errors:
            raise BadInputError("; ".join(errors))
        conn = services.connections.mysql()
        try:
            stop_at = binlog.current_position(conn)  # after every database's schema was read
        finally:
            conn.close()
        streaming: list[cdc_reader.CdcTable] = []
        for d, p in planned.items():
            services.endpoints.locate(d, _where(request, scopes[d]))
            meter.set_run(children[d])
            summary["runs"][d], started = cdc_reader.open_tables(
                children[d], requests[d], p, scopes[d], services, readers[d]
            )
            streaming.extend(started)
        services.endpoints.locate(None, None)
        if streaming:
            answers = cdc_reader.read_window(run_id, streaming, stop_at, services, budget)
            for t in streaming:
                summary["runs"][t.plan.source_database]["tables"][t.table] = answers[t.label]
    finally:
        services.endpoints.locate(None, None)
        for reader in readers.values():
            reader.close()
    meter.focus(None)
    for d, p in planned.items():
        cdc_reader.note_deferred(services, p, scopes[d], summary["runs"][d]["tables"])
        services.state.finish_run_if_complete(children[d])
    return summary
