"""A cdc request that follows the binlog: windows back to back within one scheduler invocation.

A cdc run request reads one binlog window and ends; its changes are applied by workers and committed by
the table's finaliser. With ``follow_seconds`` the scheduler, once a window's run has ended (every
table committed, failed or declined), reads the next window from the position just committed, and so on
for about that many seconds of the invocation, so a change waits for the window in progress rather than
for the next schedule. With the CDC schedule at ``rate(1 minute)`` and ``follow_seconds`` a little under
a minute, the windows follow each other all the time (docs/cdc.md, "Following the binlog").

What it keeps as a window run alone does: each window is a run of its own, with its lease, its position
committed by its finaliser, its report; a window whose table is held by another run (a schedule that
fired while this one still follows) ends the following, as the lease declines it, and so does a window
whose run failed (its run says why; following on would repeat the failure every few seconds). It reads
no window while the binlog has not moved (one ``SHOW MASTER STATUS`` each ``CDC_FOLLOW_PAUSE_SECONDS``), so a quiet
source costs no Snowflake statement, and it starts none that could not end inside the invocation (a
window's budget ``CDC_MAX_SECONDS`` plus the time to apply it, ``CDC_FOLLOW_APPLY_SECONDS``, must be left
of the invocation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.models import RunRequest, new_run_id, parse_scheduler_event
from aurora_replication.services import Services
from aurora_replication.source import binlog

logger = Logger(child=True)
Schedule = Callable[[Any, Services], dict[str, Any]]


def run_ids(summary: dict[str, Any]) -> list[str]:
    """The runs one scheduler answer started: one, or one per source database."""
    runs = summary.get("runs") or {}
    ids = [str(r["run_id"]) for r in runs.values() if r.get("run_id")]
    return ids or [str(summary["run_id"])]


def declined(summary: dict[str, Any]) -> bool:
    """Whether a table of the window was declined (its lease is another run's, or its copy is not published)."""
    answers = [summary, *(summary.get("runs") or {}).values()]
    return any(t.get("status") == "declined" for a in answers for t in (a.get("tables") or {}).values())


def follow(event: Any, services: Services, schedule: Schedule) -> dict[str, Any]:
    """Answer ``event`` with ``schedule``; a cdc request with ``follow_seconds`` reads windows back to back
    for about that long. The answer is the last window's, with ``windows``: every window's run ids."""
    request = parse_scheduler_event(event, services.settings.default_mode)
    if not isinstance(request, RunRequest) or not request.follow_seconds:
        return schedule(event, services)
    s = services.settings
    until = time.monotonic() + request.follow_seconds
    last_end = _binlog_end(services)  # before the window: a change written while it is read gets the next one
    summary = schedule(event, services)
    windows = [run_ids(summary)]
    while not declined(summary) and summary.get("status") != "failed":
        ended = _await_runs(services, windows[-1], until)
        if ended is None or "failed" in ended:
            break  # out of time; or a window failed: its run says why, and the next schedule tries again
        if time.monotonic() >= until:
            break
        if services.deadline.seconds_left() < s.cdc_max_seconds + s.cdc_follow_apply_seconds:
            break  # the next window might not be read and applied inside the invocation
        end = _binlog_end(services)
        if end == last_end:  # nothing written since the last window started: no window, no statement
            time.sleep(s.cdc_follow_pause_seconds)
            continue
        last_end = end
        next_event = {**event, "run_id": new_run_id()}
        summary = schedule(next_event, services)
        windows.append(run_ids(summary))
    logger.info(f"followed the binlog: {len(windows)} windows", extra={"windows": len(windows)})
    return {**summary, "windows": windows}


def _binlog_end(services: Services) -> tuple[str, int]:
    conn = services.connections.mysql()
    try:
        end = binlog.current_position(conn)
    finally:
        conn.close()
    return end.file, end.pos


def _await_runs(services: Services, ids: list[str], until: float) -> list[str] | None:
    """Wait until every run of ``ids`` has ended (a condition polled in DynamoDB, one small read each) and
    return their statuses; None when the follow's time or the invocation's ran out first."""
    pause = 0.2
    while True:
        statuses = [str(services.state.run_status(run_id)) for run_id in ids]
        if all(status in ("succeeded", "failed") for status in statuses):
            return statuses
        if time.monotonic() >= until or services.deadline.seconds_left() <= 0:
            return None
        time.sleep(pause)
        pause = min(pause * 1.5, 2.0)
