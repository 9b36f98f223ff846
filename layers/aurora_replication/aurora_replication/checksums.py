"""The checksum both engines share: which columns it covers and how per-row hashes fold.

Each row's canonical text (built per engine in ``source.sql`` and ``target.sql``, one spelling per
kind that both engines produce byte for byte: docs/types.md) is hashed with MD5; the first 64 bits
of the hashes are summed, so the checksum of a key range is independent of row order and the
checksums of ranges add up to the table's.

Every kind is covered, JSON included where Snowflake holds it as the text MySQL sent (a load
table's VARCHAR column: ``json_text=True``). A VARIANT re-serialises its document (key order and
number spelling are Snowflake's, and TO_JSON's key order is documented as unpredictable), so
against a target table JSON columns are left out of the in-database checksum and compared by
``pipeline.diagnose.json_differences`` instead. Cast columns (``checksum=False``) are the one
exception: their text differs between the engines by design.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from aurora_replication import typemap
from aurora_replication.models import Column, TablePlan

EMPTY = (0, "0000000000000000")

CHECKSUM_KINDS = frozenset(
    {
        typemap.INTEGER,
        typemap.DECIMAL,
        typemap.FLOAT,
        typemap.BIT,
        typemap.YEAR,
        typemap.TEXT,
        typemap.BINARY,
        typemap.SPATIAL,
        typemap.TIME,
        typemap.DATE,
        typemap.DATETIME,
    }
)


def checksum_columns(plan: TablePlan, json_text: bool = False) -> list[Column]:
    """Columns whose canonical text both engines produce identically. JSON columns count only with
    ``json_text`` (Snowflake's side is a load table, where JSON is still MySQL's text)."""
    kinds = CHECKSUM_KINDS | {typemap.JSON} if json_text else CHECKSUM_KINDS
    return [c for c in plan.columns if c.checksum and c.kind in kinds]


def unchecked_columns(plan: TablePlan, json_text: bool = False) -> list[Column]:
    """The columns the in-database checksum leaves out (what validation reports as not compared)."""
    checked = {c.name for c in checksum_columns(plan, json_text)}
    return [c for c in plan.columns if c.name not in checked]


def fold_sums(count: Any, total: Any) -> tuple[int, str]:
    """The ``fold_hashes`` result from the in-database sum of each row's first 64 bits (a sum of no
    rows is NULL)."""
    return int(count or 0), f"{int(total or 0) & 0xFFFFFFFFFFFFFFFF:016x}"


def fold_hashes(hashes: Iterator[str] | list[str]) -> tuple[int, str]:
    """Row count and an order-independent checksum from per-row MD5 hex digests.

    The reference definition of the fold, in Python: the product folds inside each database
    (``fold_sums`` of the SQL sum of each row's first 64 bits), and the unit tests check that both give this."""
    total = 0
    count = 0
    for h in hashes:
        total = (total + int(h[:16], 16)) & 0xFFFFFFFFFFFFFFFF
        count += 1
    return count, f"{total:016x}"


def add_checksums(parts: Sequence[tuple[int, str]]) -> tuple[int, str]:
    """The table's count and checksum from its chunks' (the fold is a sum, so it adds up)."""
    total = sum(int(h, 16) for _, h in parts) & 0xFFFFFFFFFFFFFFFF
    return sum(c for c, _ in parts), f"{total:016x}"
