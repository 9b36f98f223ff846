"""A table's status in a run, and the rules on it."""

from __future__ import annotations

SUPERSEDED = "superseded"
# a table's status in a run: running, then one of these; FINAL ones are never changed again (declined
# is recorded final from the start)
TERMINAL = {"published", "failed", "declined", SUPERSEDED}
FINAL = ("published", "failed", SUPERSEDED)


def is_final(status: object) -> bool:
    """A status no later write of the run changes (published, failed, superseded)."""
    return status in FINAL


def is_terminal(status: object) -> bool:
    """A status the run is done with the table at (the final ones, and declined)."""
    return status in TERMINAL
