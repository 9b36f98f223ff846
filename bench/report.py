"""The whole bench's report: the table of measures against the ceiling, memory, the ratios, each scenario's
section and every issue's targets with their verdicts."""

from __future__ import annotations

from typing import Any

from bench.cdc import cdc_targets, report_cdc
from bench.finaliser import finaliser_targets, report_finaliser
from bench.output import fmt, print_targets, rate
from bench.planning import planning_targets, report_planning
from bench.read_cpu import report_read_cpu, source_cost_targets
from bench.settings import (
    CHANGED_ROWS,
    MEMORY_CHUNKS,
    PARTS,
    TARGET_CEILING_RATIO,
    TARGET_INCREMENTAL_SECONDS,
    TARGET_MEMORY_GROWTH,
    TARGET_MEMORY_MB,
    TARGET_PEER_RATIO,
    TARGET_PLAN_SECONDS,
    TARGET_TWO_WORKERS,
)
from bench.small_tables import report_small_tables, small_tables_targets


def report(r: dict[str, Any]) -> None:
    rows = r["rows"]
    ceiling = r["ceiling"]
    ceil_rate = rate(rows, ceiling.get("seconds")) if ceiling.get("available") else None
    peer = r["peer"]
    lines: list[tuple[str, float | None, float | None, str]] = []

    def add(name: str, seconds: float | None, n: int, note: str = "") -> None:
        rr = rate(n, seconds)
        lines.append((name, seconds, rr, note))

    add("ceiling: mariadb --quick > /dev/null", ceiling.get("seconds"), rows, "best of 2")
    one, two, inc = r["one_worker"], r["two_workers"], r["incremental"]
    one_p, two_p = r.get("one_worker_process"), r.get("two_worker_processes")
    one_parts = r.get("one_worker_process_parts")
    for label, res in (
        ("1 worker", one),
        ("2 workers", two),
        ("1 worker process", one_p),
        ("2 worker processes", two_p),
        (f"1 worker process, {PARTS} parts a chunk", one_parts),
    ):
        if res is None:
            continue
        note = ("ok" if res["ok"] else "FAILED") + f"; table {res['table_seconds']:.2f} s start to publish"
        add(f"project, full, {label}", res["seconds"], rows, note)
    if peer.get("available"):
        add(
            "peer: dlt sql_database pyarrow -> duckdb",
            peer["seconds"],
            rows,
            "ok" if peer["ok"] else "row count differs",
        )
    else:
        lines.append(("peer: dlt", None, None, "unavailable: " + peer.get("reason", "?")))
    add(
        f"project, incremental, {CHANGED_ROWS:,} changed rows",
        inc["seconds"],
        inc["rows"],
        f"{inc['rows']:,} rows copied (changed + watermark overlap); table {inc['table_seconds']:.2f} s",
    )
    lines.append(("planning (plan_seconds, full run)", r["planning"]["plan_seconds"], None, ""))
    cdc = r.get("cdc", {})
    for n in cdc.get("changes", []) if cdc.get("available") else []:
        for mode in ("cdc", "incremental"):
            step = cdc[mode][str(n)]
            note = (
                "ok" if step["ok"] else "FAILED"
            ) + f"; {step['rows']:,} rows applied; table {step['table_seconds']:.2f} s"
            add(f"project, {mode}, {n:,} changed rows", step["seconds"], n, note)
    for label, res in (("full, 1 worker", one), ("full, 2 workers", two), ("incremental", inc)):
        chunks = int(res.get("table_state", {}).get("chunk_count") or 0)
        note = f"{chunks} chunks: the ledger (each chunk checksummed as it loaded), then the commit; no MySQL"
        lines.append((f"finaliser per table ({label})", res.get("finalise_seconds"), None, note))

    print(f"\n== {rows:,} rows, {r['machine']['cpus']} CPUs, MariaDB {r['machine'].get('mariadb', '?')} ==")
    print(f"{'measure':<45} {'seconds':>9} {'rows/s':>10} {'x ceiling':>9}  note")
    for name, seconds, rr, note in lines:
        ratio = rr / ceil_rate if rr and ceil_rate else None
        print(f"{name:<45} {fmt(seconds, '9.2f')} {fmt(rr, '10,.0f')} {fmt(ratio, '9.2f')}  {note}")

    print("\npeak resident memory: the worker container's process, and the process running the rest of the stack:")
    print(f"{'chunk_rows':>10} {'worker MB':>10} {'stack MB':>9} {'stack MB after start':>21} {'seconds':>8}")
    for m in r["memory"]:
        print(
            f"{m['chunk_rows']:>10,} {fmt(m.get('worker_peak_mb'), '10.1f')} {m['maxrss_mb']:>9.1f} "
            f"{m['maxrss_mb_after_start']:>21.1f} {m['seconds']:>8.2f}"
        )

    one_rate = rate(rows, one["seconds"])
    two_rate = rate(rows, two["seconds"])
    peer_rate = rate(rows, peer.get("seconds")) if peer.get("available") else None
    one_p_rate = rate(rows, one_p["seconds"]) if one_p else None
    two_p_rate = rate(rows, two_p["seconds"]) if two_p else None
    parts_rate = rate(rows, one_parts["seconds"]) if one_parts else None
    mem = r["memory"]
    mem_small, mem_big = mem[0], mem[-1]
    # the worker container's own peak where it was measured (process containers), else the stack's
    mem_key = "worker_peak_mb" if all(m.get("worker_peak_mb") for m in mem) else "maxrss_mb"
    mem_ratio = mem_big[mem_key] / mem_small[mem_key]
    ratios = {
        "1 worker / ceiling": one_rate / ceil_rate if one_rate and ceil_rate else None,
        "1 worker process / ceiling": one_p_rate / ceil_rate if one_p_rate and ceil_rate else None,
        "1 worker / dlt": one_rate / peer_rate if one_rate and peer_rate else None,
        "2 workers / 1 worker (threads)": two_rate / one_rate if two_rate and one_rate else None,
        "2 worker processes / 1": two_p_rate / one_p_rate if two_p_rate and one_p_rate else None,
        f"1 worker process, {PARTS} parts / 1 part": parts_rate / one_p_rate if parts_rate and one_p_rate else None,
        f"memory {mem_big['chunk_rows']:,} / {mem_small['chunk_rows']:,} chunk": mem_ratio,
    }
    print("\nratios:")
    for k, v in ratios.items():
        print(f"  {k:<32} {fmt(v, '.2f')}")

    biggest_mem = max(m[mem_key] for m in mem)
    whose = "worker container" if mem_key == "worker_peak_mb" else "stack process"
    capped = mem_big["chunk_rows"] < max(MEMORY_CHUNKS)
    targets = [
        (
            f"1 worker >= {TARGET_CEILING_RATIO} x ceiling",
            ratios["1 worker / ceiling"],
            lambda v: v >= TARGET_CEILING_RATIO,
            "x",
        ),
        (f"1 worker >= {TARGET_PEER_RATIO:g} x dlt", ratios["1 worker / dlt"], lambda v: v >= TARGET_PEER_RATIO, "x"),
        (
            f"incremental of {CHANGED_ROWS:,} rows < {TARGET_INCREMENTAL_SECONDS:g} s",
            inc["seconds"],
            lambda v: v < TARGET_INCREMENTAL_SECONDS,
            "s",
        ),
        (
            f"planning < {TARGET_PLAN_SECONDS:g} s",
            r["planning"]["plan_seconds"],
            lambda v: v < TARGET_PLAN_SECONDS,
            "s",
        ),
        (
            f"{whose} memory flat within {TARGET_MEMORY_GROWTH:.0%} (50k -> {mem_big['chunk_rows']:,}"
            + (", capped at table size" if capped else "")
            + ")",
            mem_ratio - 1,
            lambda v: v <= TARGET_MEMORY_GROWTH,
            "growth",
        ),
        (f"{whose} memory < {TARGET_MEMORY_MB:g} MB", biggest_mem, lambda v: v < TARGET_MEMORY_MB, "MB"),
    ]
    # Lambda runs each worker container as a process: the target reads the process pair where it
    # was measured (threads of one process share one GIL with each other and with moto)
    two_key = "2 worker processes / 1" if ratios["2 worker processes / 1"] else "2 workers / 1 worker (threads)"
    targets.append(
        (
            f"{two_key.split(' / ')[0]} >= {TARGET_TWO_WORKERS:g} x 1",
            ratios[two_key],
            lambda v: v >= TARGET_TWO_WORKERS,
            "x",
        )
    )
    report_read_cpu(r.get("read_cpu", {}))
    issue28 = source_cost_targets(r)
    small = r.get("small_tables", {})
    report_small_tables(small)
    targets += small_tables_targets(small)
    if "runs" in r["planning"]:
        report_planning(r["planning"])
        targets += planning_targets(r["planning"])
    if r.get("finaliser"):
        report_finaliser(r["finaliser"])
        targets += finaliser_targets(r["finaliser"])
    report_cdc(r.get("cdc", {}))
    print("\ntargets (issues 6, 9, 14 and 27):")
    r["ratios"] = ratios
    r["targets"] = print_targets(targets)
    # issue 28 names the end-to-end ratios again beside its own: one run, every ratio from it
    end_to_end = [t for t in targets if "ceiling" in t[0] or "dlt" in t[0] or ">= 1.6" in t[0]]
    print("\ntargets (issue 28):")
    r["targets_issue_28"] = print_targets(issue28 + end_to_end)
    print("\ntargets (issue 29):")
    r["targets_issue_29"] = print_targets(cdc_targets(r.get("cdc", {})))

    prof = r.get("profile")
    if prof:
        for step in prof["steps"]:
            total = step["total_seconds"]
            print(
                f"\nphases of the {step['name']} run, 1 worker driven from the main thread "
                f"({total:.2f} s, {step['rows']:,} rows, {step['validation']}):"
            )
            for name, seconds in sorted(step["phases"].items(), key=lambda kv: -kv[1]):
                if seconds >= 0.005:
                    print(f"  {seconds:8.2f} s  {seconds / total:6.1%}  {name}")
            growth = {k: v for k, v in step["peak_growth_mb"].items() if v >= 1}
            if growth:
                print("  raised the peak resident memory: " + ", ".join(f"{k} +{v:.0f} MB" for k, v in growth.items()))
        for c in prof.get("cprofile", []):
            print(
                f"\ncProfile, {c['name']} run ({c['seconds_under_profiler']:.2f} s under the profiler): {c['pstats']}"
            )
            for f in c["top_tottime"][:12]:
                print(
                    f"  {f['tottime']:8.2f} s tottime {f['cumtime']:8.2f} s cumtime {f['ncalls']:>10}  {f['function']}"
                )
    print(f"\nbench took {r['bench_seconds']:.0f} s")
