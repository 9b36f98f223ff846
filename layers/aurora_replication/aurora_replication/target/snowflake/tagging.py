"""Every statement of a run carries a QUERY_TAG naming its run, table and step (``meter.query_tag``).

The tag travels with the statement it describes, as a statement-level parameter of the query request
(the connector's ``_statement_params``, sent as the request's ``parameters``; the SQL API documents
the same per-statement ``parameters.query_tag``, and Snowpark Python tags its statements this way):
no ``ALTER SESSION SET QUERY_TAG`` round trip when the work moves to another table or step, and
nothing to hold back inside an explicit transaction, which holds only DML. Outside a run's work a
statement carries the application's plain tag, which ``connect`` also sets for the session at login.
"""

from __future__ import annotations

from aurora_replication.cost import meter


def statement_tag() -> str:
    """The tag of the work in scope (run, table, step), or the application's plain tag outside it."""
    return meter.current_tag() or meter.APP_TAG


def statement_params(tag: str) -> dict[str, str]:
    """The statement-level parameters that tag one statement (``cursor.execute(_statement_params=)``)."""
    return {"QUERY_TAG": tag}
