"""Runs of the local stack, each in a child process of its own (``python -m bench --child SPEC``), so runs share
no interpreter state and each child's peak memory is its own; the result comes back through a file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from aurora_replication.ledger.runs import TableItem
from bench import servers
from bench.settings import BENCH, ROOT, TABLE
from bench.usage import cpu_seconds, mariadb_pid, maxrss_mb, process_cpu


def run_child(spec: dict[str, Any], label: str, extra_args: list[str] | None = None) -> dict[str, Any]:
    """Run ``python -m bench --child SPEC`` in a fresh interpreter (from the project directory); its result
    comes back through a file."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec = {**spec, "out": str(out_file)}
        spec_file.write_text(json.dumps(spec))
        cmd = [sys.executable, *(extra_args or []), "-m", "bench", "--child", str(spec_file)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not out_file.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
            raise RuntimeError(f"{label}: child exited {proc.returncode}:\n" + "\n".join(tail))
        return dict(json.loads(out_file.read_text()))


def stack_spec(
    db: Any, sf: Any, name: str, schema: str, workers: int, steps: list[dict[str, Any]], processes: bool = False
) -> dict[str, Any]:
    """A child's stack runs; ``processes``: each worker container a process of its own, as in Lambda."""
    return {
        "kind": "stack",
        "home": str((BENCH / name).resolve()),
        "mariadb_pid": mariadb_pid(db),
        "source": db.url(),
        "target": sf.url("ANALYTICS", schema),
        "workers": workers,
        "steps": steps,
        "processes": processes,
    }


def fresh_stack(spec: dict[str, Any]) -> Any:
    from aurora_replication_dev.local.stack import LocalStack, parse_source_url, parse_target_url

    home = Path(spec["home"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "state.json").unlink(missing_ok=True)  # fresh state: no watermarks, no run history
    (home / "logs" / "handlers.log").unlink(missing_ok=True)  # this run's log only
    shutil.rmtree(home / "work", ignore_errors=True)
    stack = LocalStack(home)
    stack.start(parse_source_url(spec["source"]), parse_target_url(spec["target"]), spec.get("env") or None)
    return stack


def execute_source(url: str, statements: list[str]) -> list[int]:
    conn = servers.source_connection(url)
    counts = []
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                counts.append(cur.rowcount)
    finally:
        conn.close()
    return counts


def child_stack(spec: dict[str, Any]) -> dict[str, Any]:
    stack = fresh_stack(spec)
    rss_started = maxrss_mb()
    steps = []
    scheduler_seconds: list[float] = []  # each scheduler invocation's time, of the step in hand
    invoke = stack.invoke

    def timed(function: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return invoke(function, *args, **kwargs)
        finally:
            if function == "SchedulerFunction":
                scheduler_seconds.append(time.perf_counter() - started)

    stack.invoke = timed
    try:
        for step in spec["steps"]:
            written = time.perf_counter()
            changed = execute_source(spec["source"], step.get("before_sql", []))
            write_seconds = time.perf_counter() - written
            scheduler_seconds.clear()
            cpu_before = cpu_seconds()
            server = spec.get("mariadb_pid")
            server_before = process_cpu(server) if server else 0.0
            started = time.perf_counter()
            started_wall = time.time()
            # a step's own settings (EXTRACT_PROCESSES): its worker containers start with them
            with mock.patch.dict(os.environ, step.get("env", {})):
                outcome = stack.run(
                    step["request"],
                    workers=int(step.get("workers", spec["workers"])),
                    processes=bool(spec.get("processes")),
                )
            seconds = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            server_cpu = process_cpu(server) - server_before if server else None
            states = outcome.run.get("table_states", {})
            table_state = states.get(step.get("table", TABLE), {})
            if spec.get("all_tables"):
                table_state = _all_tables(states)
            steps.append(
                {
                    "name": step["name"],
                    "changed_rows": changed,
                    # the statements that wrote the step's changes (autocommit: each its own transaction)
                    "write_seconds": write_seconds,
                    "seconds": seconds,
                    # the scheduler's invocation (planning, and a cdc run's window read, staged and sent)
                    "scheduler_seconds": sum(scheduler_seconds),
                    # CPU of the process running the stack (handlers, moto, boto3): on a shared machine
                    # it says more than the wall time about what the run itself costs
                    "cpu_seconds": cpu,
                    # MariaDB's CPU over the whole run (planning, snapshots, reads): what the run cost the source
                    "mariadb_cpu_seconds": server_cpu,
                    "ok": outcome.ok,
                    "dlq_messages": outcome.dlq_messages,
                    "rows": copied_rows(table_state),
                    # from the table's started_at (scheduler) to finished_at (finaliser), without the
                    # local driver's polling at either end
                    "table_seconds": float(table_state.get("finished_at") or 0)
                    - float(table_state.get("started_at") or 0),
                    # from the scheduler's invocation to the table's commit (its rows visible in Snowflake):
                    # the run as its user sees it, without the local driver's teardown after it (stopping the
                    # worker processes, reading the outcome); None when the table has no finish time
                    "visible_seconds": float(table_state["finished_at"]) - started_wall
                    if table_state.get("finished_at")
                    else None,
                    # the finaliser's invocation that validated and committed the table (ledger + load table)
                    "finalise_seconds": float(table_state.get("finalise_seconds") or 0),
                    "table_state": {k: v for k, v in table_state.items() if k != "plan"},
                    # process containers: the largest peak of one worker process (None with threads)
                    "worker_peak_mb": outcome.worker_peak_mb,
                    # the table's finalise attempts (each invocation of its finaliser, with its steps)
                    "finalise_attempts": _finalise_attempts(stack, outcome.run_id, step.get("table", TABLE)),
                }
            )
    finally:
        stack.stop()
    return {"steps": steps, "maxrss_mb_after_start": rss_started, "maxrss_mb": maxrss_mb()}


def _finalise_attempts(stack: Any, run_id: str, table: str) -> list[dict[str, Any]]:
    from aurora_replication.ledger.store import StateStore

    attempts = StateStore(stack.table_name, stack.session.resource("dynamodb")).get_attempts(run_id)
    return [
        {"seconds": float(a["seconds"]), "status": a.get("status"), "steps": json.loads(a.get("steps") or "[]")}
        for a in attempts
        if a.get("table") == table and a.get("kind") == "finalise"
    ]


def _all_tables(states: dict[str, Any]) -> dict[str, Any]:
    """A run of many tables as one: how many ended in each status, rows, and the span from the first
    table's start to the last one's publish."""
    statuses: dict[str, int] = {}
    for t in states.values():
        statuses[str(t.get("status"))] = statuses.get(str(t.get("status")), 0) + 1
    started = [float(t["started_at"]) for t in states.values() if t.get("started_at")]
    finished = [float(t["finished_at"]) for t in states.values() if t.get("finished_at")]
    return {
        "tables": len(states),
        "statuses": statuses,
        "rows_copied": sum(copied_rows(t) for t in states.values()),
        "started_at": min(started) if started else 0,
        "finished_at": max(finished) if finished else 0,
        "validation": sorted({str(t.get("validation")) for t in states.values()})[:5],
    }


def copied_rows(table_state: TableItem) -> int:
    return int(table_state.get("rows_copied") or 0)
