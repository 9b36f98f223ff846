"""On-demand comparison of source and target: row count and checksum per table, nothing written."""

from __future__ import annotations

from typing import Any

from aurora_replication import source, transforms
from aurora_replication.models import BadInputError
from aurora_replication.services import Services
from aurora_replication.target import Target


def validate_tables(services: Services, tables: list[str]) -> list[dict[str, Any]]:
    s = services.settings
    mysql = services.mysql()
    sf = services.snowflake()
    try:
        database = services.mysql_settings().dbname
        available = source.list_tables(mysql, database)
        names = available if tables == ["*"] else tables
        unknown = [t for t in names if t not in available]
        if unknown:
            raise BadInputError(f"unknown table(s) {', '.join(repr(t) for t in unknown)} in database {database!r}")
        options = transforms.options_from_file(s.table_options_file)
        tgt = Target(sf, s.stage_name)
        report = []
        for table in names:
            plan = source.discover_table(mysql, database, table, identifier_case=s.identifier_case)
            plan = transforms.apply_options(plan, options.get(table), s.identifier_case)
            row: dict[str, Any] = {"table": table, "target": plan.target_table}
            src_count, src_sum = source.table_checksum(mysql, plan)
            row.update(source_rows=src_count, source_checksum=src_sum)
            if not tgt.exists(plan.target_table):
                row.update(target_rows="-", target_checksum="-", result="missing in Snowflake")
            else:
                tgt_count, tgt_sum = tgt.checksum(plan, plan.target_table)
                same = (src_count, src_sum) == (tgt_count, tgt_sum)
                row.update(target_rows=tgt_count, target_checksum=tgt_sum,
                           result="ok" if same else ("count differs" if src_count != tgt_count else "checksum differs"))
            report.append(row)
        return report
    finally:
        mysql.close()
        sf.close()
