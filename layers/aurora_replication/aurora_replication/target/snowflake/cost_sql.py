"""Pure SQL of cost: the reconciliation queries that read the credits Snowflake attributed to our
query tags (docs/cost.md).

``QUERY_TAG`` (up to 2,000 characters; the JSON text ``meter.query_tag`` makes: run, table, step)
goes with every statement as a statement-level parameter (``target/tagging.py``) and is recorded
with it in ``QUERY_HISTORY`` and ``QUERY_ATTRIBUTION_HISTORY``, which these queries read.
"""

from __future__ import annotations

APP_PREFIX = '{"app":"aurora-snowflake-replication",'
ATTRIBUTION_VIEW = "SNOWFLAKE.ACCOUNT_USAGE.QUERY_ATTRIBUTION_HISTORY"
HISTORY_VIEW = "SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY"


def string_literal(text: str) -> str:
    """``text`` as a Snowflake single-quoted string constant (backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ours() -> str:
    """The rows of one run's statements (parameters: the earliest start time, the run id)."""
    return (
        f"start_time >= TO_TIMESTAMP_LTZ(%s) AND STARTSWITH(query_tag, {string_literal(APP_PREFIX)}) "
        "AND TRY_PARSE_JSON(query_tag):run::VARCHAR = %s"
    )


def attributed_credits() -> str:
    """Credits attributed to each table's statements of a run (compute only; warehouse idle time is
    not attributed to queries). Columns: table, statements, credits."""
    return (
        "SELECT TRY_PARSE_JSON(query_tag):table::VARCHAR AS table_name, COUNT(*) AS statements, "
        f"SUM(credits_attributed_compute) AS credits FROM {ATTRIBUTION_VIEW} WHERE {_ours()} GROUP BY 1"
    )


def history_seconds() -> str:
    """Each table's statements of a run from QUERY_HISTORY: their execution seconds by warehouse size
    (credits follow from the size's hourly rate). Columns: table, warehouse size, statements, seconds."""
    return (
        "SELECT TRY_PARSE_JSON(query_tag):table::VARCHAR AS table_name, warehouse_size, COUNT(*) AS statements, "
        f"SUM(execution_time) / 1000 AS seconds FROM {HISTORY_VIEW} WHERE {_ours()} "
        "AND warehouse_size IS NOT NULL GROUP BY 1, 2"
    )
