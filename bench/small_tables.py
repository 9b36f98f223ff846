"""Issue 14: many small tables (``bench_small``), one full run of ``*`` with 2 workers (``--small-only`` runs only this)."""

from __future__ import annotations

from typing import Any

from bench import servers
from bench.children import run_child, stack_spec
from bench.output import log, print_targets, write_results
from bench.settings import SMALL_DATABASE, SMALL_ROWS, TARGET_SMALL_SECONDS


def build_small_tables(db: Any, tables: int, rows: int) -> dict[str, Any]:
    """``bench_small``: ``tables`` tables of ``rows`` rows each (key, text, decimal, date, NULLs), built
    once and reused while the count matches."""
    conn = servers.server_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (SMALL_DATABASE,))
            if int(cur.fetchone()[0]) == tables:  # type: ignore[index]
                cur.execute(f"SELECT COUNT(*) FROM `{SMALL_DATABASE}`.`t{tables - 1:04d}`")
                if int(cur.fetchone()[0]) == rows:  # type: ignore[index]
                    log(f"database {SMALL_DATABASE} has {tables} tables of {rows} rows already (cached)")
                    return {"built": False}
            log(f"building {SMALL_DATABASE}: {tables} tables of {rows} rows...")
            cur.execute(f"DROP DATABASE IF EXISTS `{SMALL_DATABASE}`")
            cur.execute(f"CREATE DATABASE `{SMALL_DATABASE}` CHARACTER SET utf8mb4")
            for i in range(tables):
                name = f"`{SMALL_DATABASE}`.`t{i:04d}`"
                cur.execute(
                    f"CREATE TABLE {name} (id INT PRIMARY KEY, name VARCHAR(40) NULL, amount DECIMAL(10,2) NULL, "
                    "day DATE NULL) ENGINE=InnoDB"
                )
                values = ", ".join(
                    f"({r + 1}, {'NULL' if r % 3 == 2 else repr(f'row {r} of t{i}')}, {r * 1.25 + i:.2f}, "
                    f"{'NULL' if r % 2 else repr('2024-01-01')})"
                    for r in range(rows)
                )
                cur.execute(f"INSERT INTO {name} VALUES {values}")
            return {"built": True}
    finally:
        conn.close()


def measure_small_tables(db: Any, sf: Any, tables: int, rows: int, processes: bool = False) -> dict[str, Any]:
    build_small_tables(db, tables, rows)
    steps = [{"name": "full", "request": {"tables": "*", "mode": "full"}}]
    spec = stack_spec(db, sf, "small", "BENCHSMALL", 2, steps, processes=processes)
    spec["source"] = db.url().rsplit("/", 1)[0] + f"/{SMALL_DATABASE}"
    spec["all_tables"] = True
    kind = "worker processes" if processes else "workers"
    log(f"many small tables: {tables} tables of {rows} rows, one full run of `*`, 2 {kind}...")
    step = run_child(spec, "small tables")["steps"][0]
    published = int(step["table_state"].get("statuses", {}).get("published", 0))
    return {
        "tables": tables,
        "rows_per_table": rows,
        "seconds": step["seconds"],
        "table_seconds": step["table_seconds"],
        "seconds_per_table": step["seconds"] / tables,
        "cpu_seconds": step["cpu_seconds"],
        "ok": step["ok"] and published == tables and step["rows"] == tables * rows,
        "published": published,
        "rows": step["rows"],
        "dlq_messages": step["dlq_messages"],
        "processes": processes,
    }


def small_tables_targets(small: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    if not small.get("tables"):
        return []
    return [
        (
            f"{small['tables']} tables of {small['rows_per_table']} rows, `*`, 2 "
            + ("worker processes" if small.get("processes") else "workers")
            + f" < {TARGET_SMALL_SECONDS:g} s",
            small["seconds"] if small.get("ok") else None,
            lambda v: v < TARGET_SMALL_SECONDS,
            "s",
        )
    ]


def report_small_tables(small: dict[str, Any]) -> None:
    if not small.get("tables"):
        return
    print(
        f"\nmany small tables: {small['tables']} tables of {small['rows_per_table']} rows, one full run of `*`, "
        f"2 {'worker processes' if small.get('processes') else 'workers'}: {small['seconds']:.2f} s "
        f"({small['seconds_per_table']:.3f} s a table; first table start to "
        f"last publish {small['table_seconds']:.2f} s; {small['cpu_seconds']:.1f} CPU s in the stack's process); "
        f"{small['published']} published, {small['rows']:,} rows" + ("" if small["ok"] else " -- NOT ALL PUBLISHED")
    )


def small_only(out: str, keep_servers: bool, tables: int, processes: bool = False) -> int:
    """``--small-only``: MariaDB, the emulator and the many-small-tables run; nothing else."""
    with servers.started(keep_servers) as (db, sf):
        small = measure_small_tables(db, sf, tables, SMALL_ROWS, processes)
    report_small_tables(small)
    print("\ntargets (issue 14):")
    small["targets"] = print_targets(small_tables_targets(small))
    write_results(out, {"small_tables": small})
    return 0 if small["ok"] else 1
