"""The later Snowflake reconciliation: the credits Snowflake itself attributed to a run's statements.

``SNOWFLAKE.ACCOUNT_USAGE.QUERY_ATTRIBUTION_HISTORY`` gives the compute credits of each query (idle
time excluded), up to about eight hours after it ran; where that view cannot be read, the
``QUERY_HISTORY`` view (about 45 minutes behind) gives each query's execution time and warehouse
size, from which credits follow at the size's hourly rate. Both are grouped by the query tag's
table (target/cost_sql.py). The result is set, not added, on each table's COST item
(``snowflake_credits_attributed``, ``reconciled_from``, ``reconciled_at``): run it again later and it
replaces what an earlier, incomplete reading found. The role needs access to the SNOWFLAKE
database's ACCOUNT_USAGE schema (``IMPORTED PRIVILEGES`` or the ``USAGE_VIEWER`` database role).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aurora_replication.cost import estimate as cost
from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.services import Services
from aurora_replication.target.snowflake import client as target_client
from aurora_replication.target.snowflake import cost_sql
from aurora_replication.target.snowflake.client import execute

# a run's statements start after its run item was created; a margin for clock skew
START_MARGIN_SECONDS = 3600


@dataclass
class Reconciliation:
    run_id: str
    available: bool
    source: str = ""  # the view the credits came from
    credits: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "available": self.available,
            "source": self.source,
            "credits": {k: round(v, 8) for k, v in sorted(self.credits.items())},
            "detail": self.detail,
        }


def _query(conn: Any, statement: str, params: list[object]) -> list[tuple[Any, ...]] | str:
    """The rows, or why the view could not be read (missing, not granted, not supported)."""
    try:
        return execute(conn, statement, params)
    except (target_client.DriverError, NotImplementedError) as e:
        return f"{type(e).__name__}: {str(getattr(e, 'raw_msg', None) or e).strip()[:300]}"


def reconcile(run_id: str, services: Services, conn: Any = None) -> Reconciliation:
    """Read the credits of the run's statements from Snowflake and record them per table."""
    run = services.state.get_run(run_id)
    if not run.get("sk"):
        return Reconciliation(run_id, False, detail=f"run {run_id!r} does not exist")
    since = int(float(run.get("created_at") or 0)) - START_MARGIN_SECONDS
    own = conn is None
    conn = conn or services.connections.snowflake()
    try:
        params: list[object] = [since, run_id]
        rows = _query(conn, cost_sql.attributed_credits(), params)
        source, credits = cost_sql.ATTRIBUTION_VIEW, {}
        if not isinstance(rows, str):
            credits = cost.credits_from_attribution(rows)
        failed = rows if isinstance(rows, str) else ""
        if not credits:
            history = _query(conn, cost_sql.history_seconds(), params)
            if not isinstance(history, str):
                source, credits = cost_sql.HISTORY_VIEW, cost.credits_from_history(history)
            elif failed:
                return Reconciliation(
                    run_id,
                    False,
                    detail=f"not available: {cost_sql.ATTRIBUTION_VIEW}: {failed}; {cost_sql.HISTORY_VIEW}: {history}",
                )
    finally:
        if own:
            conn.close()
    if not credits:
        return Reconciliation(
            run_id,
            False,
            detail="not yet available: Snowflake's usage views list no statement tagged with this run "
            "(QUERY_HISTORY lags up to 45 minutes, QUERY_ATTRIBUTION_HISTORY up to 8 hours); run it again later",
        )
    for table, value in credits.items():
        cost_ledger.set_reconciled(services.state.table, run_id, table, value, source)
    return Reconciliation(run_id, True, source, credits, f"credits of {len(credits)} table(s) from {source}")
