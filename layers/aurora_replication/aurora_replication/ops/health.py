"""The health report: connectivity, queues, last run and lag per table, stalled runs.

Each check runs with its own timeout and reports ``ok`` and a detail; the report is healthy when
every check is ok. Nothing secret is ever part of it: errors are reduced to their type and a
message that names no password (connection errors from the drivers carry host and port only).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Attr

from aurora_replication.ops.redrive import peek
from aurora_replication.services import Services
from aurora_replication.state import _plain

STALL_SECONDS = 1800


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def _connected(conn: Any, version_query: str) -> dict[str, Any]:
    """One cheap query on a fresh connection (MySQL or Snowflake), then close it."""
    try:
        cur = conn.cursor()
        cur.execute(version_query)
        version = cur.fetchone()[0]
        cur.close()
    finally:
        conn.close()
    return {"detail": f"connected ({version})"}


def _mysql(services: Services) -> dict[str, Any]:
    return _connected(services.mysql(), "SELECT VERSION()")


def _snowflake(services: Services) -> dict[str, Any]:
    return _connected(services.snowflake(), "SELECT CURRENT_VERSION()")


def _dynamodb(services: Services) -> dict[str, Any]:
    services.state.table.get_item(Key={"pk": "HEALTH", "sk": "PING"})
    return {"detail": "reachable"}


def _queue_depth(services: Services, url: str) -> tuple[int, int]:
    a = services.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def _queue(services: Services) -> dict[str, Any]:
    visible, inflight = _queue_depth(services, services.settings.chunk_queue_url)
    return {"detail": f"{visible} waiting, {inflight} in flight", "waiting": visible, "in_flight": inflight}


def _dlq(services: Services) -> dict[str, Any]:
    url = services.settings.dlq_url
    if not url:
        return {"detail": "no DLQ_URL configured"}
    visible, inflight = _queue_depth(services, url)
    depth = visible + inflight
    oldest = None
    tables: set[str] = set()
    if depth:
        msgs = peek(services.sqs, url, limit=100)
        sent = [int(m["Attributes"]["SentTimestamp"]) for m in msgs]
        oldest = int(time.time() - min(sent) / 1000) if sent else None
        for body in (m["Body"] for m in msgs):
            try:
                tables.add(f"{json.loads(body)['plan']['table']} (run {json.loads(body)['run_id']})")
            except (ValueError, KeyError, TypeError):
                tables.add("(unreadable message)")
    result: dict[str, Any] = {"depth": depth, "oldest_age_seconds": oldest, "tables": sorted(tables)}
    result["detail"] = (
        "empty"
        if not depth
        else f"{depth} message(s), oldest {oldest} s, of {', '.join(sorted(tables)) or '?'}: "
        "fix the cause, then redrive"
    )
    if depth:
        result["ok"] = False
    return result


def _watermark_lag(value: Any, now: float) -> int | None:
    """Seconds between now and a watermark that is a point in time (UTC); None for other watermarks."""
    try:
        moment = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(int(now - moment.timestamp()), 0)


def _tables(services: Services, stall_seconds: int) -> dict[str, Any]:
    now = time.time()
    items: list[dict[str, Any]] = []
    running = Attr("sk").begins_with("TABLE#") & Attr("status").eq("running")
    kwargs: dict[str, Any] = {"FilterExpression": Attr("sk").is_in(["LAST_RUN", "WATERMARK"]) | running}
    while True:
        resp = services.state.table.scan(**kwargs)
        items.extend(_plain(i) for i in resp["Items"])
        if "LastEvaluatedKey" not in resp:
            break
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
    tables: dict[str, dict[str, Any]] = {}
    stalled = []
    dead: list[str] = []
    for item in items:
        if item["sk"].startswith("TABLE#"):  # a table of a run still in progress
            if item.get("dead_lettered"):
                chunks = ", ".join(sorted(item["dead_lettered"], key=int))
                dead.append(f"{item.get('table')} (run {item['pk'][4:]}, chunk {chunks} in the DLQ)")
            progress = float(item.get("progress_at") or item.get("created_at") or now)
            if now - progress > stall_seconds:
                run_id = item["pk"][4:]
                stalled.append(
                    {
                        "run_id": run_id,
                        "table": item.get("table"),
                        "chunks_done": min(int(item.get("done_count", 0)), int(item.get("chunk_count", 0))),
                        "chunks": int(item.get("chunk_count", 0)),
                        "idle_seconds": int(now - progress),
                        "resume": {"resume_run": run_id},
                    }
                )
            continue
        t = tables.setdefault(item["pk"][6:], {})
        if item["sk"] == "WATERMARK":
            t["watermark"] = item.get("value")
            lag = _watermark_lag(item.get("value"), now)
            if lag is not None:
                t["lag_seconds"] = lag
        else:
            t.update(
                last_run=item.get("run_id"),
                status=item.get("status"),
                at=item.get("at"),
                rows=item.get("target_rows"),
                validation=item.get("validation"),
            )
            if item.get("at"):
                t["since_last_run_seconds"] = int(now - float(item["at"]))
    for t in tables.values():
        t.setdefault("lag_seconds", t.get("since_last_run_seconds"))
    failed = [name for name, t in tables.items() if t.get("status") == "failed"]
    result: dict[str, Any] = {"tables": tables, "stalled_runs": stalled}
    result["dead_lettered"] = sorted(dead)
    problems = []
    if failed:
        problems.append(f"last run failed for {', '.join(sorted(failed))}")
    if dead:
        problems.append(f"failed: {'; '.join(sorted(dead))}: fix the cause, then redrive")
    if stalled:
        names = ", ".join(sorted({f"{x['table']} (run {x['run_id']})" for x in stalled}))
        problems.append(
            f"no progress for more than {stall_seconds} s: {names}; "
            'resume with `replicate resume RUN_ID` or the scheduler event {"resume_run": RUN_ID}'
        )
    result["detail"] = "; ".join(problems) or f"{len(tables)} table(s) replicated"
    if problems:
        result["ok"] = False
    return result


def report(services: Services, timeout: float = 10.0, stall_seconds: int | None = None) -> dict[str, Any]:
    stall_seconds = services.settings.stall_seconds if stall_seconds is None else stall_seconds
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "mysql": lambda: _mysql(services),
        "snowflake": lambda: _snowflake(services),
        "dynamodb": lambda: _dynamodb(services),
        "queue": lambda: _queue(services),
        "dead_letter_queue": lambda: _dlq(services),
        "replication": lambda: _tables(services, stall_seconds),
    }
    secrets: list[str] = []
    try:
        secrets = [services.mysql_settings().password, services.snowflake_settings().password or ""]
    except Exception:  # noqa: BLE001 - the connectivity checks report it
        pass
    results: dict[str, dict[str, Any]] = {}
    pool = ThreadPoolExecutor(max_workers=len(checks))
    futures = {name: pool.submit(fn) for name, fn in checks.items()}
    deadline = time.monotonic() + timeout
    for name, future in futures.items():
        started = time.monotonic()
        try:
            result = future.result(timeout=max(deadline - started, 0.01))
            result.setdefault("ok", True)
        except FutureTimeout:
            result = {"ok": False, "detail": f"no answer within {timeout:.0f} s"}
        except Exception as e:  # noqa: BLE001 - every failure becomes a named, failing check
            result = {"ok": False, "detail": _redact(f"{type(e).__name__}: {e}", secrets)[:500]}
        results[name] = result
    pool.shutdown(wait=False, cancel_futures=True)
    failing = [name for name, r in results.items() if not r["ok"]]
    return {"healthy": not failing, "failing": failing, "checks": results, "checked_at": int(time.time())}
