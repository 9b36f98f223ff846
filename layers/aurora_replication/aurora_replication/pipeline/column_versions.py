"""A table's column versions (docs/cdc.md and docs/run-requests.md, "schema changes"): which tables may have
them, the plan with them applied, and the plan of a version's fill pages. A non-key column whose type changed
in a way the warehouse cannot make in place gets a new target column ``<COL>__V<n>``; cdc keeps the versions in
the table's cdc state (``pipeline/modes/cdc/reader.py``), incremental and ``auto`` in its catalog item
(``pipeline/column_fill.py``, whose finaliser fills them). Planning (``pipeline/planning.py``), cdc's reader and
the fill read them here, below all three.
"""

from __future__ import annotations

import json
from typing import Any

from aurora_replication import schema_changes as changelog
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.models import TablePlan
from aurora_replication.source.binlog import Position

# the run's TABLE item: the table's versions as planned (JSON), the column this run fills, whether the run
# created a version (written to the catalog once the run holds the table), whether its copy wrote every row
VERSIONS_FIELD = "column_versions"
FILL_FIELD = "fill_column"
CREATED_FIELD = "column_versions_created"
WHOLE_FIELD = "column_versions_whole"


def retyped(
    versions: dict[str, Any],
    name: str,
    old_target: str,
    taken: set[str],
    old_type: str,
    new_type: str,
    after: str | None = None,
) -> None:
    """Give column ``name`` (now written to ``old_target``) a new version in ``versions`` for a type change
    the warehouse cannot make in place: a target column named apart from every name in ``taken`` and the
    versions' kept ones, the older targets kept. ``after`` (cdc): the binlog position past which its values
    are of the new type."""
    v = versions.get(name)
    taken = taken | {str(k) for w in versions.values() for k in w["kept"]}
    versions[name] = {
        "target": changelog.version_name(old_target, taken),
        "kept": [*(v["kept"] if v else []), old_target],
        "old_type": old_type,
        "new_type": new_type,
        **({"after": after} if after is not None else {}),
        "cursor": None,
        "filled": False,
    }


def added(versions: dict[str, Any], name: str, target: str, new_type: str, after: str | None = None) -> None:
    """Give column ``name``, added in MySQL since the last run, a version of its own name (``target``) in
    ``versions``, filled from MySQL; ``after`` as for ``retyped``."""
    versions[name] = {
        "target": target,
        "kept": [],
        "added": True,
        "old_type": "",
        "new_type": new_type,
        **({"after": after} if after is not None else {}),
        "cursor": None,
        "filled": False,
    }


def stored(entry: CatalogNote) -> dict[str, Any]:
    """The table's column versions kept in its catalog ``entry`` (none: ``{}``)."""
    raw: Any = entry.get(VERSIONS_FIELD)
    if not raw:
        return {}
    return dict(json.loads(raw) if isinstance(raw, str) else raw)


def filling(plan: TablePlan, versions: dict[str, Any]) -> list[str]:
    """The planned columns whose version is not filled yet."""
    return [n for n, v in versions.items() if not v.get("filled") and planned(plan, n)]


def allowed(plan: TablePlan) -> bool:
    """Whether a type change of the table's columns may give a new column version: not in history mode
    (its versions would need the old column too), a merged table (other databases' rows share the column)
    or a table with a Python transform (it writes the row, the column's type is its own)."""
    return not plan.history and not plan.merged and not plan.transform


def planned(plan: TablePlan, name: str) -> bool:
    """Whether ``plan`` copies MySQL column ``name``."""
    return any(c.name == name for c in plan.columns)


def may_version(plan: TablePlan, name: str) -> bool:
    """Whether MySQL column ``name`` may get a version: a planned non-key column of a table that allows them."""
    return name not in plan.key and planned(plan, name) and allowed(plan)


def applied(plan: TablePlan, versions: dict[str, Any], position: Position | None = None) -> TablePlan:
    """The plan with each versioned column mapped to its version's target and the older targets kept (not
    taken for drops). With ``position`` (the window's start): a version still filling whose window starts
    before ``after`` is left out of the window (its events may be of the old type), its target kept."""
    if not versions:
        return plan
    kept = list(plan.kept_by_options)
    columns = []
    for c in plan.columns:
        v = versions.get(c.name)
        if v is None:
            columns.append(c)
            continue
        kept += [str(k) for k in v["kept"]]
        if position is not None and not v.get("filled") and position.key() < str(v["after"]):
            kept.append(str(v["target"]))
            continue
        columns.append(c.model_copy(update={"target": str(v["target"])}))
    return plan.model_copy(update={"columns": columns, "kept_by_options": list(dict.fromkeys(kept))})


def fill_plan(plan: TablePlan, name: str) -> TablePlan:
    """The plan of a column version's pages: the key columns, then the column (its version's target)."""
    columns = [*(plan.column(k) for k in plan.key), plan.column(name)]
    return plan.model_copy(update={"columns": columns, "notes": []})
