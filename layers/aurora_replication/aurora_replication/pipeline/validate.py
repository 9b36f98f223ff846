"""``replicate validate``: the on-demand report that compares a whole source table with its target
now (row count and the order-independent checksum, then the key ranges that differ). It writes
nothing. On a table being written to it reports the writes not yet copied as differences: it is a
report of the moment, not the run's validation, which compares each chunk with its own snapshot
(``finalise.py``)."""

from __future__ import annotations

from typing import Any

from aurora_replication import checksums, schema_changes, typemap
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.cdc import CdcState
from aurora_replication.ledger.keys import Bounds, Scope
from aurora_replication.models import TablePlan
from aurora_replication.pipeline import column_versions, databases, diagnose, transforms
from aurora_replication.services import Services
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.target.names import current_view_name
from aurora_replication.target.warehouse import Warehouse


def _differing_bounds(mysql: Any, tgt: Warehouse, plan: TablePlan, chunk_rows: int, limit: int) -> list[Bounds]:
    bounds = source_read.chunk_bounds(mysql, plan.table, plan.key, chunk_rows)
    src = source_read.range_checksums(mysql, plan, bounds)
    out: list[Bounds] = []
    for (lo, hi), expected in zip(bounds, src, strict=True):
        if tgt.range_checksum(plan, lo, hi) != expected:
            out.append((lo, hi))
            if len(out) >= limit:
                break
    return out


def _range_text(lo: Any, hi: Any) -> str:
    return f"{tuple(lo) if lo else '-inf'} < key <= {tuple(hi) if hi else '+inf'}"


def _differences(
    mysql: Any, tgt: Warehouse, plan: TablePlan, same: bool, chunk_rows: int, limit: int = 20
) -> tuple[list[diagnose.Difference], list[str]]:
    """The rows and columns that differ (named by ``diagnose``), and the differing key ranges as text."""
    found: list[diagnose.Difference] = []
    ranges: list[str] = []
    try:
        if not same:
            if tgt.order_safe(plan):  # the ranges first (one cheap pass), then the rows in a few of them
                bounds = _differing_bounds(mysql, tgt, plan, chunk_rows, limit)
                ranges = [_range_text(lo, hi) for lo, hi in bounds]
                for lo, hi in bounds[:3]:
                    found += diagnose.name_differences(mysql, tgt, plan, lo, hi, plan.target_table, limit=limit)
            else:  # a text key: buckets of the whole table, which need no order
                found = diagnose.name_differences(mysql, tgt, plan, None, None, plan.target_table, limit=limit)
        # JSON is a VARIANT in the target: compared value by value, not in the checksum
        found += diagnose.json_differences(mysql, tgt, plan, None, None, plan.target_table, limit=limit)
    except BadInputError as e:  # a table without a key: its rows have no names
        ranges.append(str(e))
    return found[:limit], ranges


def validate_databases(
    services: Services, tables: list[str], requested: list[str], mapping: str
) -> list[dict[str, Any]]:
    """``validate_tables`` of each database ``requested`` names (names and patterns), each against where
    ``mapping`` copies it (docs/run-requests.md#several-databases); its rows name the database."""
    conn = services.connections.mysql()
    try:
        chosen = databases.match_databases(requested, databases.list_databases(conn))
    finally:
        conn.close()
    base = services.endpoints.scope()
    report = []
    try:
        for database in chosen:
            scope = databases.scope_for(base, database, mapping)
            services.endpoints.locate(database, scope.target_schema if mapping == "schema" else None)
            for row in validate_tables(services, tables, scope):
                report.append({**row, "table": f"{database}.{row['table']}"})
    finally:
        services.endpoints.locate(None, None)
    return report


def validate_tables(services: Services, tables: list[str], scope: Scope | None = None) -> list[dict[str, Any]]:
    """Each table's rows, checksums and, where they differ, the rows and columns that differ (named
    by ``pipeline.diagnose``, with both values). JSON columns are compared value by value (the
    target holds a VARIANT), which reads them from both engines. ``scope``: one of several databases'
    (``validate_databases``), the connections located there."""
    s = services.settings
    mysql = services.connections.place("source", services.connections.mysql())
    sf = services.connections.place("target", services.connections.snowflake())
    try:
        database = scope.source_database if scope is not None else services.endpoints.mysql_settings().dbname
        available = source_discover.list_tables(mysql, database)
        names = available if tables == ["*"] else tables
        unknown = [t for t in names if t not in available]
        if unknown:
            raise source_discover.not_base_tables(mysql, database, unknown)
        options = transforms.with_history_tables(
            transforms.options_from_file(s.table_options_file), s.history_tables, s.column_drop_tables
        )
        tgt = services.connections.warehouse(sf)
        report = []
        for table in names:
            plan = source_discover.discover_table(mysql, database, table, identifier_case=s.identifier_case)
            plan = transforms.apply_options(
                plan, options.get(table), s.identifier_case, transform_modules=s.transform_modules
            )
            if scope is not None:
                merged = {"merged": True, "source_database": database} if scope.mapping == "merge" else {}
                plan = plan.model_copy(update={"target_table": scope.target_table(table), **merged})
            # a cdc table's column versions (a type change, docs/cdc.md#schema-changes): the version compared
            # once filled, a version still filling not compared
            key = (scope or services.endpoints.scope()).key(table)
            versions = (CdcState(services.state).get(key) or {}).get("column_versions") or column_versions.stored(
                services.state.catalog_entries([key]).get(table, {})
            )
            plan, filling = schema_changes.compared_plan(plan, versions)
            stored = plan.target_table  # the table itself (a history table's view is not listed as one everywhere)
            if plan.history or tgt.is_history_table(tgt.columns(stored)):
                # history mode: the source against the current versions (``<target>_CURRENT``), not every version
                plan = plan.model_copy(update={"target_table": current_view_name(plan)})
            row: dict[str, Any] = {"table": table, "target": plan.target_table}
            src_count, src_sum = source_read.table_checksum(mysql, plan)
            row.update(source_rows=src_count, source_checksum=src_sum)
            if not tgt.exists(stored):
                row.update(target_rows="-", target_checksum="-", result="missing in Snowflake")
            else:
                tgt_count, tgt_sum = tgt.checksum(plan, plan.target_table, where=tgt.own_rows(plan, ""))
                same = (src_count, src_sum) == (tgt_count, tgt_sum)
                found, ranges = _differences(mysql, tgt, plan, same, s.default_chunk_rows)
                result = "ok" if same else ("count differs" if src_count != tgt_count else "checksum differs")
                if same and found:
                    result = "JSON differs"
                row.update(target_rows=tgt_count, target_checksum=tgt_sum, result=result)
                if ranges:
                    row["differing_ranges"] = ranges
                if found:
                    row["differences"] = [d.describe() for d in found]
            # columns no check covers: casts, whose text differs between the engines by design
            not_compared = [c.name for c in checksums.unchecked_columns(plan) if c.kind != typemap.JSON]
            if filling:
                not_compared += filling
                row["filling"] = [
                    f"column {n!r}: its version {versions[n]['target']!r} is filling from MySQL; not compared until "
                    "it is filled"
                    for n in filling
                ]
            if not_compared:
                row["not_compared"] = not_compared
            report.append(row)
        return report
    finally:
        mysql.close()
        sf.close()
