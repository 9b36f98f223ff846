"""Issue 27: the finaliser's own time at two table sizes, the rows asked and a tenth of them (``--finaliser-only``
runs only this)."""

from __future__ import annotations

from typing import Any

from bench import orders, servers
from bench.children import run_child, stack_spec
from bench.output import fmt, log, print_targets, write_results
from bench.settings import CHANGED_ROWS, DATABASE, FULL_CHUNK_ROWS, TABLE, TARGET_FINALISER_GROWTH

FINALISER_TABLE = "orders_f{rows}"


def build_fraction(db: Any, rows: int) -> str:
    """A table of the orders table's first ``rows`` rows (same columns, same values), built once."""
    name = FINALISER_TABLE.format(rows=rows)
    conn = servers.server_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"USE `{DATABASE}`")
            cur.execute(f"CREATE TABLE IF NOT EXISTS `{name}` LIKE `{TABLE}`")
            cur.execute(f"SELECT COUNT(*) FROM `{name}`")
            if int(cur.fetchone()[0]) != rows:  # type: ignore[index]
                log(f"building {DATABASE}.{name} from the first {rows:,} rows of {TABLE} (once)...")
                cur.execute(f"TRUNCATE TABLE `{name}`")
                cur.execute(f"INSERT INTO `{name}` SELECT * FROM `{TABLE}` ORDER BY id LIMIT {int(rows)}")
                cur.execute(f"ANALYZE TABLE `{name}`")
                cur.fetchall()
    finally:
        conn.close()
    return name


def finaliser_figures(step: dict[str, Any]) -> dict[str, Any]:
    """What one table's finaliser cost: its validation (summed over its invocations), its own time (its
    invocations less the time they waited for the long statements), and each long statement's own time."""
    attempts = step.get("finalise_attempts") or []
    statements = {k: float(v) for k, v in (step["table_state"].get("statement_seconds") or {}).items()}
    validate = sum(lap[2] for a in attempts for lap in a["steps"] if lap[0] == "validate")
    # what the invocations spent waiting inside their commit step for a long statement, at most its run time
    commit_waits = sum(lap[2] for a in attempts for lap in a["steps"] if lap[0] in ("publish", "merge", "reconcile"))
    total = sum(a["seconds"] for a in attempts)
    own = max(0.0, total - min(commit_waits, sum(statements.values())))
    return {
        "rows": step["rows"],
        "chunks": int(step["table_state"].get("chunk_count") or 0),
        "invocations": len(attempts),
        "validate_seconds": validate,
        "finaliser_seconds": total,
        "own_seconds": own,
        "statement_seconds": statements,
        "ok": step["ok"],
    }


def measure_finaliser(db: Any, sf: Any, rows: int) -> dict[str, Any]:
    """The finaliser at two table sizes (``rows`` and a tenth of it): one full run of each, one worker."""
    small = max(CHANGED_ROWS, rows // 10)
    tables = [(small, build_fraction(db, small)), (rows, TABLE)]
    log(f"the finaliser at {small:,} and {rows:,} rows: a full run of each, 1 worker...")
    steps = [
        {"name": f"full-{n}", "table": t, "request": {"tables": t, "mode": "full", "chunk_rows": FULL_CHUNK_ROWS}}
        for n, t in tables
    ]
    out = run_child(stack_spec(db, sf, "finaliser", "BENCHFIN", 1, steps), "finaliser")
    sizes = [finaliser_figures(step) for step in out["steps"]]
    a, b = sizes
    ratio = (b["own_seconds"] / a["own_seconds"]) if a["own_seconds"] else None
    publish = [s["statement_seconds"].get("publish") for s in sizes]
    return {
        "sizes": sizes,
        "rows_ratio": b["rows"] / a["rows"],
        "own_ratio": ratio,
        "validate_ratio": (b["validate_seconds"] / a["validate_seconds"]) if a["validate_seconds"] else None,
        "publish_ratio": (publish[1] / publish[0]) if publish[0] and publish[1] else None,
        "ok": all(s["ok"] for s in sizes),
    }


def report_finaliser(f: dict[str, Any]) -> None:
    print()
    print("The finaliser per table (full run, 1 worker), at two sizes: what its invocations do themselves")
    print("(read the ledger, validate, start and poll the long statements), and the publish statement, which")
    print("runs asynchronously in Snowflake and grows with the table by design:")
    print()
    print("| rows | chunks | invocations | validation s | finaliser's own s | publish statement s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in f["sizes"]:
        print(
            f"| {s['rows']:,} | {s['chunks']} | {s['invocations']} | {s['validate_seconds']:.3f} | "
            f"{s['own_seconds']:.3f} | {fmt(s['statement_seconds'].get('publish'), '.3f')} |"
        )
    print()
    print(
        f"{f['rows_ratio']:.0f} x the rows: the finaliser's own time x {fmt(f['own_ratio'], '.2f')} (target <= "
        f"{TARGET_FINALISER_GROWTH:.0f} x), its validation x {fmt(f['validate_ratio'], '.2f')}, the publish "
        f"statement x {fmt(f['publish_ratio'], '.2f')}"
    )


def finaliser_targets(f: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    return [
        (
            f"finaliser's own time at {f['rows_ratio']:.0f} x the rows <= {TARGET_FINALISER_GROWTH:.0f} x",
            f["own_ratio"],
            lambda v: v is not None and v <= TARGET_FINALISER_GROWTH,
            "x",
        )
    ]


def finaliser_only(out: str, keep_servers: bool, rows: int) -> int:
    """``--finaliser-only``: the table (built once) and the finaliser at two sizes; nothing else."""
    with servers.started(keep_servers) as (db, sf):
        orders.build_table(db, rows)
        finaliser = measure_finaliser(db, sf, rows)
    report_finaliser(finaliser)
    print("\ntargets (issue 27):")
    finaliser["targets"] = print_targets(finaliser_targets(finaliser))
    write_results(out, {"finaliser": finaliser})
    return 0 if finaliser["ok"] else 1
