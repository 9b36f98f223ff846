"""The health check of change data capture: lag, stopped tables, and binlog retention per table.

A table's CDC lag is the seconds between now and the point up to which every change is applied
(``caught_up_at``: when its last committed window was read, if that window reached the server's end,
else the time of the newest event it applied). Retention: a stored position whose binlog file the
server no longer has needs a re-snapshot; one whose age comes within ``CDC_RETENTION_WARN_FRACTION``
of the server's binlog retention is reported before that happens.
"""

from __future__ import annotations

import time
from typing import Any

from aurora_replication.ledger.cdc import STOPPED, STREAMING, CdcState
from aurora_replication.services import Services
from aurora_replication.source import binlog
from aurora_replication.source.binlog import Position

RETENTION_FIX = (
    "run cdc more often (CdcScheduleExpression) or keep binlogs longer: on Aurora "
    "CALL mysql.rds_set_configuration('binlog retention hours', N); elsewhere binlog_expire_logs_seconds"
)


def check(services: Services) -> dict[str, Any]:
    tables = CdcState(services.state).all(services.endpoints.scope())
    if not tables:
        return {"detail": "no table replicated by cdc", "tables": {}}
    now = time.time()
    conn = services.connections.mysql()
    try:
        files = binlog.binlog_files(conn)
        retention = binlog.retention_seconds(conn)
    finally:
        conn.close()
    warn = services.settings.cdc_retention_warn_fraction
    report: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    notes: list[str] = []  # not problems: said in the detail (``replicate status``)
    for name, item in sorted(tables.items()):
        position = Position.from_dict(item["binlog_pos"])
        t: dict[str, Any] = {"status": item.get("status"), "position": str(position)}
        report[name] = t
        if item.get("status") == STREAMING and item.get("caught_up_at") is not None:
            t["cdc_lag_seconds"] = max(int(now - float(item["caught_up_at"])), 0)
        if item.get("newest_event_at"):
            t["newest_event_at"] = int(item["newest_event_at"])
        filling = [v for v in (item.get("column_versions") or {}).values() if not v.get("filled")]
        if filling:  # a column version not filled yet: not compared by the audit or `replicate validate`
            t["filling"] = [f"{v['target']} (cursor {v.get('cursor') or 'at the start'})" for v in filling]
            notes.append(f"{name}: column version {', '.join(t['filling'])} filling, not compared until filled")
        if item.get("status") == STOPPED:
            problems.append(f"{name}: cdc stopped ({item.get('reason', '?')}); re-snapshot it")
        elif not binlog.is_retained(position, files):
            t["retained"] = False
            problems.append(
                f"{name}: its binlog position {position} is gone (oldest binlog {files[0][0] if files else '-'}): "
                "re-snapshot it (mode cdc with resnapshot)"
            )
        elif retention == 0:
            problems.append(
                f"{name}: Aurora's 'binlog retention hours' is not set (NULL: binlogs are purged lazily, usually "
                f"within a day), so its position may be purged before the next run: {RETENTION_FIX}"
            )
        elif retention is not None:
            left = retention - (now - float(item.get("position_at") or now))
            t["retention_left_seconds"] = int(left)
            if left < warn * retention:
                problems.append(
                    f"{name}: binlog retention runs out for its position in {max(int(left), 0)} s: {RETENTION_FIX}"
                )
    result: dict[str, Any] = {"tables": report, "retention_seconds": retention}
    result["detail"] = "; ".join(problems) or "; ".join([f"{len(tables)} table(s) by cdc", *notes])
    if problems:
        result["ok"] = False
    return result
