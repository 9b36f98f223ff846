"""Issue 9: planning the chunk bounds of tables of 1M and 10M rows (``--planning-only`` runs only this)."""

from __future__ import annotations

import time
from typing import Any

from bench import servers
from bench.output import fmt, log, print_targets, write_results
from bench.settings import (
    BENCH,
    DATABASE,
    FULL_CHUNK_ROWS,
    PLAN_CHUNKS,
    PLAN_SIZES,
    TARGET_CHUNK_BOUND,
    TARGET_PLAN_GROWTH,
)

PLAN_DDL = """CREATE TABLE `{table}` (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    email VARCHAR(120) NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    placed_at DATETIME(6) NOT NULL
) ENGINE=InnoDB CHARACTER SET utf8mb4"""


PLAN_FILL = """INSERT INTO `{table}` (id, customer_id, email, total, placed_at)
SELECT seq, 1 + (seq * 7919) % 50000, CONCAT('customer', (seq * 7919) % 50000, '@example.com'),
       ROUND((seq * 104729 % 10000000) / 100, 2), TIMESTAMP('2021-01-01') + INTERVAL (seq * 31) SECOND
FROM seq_1_to_{rows}"""


def plan_table_name(rows: int) -> str:
    return f"plan_{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"plan_{rows}"


def build_plan_table(db: Any, rows: int) -> dict[str, Any]:
    """``bench.plan_<n>``: five columns, ``rows`` rows, built once in MariaDB and then reused."""
    table = plan_table_name(rows)
    conn = servers.server_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{DATABASE}`")
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (DATABASE, table),
            )
            if int(cur.fetchone()[0]):  # type: ignore[index]
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                if int(cur.fetchone()[0]) == rows:  # type: ignore[index]
                    log(f"table {DATABASE}.{table} has {rows:,} rows already (cached)")
                    return {"table": table, "built": False, "seconds": 0.0}
            log(f"building {DATABASE}.{table} with {rows:,} rows (once; cached under {BENCH})...")
            started = time.perf_counter()
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            cur.execute(PLAN_DDL.format(table=table))
            cur.execute(PLAN_FILL.format(table=table, rows=int(rows)))
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
            seconds = time.perf_counter() - started
            log(f"  built in {seconds:.1f} s")
            return {"table": table, "built": True, "seconds": seconds}
    finally:
        conn.close()


def measure_planning(db: Any, sizes: tuple[int, ...], chunks: tuple[int, ...], tries: int = 3) -> dict[str, Any]:
    """``source_read.chunk_bounds`` (what the scheduler calls) on each planning table at each chunk
    size: the best of ``tries`` runs, its statements, and the rows in each planned chunk counted
    afterwards; and, once per table, the OFFSET walk that planning used before (it reads every row)."""
    import pymysql

    from aurora_replication.keyset import range_predicate
    from aurora_replication.source import bounds
    from aurora_replication.source import connect as source_connect
    from aurora_replication.source import read as source_read
    from aurora_replication.source.sql import mysql_ident

    conn = pymysql.connect(
        host="127.0.0.1",
        port=db.port,
        user=db.user,
        password=db.password,
        database=DATABASE,
        charset="utf8mb4",
        autocommit=True,
        conv=source_connect.ENCODERS_ONLY,
        init_command="SET time_zone = '+00:00'",
    )
    runs: list[dict[str, Any]] = []
    walks: list[dict[str, Any]] = []
    try:
        for rows in sizes:
            table = build_plan_table(db, rows)["table"]
            for chunk_rows in chunks:
                log(f"planning: {table}, chunk_rows={chunk_rows:,} (best of {tries})...")
                best: tuple[float, list[Any], Any] | None = None
                for _ in range(tries):
                    stats = bounds.PlanStats()
                    started = time.perf_counter()
                    planned = source_read.chunk_bounds(conn, table, ["id"], chunk_rows, stats=stats)
                    seconds = time.perf_counter() - started
                    if best is None or seconds < best[0]:
                        best = (seconds, planned, stats)
                assert best is not None
                seconds, planned, stats = best
                counts = []
                with conn.cursor() as cur:
                    for lower, upper in planned:
                        where, params = range_predicate(["id"], lower, upper, mysql_ident)
                        cur.execute(f"SELECT COUNT(*) FROM {mysql_ident(table)} WHERE {where}", params)
                        counts.append(int(cur.fetchone()[0]))  # type: ignore[index]
                runs.append(
                    {
                        "rows": rows,
                        "chunk_rows": chunk_rows,
                        "seconds": seconds,
                        "chunks": len(planned),
                        "statements": stats.statements,
                        "method": stats.method,
                        "rows_walked": stats.rows_walked,
                        "calibration": stats.calibration,
                        "exact": sum(counts) == rows,
                        "largest_chunk": max(counts),
                        "smallest_chunk": min(counts[:-1] or counts),  # the last, open range may be short
                    }
                )
            log(f"planning: {table}, the old OFFSET walk at chunk_rows={FULL_CHUNK_ROWS:,}...")
            planner = bounds._Planner(conn, table, ["id"], FULL_CHUNK_ROWS, bounds.PlanStats())
            planner.describe()
            started = time.perf_counter()
            walked = planner.walk(None, None)[0]
            walks.append(
                {
                    "rows": rows,
                    "chunk_rows": FULL_CHUNK_ROWS,
                    "seconds": time.perf_counter() - started,
                    "chunks": len(walked),
                }
            )
    finally:
        conn.close()

    def seconds_at(rows: int, chunk_rows: int, of: list[dict[str, Any]]) -> float | None:
        return next((r["seconds"] for r in of if r["rows"] == rows and r["chunk_rows"] == chunk_rows), None)

    small, large = min(sizes), max(sizes)
    growth = {}
    for chunk_rows in chunks:
        a, b = seconds_at(small, chunk_rows, runs), seconds_at(large, chunk_rows, runs)
        growth[chunk_rows] = b / a if a and b else None
    a, b = seconds_at(small, FULL_CHUNK_ROWS, walks), seconds_at(large, FULL_CHUNK_ROWS, walks)
    return {
        "runs": runs,
        "old_walk": walks,
        "sizes": [small, large],
        "growth": growth,
        "old_walk_growth": b / a if a and b else None,
    }


def report_planning(p: dict[str, Any]) -> None:
    print("\nplanning the chunk bounds (source_read.chunk_bounds, best of 3; rows per chunk counted afterwards):")
    print(
        f"{'rows':>11} {'chunk_rows':>10} {'chunks':>6} {'statements':>10} {'seconds':>8} {'ms/chunk':>8} "
        f"{'largest':>8} {'smallest':>8}  exact"
    )
    for r in p["runs"]:
        print(
            f"{r['rows']:>11,} {r['chunk_rows']:>10,} {r['chunks']:>6} {r['statements']:>10} {r['seconds']:>8.3f} "
            f"{1000 * r['seconds'] / r['chunks']:>8.2f} {r['largest_chunk'] / r['chunk_rows']:>7.2f}x "
            f"{r['smallest_chunk'] / r['chunk_rows']:>7.2f}x  {'yes' if r['exact'] else 'NO'}  ({r['method']})"
        )
    for w in p["old_walk"]:
        print(
            f"{w['rows']:>11,} {w['chunk_rows']:>10,} {w['chunks']:>6} {'':>10} {w['seconds']:>8.3f}  the old OFFSET walk"
        )
    small, large = p["sizes"]
    for chunk_rows, g in p["growth"].items():
        print(f"  growth {small:,} -> {large:,} rows at {chunk_rows:,}-row chunks: {fmt(g, '.2f')}x")
    print(f"  the old walk's growth: {fmt(p['old_walk_growth'], '.2f')}x")


def planning_targets(p: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    small, large = p["sizes"]
    return [
        (
            f"planning {large // 1_000_000}M / {small // 1_000_000}M rows < {TARGET_PLAN_GROWTH:g}x "
            f"({FULL_CHUNK_ROWS:,}-row chunks)",
            p["growth"].get(FULL_CHUNK_ROWS),
            lambda v: v < TARGET_PLAN_GROWTH,
            "x",
        ),
        (
            f"planned chunks within {TARGET_CHUNK_BOUND:g}x chunk_rows, partition exact",
            max(r["largest_chunk"] / r["chunk_rows"] for r in p["runs"])
            if all(r["exact"] for r in p["runs"])
            else None,
            lambda v: v <= TARGET_CHUNK_BOUND,
            "x",
        ),
    ]


def planning_only(out: str, keep_servers: bool) -> int:
    """``--planning-only``: MariaDB, the planning tables, and the planning measurements; nothing else."""
    with servers.started(keep_servers, emulator=False) as (db, _):
        planning = measure_planning(db, PLAN_SIZES, PLAN_CHUNKS)
    report_planning(planning)
    print("\ntargets (issue 9):")
    planning["targets"] = print_targets(planning_targets(planning))
    write_results(out, {"planning": planning})
    return 0 if all(t["verdict"] == "met" for t in planning["targets"]) else 1
