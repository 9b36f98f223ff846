"""``replicate validate``: the on-demand report that compares a whole source table with its target
now (row count and the order-independent checksum, then the key ranges that differ). It writes
nothing. On a table being written to it reports the writes not yet copied as differences: it is a
report of the moment, not the run's validation, which compares each chunk with its own snapshot
(``finalise.py``)."""

from __future__ import annotations

from typing import Any

from aurora_replication.errors import BadInputError
from aurora_replication.models import TablePlan
from aurora_replication.pipeline import transforms
from aurora_replication.services import Services
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.target import sql
from aurora_replication.target.client import Target


def differing_ranges(mysql: Any, tgt: Target, plan: TablePlan, chunk_rows: int, limit: int = 20) -> list[str]:
    """The key ranges (``lower < key <= upper``) whose count or checksum differ, as text."""
    bounds = source_read.chunk_bounds(mysql, plan.table, plan.key, chunk_rows)
    src = source_read.range_checksums(mysql, plan, bounds)
    out = []
    for (lo, hi), expected in zip(bounds, src, strict=True):
        if tgt.range_checksum(plan, lo, hi) != expected:
            out.append(f"{tuple(lo) if lo else '-inf'} < key <= {tuple(hi) if hi else '+inf'}")
            if len(out) >= limit:
                break
    return out


def validate_tables(services: Services, tables: list[str]) -> list[dict[str, Any]]:
    s = services.settings
    mysql = services.mysql()
    sf = services.snowflake()
    try:
        database = services.mysql_settings().dbname
        available = source_discover.list_tables(mysql, database)
        names = available if tables == ["*"] else tables
        unknown = [t for t in names if t not in available]
        if unknown:
            raise BadInputError(f"unknown table(s) {', '.join(repr(t) for t in unknown)} in database {database!r}")
        options = transforms.options_from_file(s.table_options_file)
        tgt = Target(sf, s.stage_name)
        report = []
        for table in names:
            plan = source_discover.discover_table(mysql, database, table, identifier_case=s.identifier_case)
            plan = transforms.apply_options(
                plan, options.get(table), s.identifier_case, transform_modules=s.transform_modules
            )
            row: dict[str, Any] = {"table": table, "target": plan.target_table}
            src_count, src_sum = source_read.table_checksum(mysql, plan)
            row.update(source_rows=src_count, source_checksum=src_sum)
            if not tgt.exists(plan.target_table):
                row.update(target_rows="-", target_checksum="-", result="missing in Snowflake")
            else:
                tgt_count, tgt_sum = tgt.checksum(plan, plan.target_table)
                same = (src_count, src_sum) == (tgt_count, tgt_sum)
                row.update(
                    target_rows=tgt_count,
                    target_checksum=tgt_sum,
                    result="ok" if same else ("count differs" if src_count != tgt_count else "checksum differs"),
                )
                if not same and sql.order_safe(plan):
                    row["differing_ranges"] = differing_ranges(mysql, tgt, plan, s.default_chunk_rows)
            report.append(row)
        return report
    finally:
        mysql.close()
        sf.close()
