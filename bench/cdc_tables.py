"""A cdc window of many changed tables (``bench_cdc_tables``): what the reader's invocation costs per table
when every table of the window has changes (planning, the window read, each table's batch files, the
window's PUT, each table's ledger records and messages), against a window of one table in the same run."""

from __future__ import annotations

from typing import Any

from bench import servers
from bench.children import run_child, stack_spec
from bench.output import log

DATABASE = "bench_cdc_tables"
TABLES = 60
ROWS = 20
CHANGED = 10  # rows updated in each table before the window


def build_tables(db: Any, tables: int) -> None:
    """``tables`` tables of ``ROWS`` rows each, made again every run (the cdc state of an earlier run is
    the stack's, which is new too)."""
    conn = servers.server_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
            cur.execute(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{DATABASE}`")  # where seq_1_to_N is
            for i in range(tables):
                name = f"`{DATABASE}`.`t{i:03d}`"
                cur.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(20), n INT)")
                cur.execute(f"INSERT INTO {name} SELECT seq, CONCAT('v', seq), seq FROM seq_1_to_{ROWS}")
    finally:
        conn.close()


def measure_cdc_tables(db: Any, sf: Any, tables: int = TABLES) -> dict[str, Any]:
    build_tables(db, tables)
    changes = [f"UPDATE `t{i:03d}` SET n = n + 1 WHERE id <= {CHANGED}" for i in range(tables)]
    request = {"tables": "*", "mode": "cdc"}
    steps = [
        {"name": "initial", "request": request},
        {"name": "window", "request": request, "before_sql": changes},
    ]
    spec = stack_spec(db, sf, "cdc-tables", "BENCHCDCTABLES", 2, steps, processes=True)
    spec["source"] = db.url().rsplit("/", 1)[0] + f"/{DATABASE}"
    spec["all_tables"] = True
    log(f"cdc: a window of {tables} changed tables ({CHANGED} rows each), after their initial copy...")
    step = {s["name"]: s for s in run_child(spec, "cdc tables")["steps"]}["window"]
    published = int(step["table_state"].get("statuses", {}).get("published", 0))
    return {
        "tables": tables,
        "changes": tables * CHANGED,
        "scheduler_seconds": step["scheduler_seconds"],
        "visible_seconds": step["visible_seconds"],
        "ok": step["ok"] and published == tables,
        "published": published,
    }


def report_cdc_tables(many: dict[str, Any], one: dict[str, Any] | None) -> None:
    """``one``: the cdc bench's window of one table (its 1,000 changes), measured in the same run."""
    if not many:
        return
    line = (
        f"a cdc window of {many['tables']} changed tables ({many['changes']:,} changes): the reader's invocation "
        f"{many['scheduler_seconds']:.2f} s, {1000 * many['scheduler_seconds'] / many['tables']:.0f} ms a table"
    )
    if one and one.get("scheduler_seconds"):
        line += f" ({many['scheduler_seconds'] / one['scheduler_seconds']:.1f} x a window of one table's {one['scheduler_seconds']:.2f} s)"
    line += f"; the last table visible after {many['visible_seconds']:.1f} s; " + (
        "every table published" if many["ok"] else f"NOT ALL PUBLISHED ({many['published']})"
    )
    print(line)
