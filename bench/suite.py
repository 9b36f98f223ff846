"""The whole bench (``make bench`` without an ``--*-only`` option): every measure in turn on one pair of servers,
then the report, the results file and the exit code (0 when every run ended ok)."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import orders, servers
from bench.baselines import measure_ceiling, measure_dlt
from bench.cdc import measure_cdc
from bench.copies import measure_copies, measure_memory
from bench.finaliser import measure_finaliser
from bench.output import log, write_results
from bench.phases import measure_profile
from bench.planning import measure_planning
from bench.read_cpu import READ_PARTS, measure_read_cpu
from bench.report import report
from bench.settings import DATABASE, PLAN_CHUNKS, PLAN_SIZES, SMALL_ROWS
from bench.small_tables import measure_small_tables


def run_all(args: argparse.Namespace, rows: int) -> int:
    started_all = time.perf_counter()
    results: dict[str, Any] = {
        "rows": rows,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    with servers.started(args.keep_servers) as (db, sf):
        results["table"] = orders.build_table(db, rows)
        with db.connect(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            results["machine"]["mariadb"] = cur.fetchone()[0]

        log("ceiling: mariadb --quick to /dev/null...")
        results["ceiling"] = measure_ceiling(db, rows)

        results.update(measure_copies(db, sf, rows))

        results["finaliser"] = measure_finaliser(db, sf, rows)

        log(f"the table read as one chunk in {', '.join(map(str, READ_PARTS))} parts: wall and CPU seconds...")
        results["read_cpu"] = measure_read_cpu(db)

        if args.small_tables:
            results["small_tables"] = measure_small_tables(db, sf, args.small_tables, SMALL_ROWS, args.small_processes)
        else:
            results["small_tables"] = {"available": False, "reason": "skipped (--small-tables 0)"}

        if args.no_cdc:
            results["cdc"] = {"available": False, "reason": "skipped (--no-cdc)"}
        else:
            results["cdc"] = measure_cdc(db, sf, rows, str(Path(args.out).resolve().parent) if args.profile else None)

        if args.no_peer:
            results["peer"] = {"available": False, "reason": "skipped (--no-peer)"}
        else:
            log("peer: dlt sql_database (pyarrow backend) into DuckDB...")
            results["peer"] = measure_dlt(db, rows)

        results["memory"] = measure_memory(db, sf, rows)

        if not args.no_planning:
            results["planning"].update(measure_planning(db, PLAN_SIZES, PLAN_CHUNKS))

        if args.profile:
            results["profile"] = measure_profile(db, sf, rows, args.out)
    results["bench_seconds"] = time.perf_counter() - started_all
    report(results)
    write_results(args.out, results)
    cdc_ok = results["cdc"].get("ok", True)
    return (
        0
        if cdc_ok
        and results["small_tables"].get("ok", True)
        and all(
            r.get("ok")
            for r in (
                results["one_worker"],
                results["two_workers"],
                results["one_worker_process"],
                results["two_worker_processes"],
                results["one_worker_process_parts"],
                results["incremental"],
                results["finaliser"],
            )
        )
        else 1
    )
