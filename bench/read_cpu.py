"""Issue 28: the table read as one chunk in 1, 2 and 4 parts, the wall time and the CPU of each side (MariaDB,
the reader), and the source's and the worker's CPU per million rows against their targets."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import servers
from bench.output import fmt
from bench.settings import BENCH, DATABASE, TABLE, TARGET_SOURCE_CPU_RATIO, TARGET_WORKER_CPU_SECONDS
from bench.usage import mariadb_pid, process_cpu

READ_PARTS = (1, 2, 4)


def measure_read_cpu(db: Any) -> dict[str, Any]:
    """The whole table read as one chunk into its staging file, with its count and checksum, in one
    snapshot: the wall time, MariaDB's CPU seconds and the reading processes' CPU seconds. First as the
    worker reads by default (EXTRACT_FORMAT=worker: a plain SELECT through the C client, each row's line
    and checksum term made on the worker, zstd; what issue 28's worker and source targets read), then
    as MySQL-formatted lines with their MD5 terms (EXTRACT_FORMAT=server) in 1, 2 and 4 parts, as a worker
    reads with EXTRACT_PROCESSES: what a part costs each side says how far parts scale."""
    from types import SimpleNamespace

    from aurora_replication.models import ChunkMessage
    from aurora_replication.pipeline import extract as pipeline_extract
    from aurora_replication.pipeline import extract_parts
    from aurora_replication.pipeline.extract_part import PartJob, read_part
    from aurora_replication.source import bulk as source_bulk
    from aurora_replication.source import connect as source_connect
    from aurora_replication.source import discover
    from aurora_replication.source import read as source_read

    server = mariadb_pid(db)
    if server is None:
        return {"available": False, "reason": f"MariaDB's pid file under {db.base} not found"}
    settings = servers.source_settings(db.url())
    work = Path(tempfile.mkdtemp(prefix="read-cpu-", dir=BENCH.resolve()))
    local = str(work / "data-A.csv.gz")
    conn = source_connect.connect(settings)
    bulk = source_bulk.connect(settings)
    runs = []
    try:
        plan = discover.discover_table(conn, DATABASE, TABLE)
        msg = ChunkMessage(run_id="bench", chunk_id=0, chunk_count=1, plan=plan)

        def read(parts: int, reader: str = "server") -> tuple[int, tuple[int, str] | None]:
            if reader == "worker" and parts > 1:  # EXTRACT_FORMAT=worker in parts (cut on pymysql's connection)
                with source_read.snapshot(bulk):
                    zst = local.replace(".csv.gz", ".csv.zst")
                    got = extract_parts.read_in_parts(
                        bulk, lambda _: settings, plan, msg, "A", zst, parts, 1000, True, "worker", conn
                    )
                    return (got.rows if got else 0), (got.source if got else None)
            if reader == "worker":  # EXTRACT_FORMAT=worker
                with source_read.snapshot(bulk):
                    small = SimpleNamespace(small_chunk_rows=0)
                    zst = local.replace(".csv.gz", ".csv.zst")
                    _, staged, source = pipeline_extract._on_worker(
                        bulk,
                        plan,
                        msg,
                        None,
                        "A",
                        zst,
                        small,  # type: ignore[arg-type]
                        True,
                    )
                    return (staged.rows if staged else 0), source
            with source_read.snapshot(conn):
                if parts == 1:
                    part = read_part(conn, PartJob(settings, plan, None, None, True, local, 0, "A"))
                    return part.rows, None
                got = extract_parts.read_in_parts(conn, lambda _: settings, plan, msg, "A", local, parts, 1000, True)
                return (got.rows if got else 0), None

        read(max(READ_PARTS))  # starts the helpers, warms the buffer pool
        read(max(READ_PARTS), "worker")
        cases = [("worker", p) for p in READ_PARTS] + [("server", p) for p in READ_PARTS]
        for reader, parts in cases:
            for f in work.iterdir():
                f.unlink()
            helpers = {h.proc.pid: process_cpu(h.proc.pid) for h in extract_parts._idle}
            server_before, own_before, started = process_cpu(server), os.times(), time.perf_counter()
            rows, source = read(parts, reader)
            seconds = time.perf_counter() - started
            own = os.times()
            runs.append(
                {
                    "format": reader,
                    "parts": parts,
                    "rows": rows,
                    "seconds": seconds,
                    "mariadb_cpu_seconds": process_cpu(server) - server_before,
                    "worker_cpu_seconds": own.user - own_before.user + own.system - own_before.system,
                    "helpers_cpu_seconds": sum(process_cpu(pid) - cpu for pid, cpu in helpers.items()),
                    "checksum": source,
                }
            )
        # the checksum the worker computed is MySQL's: the read is only worth timing if it is right
        mysqls = source_read.chunk_checksum(conn, plan, None, None)
        for run in runs:
            if run["format"] == "worker":
                run["checksum_ok"] = run["checksum"] == mysqls
    finally:
        conn.close()
        bulk.close()
        extract_parts.close_helpers()
        shutil.rmtree(work, ignore_errors=True)
    return {"available": True, "cpus": os.cpu_count(), "runs": runs}


def report_read_cpu(r: dict[str, Any]) -> None:
    if not r.get("available"):
        return
    print(f"\nthe table read as one chunk into its staging file, with its checksum, one snapshot, {r['cpus']} CPUs:")
    print(f"{'format':<7} {'parts':>5} {'seconds':>8} {'MariaDB CPU s':>14} {'worker CPU s':>13} {'helpers CPU s':>14}")
    for x in r["runs"]:
        print(
            f"{x.get('format', 'server'):<7} {x['parts']:>5} {x['seconds']:>8.2f} {x['mariadb_cpu_seconds']:>14.2f} "
            f"{x['worker_cpu_seconds']:>13.2f} {x['helpers_cpu_seconds']:>14.2f}"
        )
    worker = [x for x in r["runs"] if x.get("format") == "worker"]
    if worker:
        right = all(x.get("checksum_ok") for x in worker)
        print(
            "  worker: plain SELECTs through the C client, lines and checksum terms made on the worker, zstd; "
            f"its checksum {'equals' if right else 'DIFFERS FROM'} MySQL's own in every case"
        )
    one = next(x for x in r["runs"] if x.get("format", "server") == "server" and x["parts"] == 1)
    per_side = max(one["mariadb_cpu_seconds"], one["worker_cpu_seconds"])
    print(
        f"  server, one part keeps a MariaDB thread and the worker busy ({one['mariadb_cpu_seconds']:.2f} and "
        f"{one['worker_cpu_seconds']:.2f} CPU s in {one['seconds']:.2f} s); with n parts and n cores to spare on "
        f"each side the read would take about {per_side:.2f} / n s (6 vCPUs, Lambda's most: {per_side / 6:.2f} s)"
    )


def source_cost_targets(r: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    """Issue 28's source and worker targets, and the CPU per million rows they are read from."""
    rows = r["rows"]
    per_million = 1_000_000 / rows
    dump = r["ceiling"].get("mariadb_cpu_seconds")
    full = r.get("one_worker_process") or r["one_worker"]
    run = full.get("mariadb_cpu_seconds")
    reads = r.get("read_cpu", {}).get("runs", [])
    worker_read = next((x for x in reads if x.get("format") == "worker" and x["parts"] == 1), None)
    worker_cpu = (
        worker_read["worker_cpu_seconds"] * 1_000_000 / worker_read["rows"]
        if worker_read and worker_read["rows"] and worker_read.get("checksum_ok")
        else None
    )
    print("\nCPU seconds per million rows (issue 28):")
    for label, value in (
        ("MariaDB, the mariadb --quick dump", dump * per_million if dump is not None else None),
        ("MariaDB, the full run, 1 worker process", run * per_million if run is not None else None),
        ("MariaDB, the full run, 1 worker (thread)", (r["one_worker"].get("mariadb_cpu_seconds") or 0) * per_million),
        (
            "MariaDB, reading the table as one chunk (worker format)",
            worker_read["mariadb_cpu_seconds"] * 1_000_000 / worker_read["rows"] if worker_read else None,
        ),
        ("the worker: read, encode, checksum, compress", worker_cpu),
    ):
        print(f"  {label:<58} {fmt(value, '6.2f')}")
    ratio = run / dump if run is not None and dump else None
    return [
        (
            f"the source: MariaDB CPU of the full run <= {TARGET_SOURCE_CPU_RATIO:g} x the dump's",
            ratio,
            lambda v: v <= TARGET_SOURCE_CPU_RATIO,
            "x",
        ),
        (
            f"the worker: CPU s per million rows <= {TARGET_WORKER_CPU_SECONDS:g}",
            worker_cpu,
            lambda v: v <= TARGET_WORKER_CPU_SECONDS,
            "s",
        ),
    ]
