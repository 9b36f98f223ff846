"""A table's status in a run, and the rules on it."""

from __future__ import annotations

from typing import Any

RUNNING = "running"
PUBLISHED = "published"
FAILED = "failed"
DECLINED = "declined"
SUPERSEDED = "superseded"
# a table's status in a run: running, then one of these; FINAL ones are never changed again (declined
# is recorded final from the start)
TERMINAL = {PUBLISHED, FAILED, DECLINED, SUPERSEDED}
FINAL = (PUBLISHED, FAILED, SUPERSEDED)
# the terminal statuses a run succeeds with (declined and superseded: another run carries the table)
SUCCEEDED_WITH = (PUBLISHED, DECLINED, SUPERSEDED)


def is_final(status: object) -> bool:
    """A status no later write of the run changes (published, failed, superseded)."""
    return status in FINAL


def is_terminal(status: object) -> bool:
    """A status the run is done with the table at (the final ones, and declined)."""
    return status in TERMINAL


def is_running(status: object) -> bool:
    """A table (or a run) still under way: ``running``."""
    return status == RUNNING


def run_outcome(statuses: list[str]) -> str:
    """A finished run's status from its tables' terminal ones: ``succeeded`` when each table was published,
    declined or superseded, else ``failed``."""
    return "succeeded" if all(s in SUCCEEDED_WITH for s in statuses) else "failed"


def not_final_condition(values: dict[str, Any], name: str = "#s") -> str:
    """The DynamoDB condition that the status attribute (``name``) is not FINAL, its values added to
    ``values``: a write that a final status must refuse."""
    placeholders = []
    for i, status in enumerate(FINAL):
        values[f":final{i}"] = status
        placeholders.append(f":final{i}")
    return f"NOT {name} IN ({', '.join(placeholders)})"
