"""The health report: connectivity, queues, last run and freshness per table, stalled runs.

Lag is freshness: the age of the newest state of the source that the target is known to reflect
(the snapshot of the table's last validated run), so a quiet table that was just validated lags by
seconds. The age of the newest row (a time watermark) is reported beside it, not as the lag. The
tables come from the state store's catalog (one query), never from a scan of the state table.

Each check runs with its own timeout and reports ``ok`` and a detail; the report is healthy when
every check is ok. Nothing secret is ever part of it: errors are reduced to their type and a
message that names no password (connection errors from the drivers carry host and port only).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from aurora_replication.cost import estimate as cost
from aurora_replication.errors import BadInputError, EndpointError
from aurora_replication.ledger.catalog import CatalogNote
from aurora_replication.ledger.runs import still_running
from aurora_replication.models import shown
from aurora_replication.ops.redrive import peek
from aurora_replication.pipeline import modes
from aurora_replication.services import Services


def is_function_url(event: object) -> bool:
    """Which of the two health requests ``event`` is: a Function URL request (payload 2.0, with its
    ``requestContext.http``), or a direct invoke, which is ``{}`` (the template's schedule sends
    exactly that). Anything else is refused with one line, before any check runs."""
    if not isinstance(event, dict):
        raise BadInputError(f"health event must be a JSON object, got {type(event).__name__} {shown(event)}")
    if "requestContext" in event:
        context = event["requestContext"]
        if not isinstance(context, dict) or not isinstance(context.get("http"), dict):
            raise BadInputError(
                f"invalid health event: requestContext={shown(context)}: a Function URL request (payload "
                "2.0) has requestContext.http; a direct invoke is {}"
            )
        return True
    if event:
        raise BadInputError(
            f"invalid health event: {', '.join(repr(k) for k in sorted(event))}: unknown field(s); a direct "
            "invoke is {} and a Function URL request has requestContext"
        )
    return False


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
    return _connected(services.connections.mysql(), "SELECT VERSION()")


def _snowflake(services: Services) -> dict[str, Any]:
    return _connected(services.connections.snowflake(), "SELECT CURRENT_VERSION()")


def _dynamodb(services: Services) -> dict[str, Any]:
    services.state.ping()
    return {"detail": "reachable"}


def _queue_depth(services: Services, url: str) -> tuple[int, int]:
    a = services.queue.sqs.get_queue_attributes(
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
        msgs = peek(services.queue.sqs, url, limit=100)
        sent = [int(m["Attributes"]["SentTimestamp"]) for m in msgs]
        oldest = int(time.time() - min(sent) / 1000) if sent else None
        for body in (m["Body"] for m in msgs):
            try:
                data = json.loads(body)  # a reference names its table; a whole message, its plan does
                table = data["table"] if "table" in data else data["plan"]["table"]
                tables.add(f"{table} (run {data['run_id']})")
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


def _newest_row_age(value: Any, now: float) -> int | None:
    """Seconds since a watermark that is a point in time (UTC): the age of the newest row copied. It
    says how recently the table changed, not how fresh the copy is; None for other watermarks."""
    try:
        moment = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(int(now - moment.timestamp()), 0)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table_view(item: CatalogNote, now: float) -> dict[str, Any]:
    """One table of the report. ``lag_seconds`` is freshness: now minus ``source_as_of``, the newest
    state of the source the target is known to reflect (the snapshot of its last validated run)."""
    t: dict[str, Any] = {
        "last_run": item.get("last_run"),
        "status": item.get("last_status"),
        "at": item.get("last_at"),
        "rows": item.get("target_rows"),
        "validation": item.get("validation"),
        # a failed validation names the rows and columns that differ, with both values
        "differences": list(item.get("differences") or [])[:5] or None,
    }
    if item.get("last_at"):
        t["since_last_run_seconds"] = int(now - float(item["last_at"]))
    if item.get("source_as_of") is not None:
        as_of = float(item["source_as_of"])
        t["source_as_of"] = _iso(as_of)
        t["fresh_run"] = item.get("fresh_run")
        t["lag_seconds"] = max(int(now - as_of), 0)
    if item.get("watermark") is not None:
        t["watermark"] = item["watermark"]
        age = _newest_row_age(item["watermark"], now)
        if age is not None:
            t["newest_row_age_seconds"] = age
    if item.get("schema_changes"):
        # schema changes followed without stopping the table (a column dropped in MySQL, kept in the
        # target): the latest five, each with when and which run
        t["schema_changes"] = list(item["schema_changes"])[-5:]
    if item.get("table_rows") is not None:
        t["table_rows"] = item["table_rows"]  # what the target held after the last commit (the check's count)
    if item.get("verified_at") is not None:
        # the start of the last complete comparison of every row with the source (a full copy, or a
        # whole cycle of the rolling audit: pipeline/audit.py)
        verified = float(item["verified_at"])
        t["verified_at"] = _iso(verified)
        t["verified_age_seconds"] = max(int(now - verified), 0)
    if item.get("audit_cursor") is not None:
        t["audit_cursor"] = item["audit_cursor"]  # the rolling audit's next slice starts after this key
    current = item.get("current") or {}
    if still_running(current):
        t["running_run"] = item.get("run_id")
    return {k: v for k, v in t.items() if v is not None}


def unverified(tables: dict[str, dict[str, Any]], period: int) -> list[str]:
    """Tables still replicated (a run within ``period``) but not compared whole with the source for two
    periods: the rolling audit is behind (AUDIT_MAX_ROWS caps each run's slice), or the table was never
    verified whole (a report, not a failing check)."""
    return sorted(
        name
        for name, t in tables.items()
        if t.get("since_last_run_seconds", period + 1) <= period
        and t.get("verified_age_seconds", 2 * period + 1) > 2 * period
    )


def _add_costs(services: Services, tables: dict[str, dict[str, Any]], result: dict[str, Any]) -> None:
    """Each table's last run's estimated cost (docs/cost.md), and the tables whose last incremental or
    cdc run moved no rows yet cost something (``nothing_changed``: a longer schedule would do). A
    report, never a failing check."""
    last = {name: str(t["last_run"]) for name, t in tables.items() if t.get("last_run")}
    try:
        costs = cost.last_run_costs(services.state, last, cost.Prices.from_settings(services.settings))
    except Exception as e:  # noqa: BLE001 - cost is a report: the check stands without it
        result["cost_error"] = f"{type(e).__name__}: {e}"[:300]
        return
    for name, c in costs.items():
        tables[name]["cost"] = c
    result["nothing_changed"] = sorted(n for n, c in costs.items() if c["nothing_changed"])


def _tables(services: Services, stall_seconds: int) -> dict[str, Any]:
    now = time.time()
    tables: dict[str, dict[str, Any]] = {}
    stalled = []
    dead: list[str] = []
    for item in services.state.catalog(services.endpoints.scope()):
        # a table of one of several databases (pipeline/databases.py): named with its database
        name = f"{item['source_database']}.{item['table']}" if item.get("source_database") else str(item["table"])
        tables[name] = _table_view(item, now)
        current = item.get("current") or {}
        if not still_running(current):
            continue
        run_id = str(item["run_id"])
        if current.get("dead_lettered"):
            chunks = ", ".join(sorted(current["dead_lettered"], key=int))
            dead.append(f"{name} (run {run_id}, chunk {chunks} in the DLQ)")
        progress = float(current.get("progress_at") or current.get("created_at") or now)
        if now - progress > stall_seconds:
            stalled.append(
                {
                    "run_id": run_id,
                    "table": name,
                    "chunks_done": min(int(current.get("done_count", 0)), int(current.get("chunk_count", 0))),
                    "chunks": int(current.get("chunk_count", 0)),
                    "idle_seconds": int(now - progress),
                    "resume": {"resume_run": run_id},
                    # resumed once by a scheduler that found it stalled; stalled again since: not retried
                    **({"auto_resumed_at": current["auto_resumed_at"]} if current.get("auto_resumed_at") else {}),
                }
            )
    failed = [name for name, t in tables.items() if t.get("status") == "failed"]
    result: dict[str, Any] = {"tables": tables, "stalled_runs": stalled}
    period = services.settings.audit_period_seconds
    if period:
        result["unverified"] = unverified(tables, period)
    _add_costs(services, tables, result)
    result["dead_lettered"] = sorted(dead)
    problems = []
    if failed:
        problems.append(f"last run failed for {', '.join(sorted(failed))}")
    if dead:
        problems.append(f"failed: {'; '.join(sorted(dead))}: fix the cause, then redrive")
    if stalled:
        names = ", ".join(
            sorted(
                {
                    f"{x['table']} (run {x['run_id']}"
                    + (", stalled again after an automatic resume" if x.get("auto_resumed_at") else "")
                    + ")"
                    for x in stalled
                }
            )
        )
        problems.append(
            f"no progress for more than {stall_seconds} s: {names}; "
            'resume with `replicate resume RUN_ID` or the scheduler event {"resume_run": RUN_ID}'
        )
    lags = {name: t["lag_seconds"] for name, t in tables.items() if "lag_seconds" in t}
    detail = f"{len(tables)} table(s) replicated"
    if lags:
        stalest = max(lags, key=lambda n: lags[n])
        detail += f"; stalest {stalest} ({lags[stalest]} s behind the source)"
    result["detail"] = "; ".join(problems) or detail
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
    for mode in modes.MODES.values():  # a mode's own check, named after it (cdc: pipeline/modes/cdc/health.py)
        check = mode.health_check()
        if check is not None:
            checks[mode.name] = functools.partial(check, services)
    secrets: list[str] = []
    try:
        source = services.endpoints.mysql_settings()
        secrets = [source.password, source.mask_salt, services.endpoints.snowflake_settings().password or ""]
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
        except EndpointError as e:  # one line naming what was tried and what to check
            result = {"ok": False, "detail": _redact(str(e), secrets)[:1000], "failure": e.kind}
        except Exception as e:  # noqa: BLE001 - every failure becomes a named, failing check
            result = {"ok": False, "detail": _redact(f"{type(e).__name__}: {e}", secrets)[:500]}
        results[name] = result
    pool.shutdown(wait=False, cancel_futures=True)
    failing = [name for name, r in results.items() if not r["ok"]]
    return {"healthy": not failing, "failing": failing, "checks": results, "checked_at": int(time.time())}
