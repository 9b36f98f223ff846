"""The project's own runs of the orders table over the local stack: full runs with 1 and 2 workers (threads, then
processes as in Lambda, then reading each chunk in parts), an incremental run after a few changed rows, and the
peak memory of a full run at several chunk sizes."""

from __future__ import annotations

from typing import Any

from bench.children import run_child, stack_spec
from bench.orders import change_rows_sql
from bench.output import log
from bench.settings import FULL_CHUNK_ROWS, MEMORY_CHUNKS, PARTS, TABLE

FULL = {"tables": TABLE, "mode": "full", "chunk_rows": FULL_CHUNK_ROWS}
INCREMENTAL = {"tables": TABLE, "mode": "incremental", "chunk_rows": FULL_CHUNK_ROWS}


def measure_copies(db: Any, sf: Any, rows: int) -> dict[str, Any]:
    """The full and incremental runs, each stack in a child of its own; their steps by name in the results."""
    full, incremental = FULL, INCREMENTAL
    results: dict[str, Any] = {}
    log("this project, 1 worker: full run, then an incremental run after 1,000 changed rows...")
    one = run_child(
        stack_spec(
            db,
            sf,
            "stack-1",
            "BENCH1",
            1,
            [
                {"name": "full", "request": full},
                {"name": "incremental", "request": incremental, "before_sql": [change_rows_sql(rows)]},
            ],
        ),
        "1 worker",
    )
    results["one_worker"] = one["steps"][0]
    results["incremental"] = one["steps"][1]
    results["planning"] = {"plan_seconds": float(one["steps"][0]["table_state"].get("plan_seconds", "nan"))}

    log("this project, 2 workers: full run...")
    two = run_child(stack_spec(db, sf, "stack-2", "BENCH2", 2, [{"name": "full", "request": full}]), "2 workers")
    results["two_workers"] = two["steps"][0]

    log(
        "this project, worker containers as processes (as in Lambda): full with 1, then with 2, then with 1 "
        f"reading each chunk in {PARTS} parts (EXTRACT_PROCESSES={PARTS})..."
    )
    parts_env = {"EXTRACT_PROCESSES": str(PARTS)}
    procs = run_child(
        stack_spec(
            db,
            sf,
            "stack-processes",
            "BENCHPROC",
            1,
            [
                {"name": "full", "request": full, "workers": 1},
                {"name": "full", "request": full, "workers": 2},
                {"name": "full", "request": full, "workers": 1, "env": parts_env},
            ],
            processes=True,
        ),
        "worker processes",
    )
    (results["one_worker_process"], results["two_worker_processes"], results["one_worker_process_parts"]) = procs[
        "steps"
    ]
    return results


def measure_memory(db: Any, sf: Any, rows: int) -> list[dict[str, Any]]:
    """One full run, 1 worker process, at each of ``MEMORY_CHUNKS`` (at most the table's rows)."""
    memory = []
    for chunk in sorted({min(c, rows) for c in MEMORY_CHUNKS}):
        log(f"memory: one full run, 1 worker process, chunk_rows={chunk:,}...")
        req = {"tables": TABLE, "mode": "full", "chunk_rows": chunk}
        m = run_child(
            stack_spec(
                db, sf, f"mem-{chunk}", f"BENCHMEM{chunk}", 1, [{"name": "full", "request": req}], processes=True
            ),
            "memory",
        )
        memory.append(
            {
                "chunk_rows": chunk,
                # the worker container's own peak (its process: handlers, libraries, the chunk's work)
                "worker_peak_mb": m["steps"][0]["worker_peak_mb"],
                # the process running the rest of the local stack (moto, the scheduler, the driver)
                "maxrss_mb": m["maxrss_mb"],
                "maxrss_mb_after_start": m["maxrss_mb_after_start"],
                "seconds": m["steps"][0]["seconds"],
                "ok": m["steps"][0]["ok"],
            }
        )
    return memory
