"""Which record type an item of the ledger is, by its key, and the attributes an item holds that its type
does not declare: what the tests check every item written against (``tests/unit/test_ledger_types.py``,
and each integration test's state table when its stack stops), so a field written without being declared
on its type fails there.

The types live with the modules that write them: ``runs`` (RUN, TABLE), ``chunks`` (CHUNK, ATTEMPT),
``leases`` (LEASE), ``lasting`` (WATERMARK, LAST_RUN), ``catalog`` (the CATALOG notes), ``cdc`` (CDC). Items
internal to the ledger (a run's NAMES and BOUNDS pages, its TALLY and FINISHED marks, the catalog's
SEVERAL_DATABASES mark) and the cost figures (``cost/ledger.py``) have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.cdc import CdcItem
from aurora_replication.ledger.chunks import AttemptItem, ChunkItem
from aurora_replication.ledger.keys import CATALOG_PK
from aurora_replication.ledger.lasting import LastRunItem, WatermarkItem
from aurora_replication.ledger.leases import LeaseItem
from aurora_replication.ledger.runs import RunItem, TableItem

# a run's partition (``RUN#<run>``), by the first part of the sort key
RUN_RECORDS: dict[str, object] = {"RUN": RunItem, "TABLE": TableItem, "CHUNK": ChunkItem, "ATTEMPT": AttemptItem}
# a table's lasting items (``TABLE#<key>``), by the sort key
TABLE_RECORDS: dict[str, object] = {
    "LEASE": LeaseItem,
    "WATERMARK": WatermarkItem,
    "LAST_RUN": LastRunItem,
    "CDC": CdcItem,
}
# attributes named at run time, by prefix: a TABLE item's long statement records (``long_<statement>``,
# ``pipeline/finalise.py``, ``Runs.swap_table_text``)
DYNAMIC_PREFIXES: dict[object, tuple[str, ...]] = {TableItem: ("long_",)}


def record_type(pk: str, sk: str) -> object | None:
    """The ``TypedDict`` of the item keyed ``pk``/``sk`` (None: an item without a record type)."""
    if pk.startswith("RUN#"):
        return RUN_RECORDS.get(sk.split("#", 1)[0])
    if pk == CATALOG_PK:
        return CatalogNote if sk.startswith("TABLE#") else None
    if pk.startswith("TABLE#"):
        return TABLE_RECORDS.get(sk)
    return None


def declared(record: object) -> frozenset[str]:
    """The keys a record type declares (required and optional)."""
    return frozenset(getattr(record, "__required_keys__", ())) | frozenset(getattr(record, "__optional_keys__", ()))


def undeclared(item: Mapping[str, Any]) -> set[str]:
    """The attributes of a stored item that its record type does not declare (none for an item without one)."""
    record = record_type(str(item.get("pk")), str(item.get("sk")))
    if record is None:
        return set()
    prefixes = DYNAMIC_PREFIXES.get(record, ())
    return {k for k in item if k not in declared(record) and not k.startswith(prefixes)}
