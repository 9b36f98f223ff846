"""The sync modes, one module each (``full``, ``incremental``, ``reconcile``; ``cdc`` a package, ``cdc/``), behind one
interface (``base.SyncMode``); ``get`` finds a table's mode by its name, ``requested`` a run request's (``auto``
too, ``auto.py``); ``choose`` resolves a requested mode for one table."""

from __future__ import annotations

from aurora_replication.errors import BadInputError
from aurora_replication.pipeline.modes.auto import Auto
from aurora_replication.pipeline.modes.base import Commit, CommitMismatch, RequestedMode, SyncMode
from aurora_replication.pipeline.modes.cdc import Cdc
from aurora_replication.pipeline.modes.full import Full
from aurora_replication.pipeline.modes.incremental import Incremental
from aurora_replication.pipeline.modes.reconcile import Reconcile

MODES: dict[str, SyncMode] = {m.name: m for m in (Full(), Incremental(), Reconcile(), Cdc())}
# what a run request may name: a sync mode, or ``auto``
REQUESTED: dict[str, RequestedMode] = {**MODES, Auto.name: Auto()}

__all__ = ["MODES", "REQUESTED", "Commit", "CommitMismatch", "RequestedMode", "SyncMode", "choose", "get", "requested"]


def get(name: str) -> SyncMode:
    try:
        return MODES[name]
    except KeyError:
        raise BadInputError(f"unknown sync mode {name!r}; one of {', '.join(sorted(MODES))}") from None


def requested(name: str) -> RequestedMode:
    """The mode a run request names (``RunRequest.mode``): a sync mode, or ``auto``."""
    try:
        return REQUESTED[name]
    except KeyError:
        raise BadInputError(f"unknown mode {name!r}; one of {', '.join(sorted(REQUESTED))}") from None


def choose(
    requested: str,
    table: str,
    *,
    has_key: bool,
    has_watermark: bool,
    has_stored_watermark: bool,
    target_exists: bool,
    drift: str | None = None,
) -> tuple[str, str | None]:
    """The mode a table is copied in, and a note saying why when ``auto`` chose it.

    ``auto`` is incremental where the table has a key, a watermark column and a committed watermark
    (an earlier run), and its target still holds what the ledger says (``drift`` None: see
    ``pipeline/target_check.py``); full otherwise. An explicit mode the table cannot support is an
    error, and so is ``incremental`` or ``reconcile`` over a target that drifted: neither can put it
    right, and merging into it would report OK over a wrong table.
    """
    if drift is not None and requested in ("incremental", "reconcile"):
        raise BadInputError(
            f"table {table!r}: {drift}; mode {requested!r} cannot repair it: run the table with mode 'full' "
            "(or 'auto', which copies it again in full)"
        )
    if drift is not None and requested == "full":
        return "full", f"table {table!r}: {drift}; copied again in full"
    if requested == "incremental" and (not has_watermark or not has_key):
        missing = "watermark column" if not has_watermark else "primary key or unique key"
        raise BadInputError(
            f"table {table!r} has no {missing}, so it cannot be copied incrementally; "
            "use mode 'full' or 'auto', or name a watermark column in watermark_columns"
        )
    if requested == "reconcile":
        if not has_key:
            raise BadInputError(
                f"table {table!r} has no primary key or unique key, so deleted rows cannot be matched; "
                "replicate it with mode 'full' instead"
            )
        if not target_exists:
            raise BadInputError(f"table {table!r} has no target table to reconcile yet; run a full copy first")
    if requested != "auto":
        get(requested)
        return requested, None
    if has_watermark and has_key and has_stored_watermark and drift is None:
        return "incremental", None
    why = (
        drift
        if drift is not None
        else "no watermark column"
        if not has_watermark
        else "no key"
        if not has_key
        else "first run"
    )
    return "full", f"table {table!r}: full copy (auto mode: {why})"
