"""Column versions of tables copied by watermark (incremental, ``auto``): docs/run-requests.md#schema-changes.

A non-key column whose type changed in MySQL in a way Snowflake cannot make in place (another type, a
DECIMAL's scale) gets a new target column ``<COL>__V<n>`` of the new type, as cdc gives it
(``pipeline/modes/cdc/reader.py``), instead of failing the table or copying it in full. The versions live in the
table's catalog item (``column_versions``: per MySQL column its target now, the kept ones, the old and new
type, the fill's cursor, whether it is filled), so that every later run maps the column to its version.

The fill: the rows a run copies carry the new column (their full images); the others get it from pages
``(key, column)`` read from MySQL in key order by the table's finaliser once the run's rows are merged
(``advance``), at most CDC_FILL_ROWS rows or CDC_FILL_SECONDS per run, from the cursor in the catalog item,
which moves when the run is published. Why that is exact: a page read at time T holds each row's value at
T; a row changed after T has a watermark past the one this run's planning read (before T), so a later
run copies its full image, new column included, and that image is newer than the page.
"""

from __future__ import annotations

import json
from typing import Any

from aurora_replication.ledger.keys import TableKey
from aurora_replication.ledger.runs import TableItem
from aurora_replication.models import ChangeBatch, TablePlan
from aurora_replication.pipeline import column_versions
from aurora_replication.pipeline.modes.cdc import reader as cdc_reader
from aurora_replication.services import Services
from aurora_replication.target.names import cdc_fill_table_name
from aurora_replication.target.warehouse import Warehouse

# the position the staged pages' rows carry (a binlog position's shape; only the key and the column are read)
PAGE_TAG = "0000000000:000000000000:000000"


def advance(
    run_id: str, services: Services, key: TableKey, state: TableItem, plan: TablePlan, tgt: Warehouse
) -> dict[str, Any]:
    """After a published run's rows are in the target: the fill's next pages of the column this run fills
    (read from MySQL now, staged, ``UPDATE ... FROM`` by key), then the versions with the cursor moved
    written to the catalog item. A run whose copy wrote every row (a full copy) marks every version filled.
    Returns the run's table fields that say what happened."""
    raw = state.get(column_versions.VERSIONS_FIELD)
    if not raw:
        return {}
    versions = dict(json.loads(str(raw)))
    result: dict[str, Any] = {}
    if state.get(column_versions.WHOLE_FIELD):
        for v in versions.values():
            v["filled"], v["cursor"] = True, None
    name = str(state.get(column_versions.FILL_FIELD) or "")
    if not state.get(column_versions.WHOLE_FIELD) and not (
        name and name in versions and not versions[name].get("filled")
    ):
        return {}  # every version filled already: nothing moves
    if name and name in versions and not versions[name].get("filled"):
        v = versions[name]
        page_plan = column_versions.fill_plan(plan, name)
        fields = cdc_reader.stage_pages(run_id, plan.table, name, page_plan, v.get("cursor"), PAGE_TAG, services)
        batch = ChangeBatch.model_validate(fields["fill_batch"])
        load = cdc_fill_table_name(page_plan, run_id)
        loaded = tgt.load_changes(page_plan, load, cdc_reader.FILL_CHUNK, batch.path, batch.file, audit=True)
        if loaded != batch.rows:
            raise RuntimeError(
                f"the column version pages of {plan.table!r} have {loaded} of their {batch.rows} rows in the load "
                f"table {load!r}: the staged file {batch.path}/{batch.file} is incomplete; run the table again"
            )
        tgt.fill_version(page_plan, load, cdc_reader.FILL_CHUNK, page_plan.column(name))
        tgt.drop(load)
        services.hooks.fault("fill_applied", run_id)
        v["cursor"] = str(fields["fill_cursor"] or "") or None
        v["filled"] = bool(fields["fill_done"])
        now = "filled" if v["filled"] else f"filling (cursor {v['cursor']})"
        result["column_version"] = f"{v['target']}: {batch.rows:,} rows filled from MySQL this run; {now}"
    services.state.set_column_versions(key, versions)
    return result
