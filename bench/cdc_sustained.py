"""Issue 29's lag: a writer at a bounded rate for a bounded time while cdc runs back to back, the lag of each
change from its commit to visible in Snowflake, and MySQL against Snowflake at the end."""

from __future__ import annotations

import time
from typing import Any

from bench import servers
from bench.children import fresh_stack, run_child, stack_spec
from bench.output import log
from bench.settings import TABLE


def _sustained_writer(spec: dict[str, Any], ticks: list[tuple[float, float, int]], failed: list[str]) -> None:
    """``rate`` row changes a second for ``seconds``, each tenth of a second's changes one transaction that
    sets ``updated_at`` to the tick's own time (UTC): which ticks Snowflake shows is then read off the
    target's newest ``updated_at``. Appends (tick time, commit time, rows) to ``ticks``."""
    import datetime as dt

    rows, rate, seconds = int(spec["rows"]), int(spec["rate"]), float(spec["seconds"])
    per_tick = max(rate // 10, 1)
    conn = servers.source_connection(spec["source"])
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            started = time.time()
            tick, at = 0, 0
            while time.time() < started + seconds:
                due = started + tick / 10
                if time.time() < due:
                    time.sleep(due - time.time())  # the writer's own pace: a rate, not a condition
                now = time.time()
                stamp = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
                lower = at % rows
                cur.execute(
                    f"UPDATE `{TABLE}` SET total = total + 1, updated_at = %s WHERE id > %s AND id <= %s",
                    (stamp, lower, lower + per_tick),
                )
                ticks.append((now, time.time(), int(cur.rowcount)))
                at += per_tick
                tick += 1
    except Exception as e:  # noqa: BLE001 - reported with the result
        failed.append(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def _target_facts(spec: dict[str, Any]) -> tuple[int, int, float | None]:
    """Rows, their SUM(total) (in cents) and the newest updated_at (epoch seconds) in Snowflake."""
    conn = servers.target_connection(spec["target"])
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT COUNT(*), SUM(TOTAL * 100), MAX(UPDATED_AT) FROM "{TABLE.upper()}"')
        count, total, newest = cur.fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    import datetime as dt

    newest_at = newest.replace(tzinfo=dt.UTC).timestamp() if newest is not None else None
    return int(count or 0), int(total or 0), newest_at


def child_cdc_sustained(spec: dict[str, Any]) -> dict[str, Any]:
    """The initial cdc copy, then a writer at ``rate`` changes a second for ``seconds`` while cdc runs back
    to back (2 workers), then runs until the target holds the writer's last change. Each change's lag: from
    its commit to the end of the first run after which the target's newest ``updated_at`` reaches it. At
    the end, MySQL's rows and SUM(total) against Snowflake's."""
    import threading

    stack = fresh_stack(spec)
    request = {"tables": TABLE, "mode": "cdc"}
    ticks: list[tuple[float, float, int]] = []
    failed: list[str] = []
    runs: list[dict[str, Any]] = []
    try:
        first = stack.run(request, workers=2, processes=True)
        writer = threading.Thread(target=_sustained_writer, args=(spec, ticks, failed), daemon=True)
        if spec.get("follow"):
            runs = _follow(stack, spec, writer, ticks)
            writer.join(timeout=5)
            return _result(spec, first, runs, ticks, failed)
        writer.start()
        deadline = time.time() + float(spec["seconds"]) + 600  # bounded: a run that cannot catch up ends it
        seen = 0
        while time.time() < deadline:
            writing = writer.is_alive()
            started = time.time()
            outcome = stack.run(request, workers=2, processes=True)
            finished = time.time()
            count, total, newest = _target_facts(spec)
            visible = [t for t in ticks[seen:] if newest is not None and t[0] <= newest + 1e-6]
            runs.append(
                {
                    "started": started,
                    "seconds": finished - started,
                    "ok": outcome.ok,
                    "changes": sum(t[2] for t in visible),
                    "lags": [(finished - t[1], t[2]) for t in visible],
                }
            )
            seen += len(visible)
            if not writing and seen >= len(ticks):
                break
        writer.join(timeout=5)
    finally:
        stack.stop()
    return _result(spec, first, runs, ticks, failed)


def _follow(
    stack: Any, spec: dict[str, Any], writer: Any, ticks: list[tuple[float, float, int]]
) -> list[dict[str, Any]]:
    """One scheduler invocation that follows the binlog (``follow_seconds``: the writer's time and a margin)
    while the writer writes; a watcher reads Snowflake's newest ``updated_at`` every half second, and each
    change's lag is from its commit to the first look that shows it."""
    import threading

    seen: list[tuple[float, float]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            newest = _target_facts(spec)[2]
            if newest is not None:
                seen.append((time.time(), newest))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    writer.start()
    answers: list[dict[str, Any]] = []
    started = time.time()
    follow = int(float(spec["seconds"])) + 15
    try:
        outcome = stack.run(
            {"tables": TABLE, "mode": "cdc", "follow_seconds": follow},
            workers=2,
            processes=True,
            on_scheduled=answers.append,
        )
    finally:
        stop.set()
        watcher.join()
    newest = _target_facts(spec)[2]  # one more look, once the last window is applied
    if newest is not None:
        seen.append((time.time(), newest))
    lags = []
    for stamp, commit, n in ticks:
        when = next((at for at, newest in seen if newest >= stamp - 1e-6), None)
        if when is not None:
            lags.append((when - commit, n))
    windows = len(answers[0].get("windows", [])) if answers else 0
    return [
        {
            "started": started,
            "seconds": time.time() - started,
            "ok": outcome.ok,
            "changes": sum(n for _, n in lags),
            "lags": lags,
            "windows": windows,
        }
    ]


def _result(
    spec: dict[str, Any],
    first: Any,
    runs: list[dict[str, Any]],
    ticks: list[tuple[float, float, int]],
    failed: list[str],
) -> dict[str, Any]:
    conn = servers.source_connection(spec["source"], autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), SUM(total * 100) FROM `{TABLE}`")
            mysql_count, mysql_total = cur.fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    count, total, _ = _target_facts(spec)
    lags = sorted(lag for r in runs for lag, n in r["lags"] for _ in range(n))
    written = sum(t[2] for t in ticks)
    return {
        "follow": bool(spec.get("follow")),
        "rate": spec["rate"],
        "seconds": spec["seconds"],
        "written": written,
        "write_seconds": (ticks[-1][1] - ticks[0][0]) if ticks else 0.0,
        "initial_ok": first.ok,
        "runs": [{k: v for k, v in r.items() if k != "lags"} for r in runs],
        "visible": len(lags),
        "lag_p50": lags[len(lags) // 2] if lags else None,
        "lag_p95": lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else None,
        "lag_max": lags[-1] if lags else None,
        "exact": (int(mysql_count), int(mysql_total or 0)) == (count, total),
        "mysql": [int(mysql_count), int(mysql_total or 0)],
        "snowflake": [count, total],
        "writer_failed": failed,
        "ok": first.ok and all(r["ok"] for r in runs) and not failed and len(lags) == written,
    }


def measure_cdc_sustained(
    db: Any, sf: Any, rows: int, rate: int, seconds: float, follow: bool = False
) -> dict[str, Any]:
    how = "one invocation following the binlog" if follow else "cdc runs back to back"
    log(f"cdc under a sustained writer: {rate:,} changes/s for {seconds:g} s, {how}...")
    name = "cdc-follow" if follow else "cdc-sustained"
    spec = stack_spec(db, sf, name, "BENCHCDCFOL" if follow else "BENCHCDCSUS", 2, [])
    spec.update({"kind": "cdc_sustained", "rows": rows, "rate": rate, "seconds": seconds, "follow": follow})
    return run_child(spec, name)
