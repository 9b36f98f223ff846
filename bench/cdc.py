"""Issue 29: change data capture at the source's pace. A burst of changes written by a few bulk statements, then
one cdc run and one incremental run of the same changes; the reader alone (and under cProfile); the sustained
writer (``cdc_sustained``); the targets (``--cdc-only`` runs only this)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import orders, servers
from bench.cdc_sustained import measure_cdc_sustained
from bench.cdc_tables import measure_cdc_tables, report_cdc_tables
from bench.children import run_child, stack_spec
from bench.orders import change_n_sql
from bench.output import fmt, log, print_targets, rate, write_results
from bench.phases import top_functions
from bench.settings import (
    CDC_BURST_STATEMENTS,
    FULL_CHUNK_ROWS,
    SUSTAINED_RATE,
    SUSTAINED_SECONDS,
    TABLE,
    TARGET_CDC_CATCH_UP_RATIO,
    TARGET_CDC_CHANGES_PER_SECOND,
    TARGET_CDC_LAG_P95_SECONDS,
)
from bench.usage import cpu_seconds

CDC_CHANGES = (1_000, 100_000)
DECODE_TWO = {"CDC_DECODE_PROCESSES": "2"}  # the cdc run whose window two processes decode


# where the reader's time goes, by the module a function lives in (cProfile's own time of each function)
READER_PARTS = (
    ("decoding (mysql-replication, our temporal and text hooks)", ("pymysqlreplication/", "source/binlog_decode.py")),
    ("value conversion (MySQL's text of each value)", ("source/binlog_values.py",)),
    ("the window (per-key reduction, positions, events)", ("source/binlog.py",)),
    ("the wire (pymysql packets, sockets)", ("pymysql/", "socket", "ssl")),
)


def child_cdc_reader(spec: dict[str, Any]) -> dict[str, Any]:
    """The cdc reader alone (``binlog.read_window``), no stack: a burst of changes written by a few bulk
    statements, then the window that holds them read as a cdc run reads it; with ``cprofile``, under the
    profiler, its own time summed by part."""
    import cProfile

    from aurora_replication.source import binlog

    settings = servers.source_settings(spec["source"])
    conn = servers.source_connection(spec["source"])
    try:
        facts = binlog.column_facts(conn, settings.dbname, TABLE)
        start = binlog.current_position(conn)
        written = time.perf_counter()
        with conn.cursor() as cur:
            for statement in spec["statements"]:
                cur.execute(statement)
        write_seconds = time.perf_counter() - written
        stop = binlog.current_position(conn)
    finally:
        conn.close()
    table_spec = binlog.TableSpec(start=start, columns=list(facts.values()), key=["id"])
    profiler = cProfile.Profile() if spec.get("cprofile") else None
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    window = binlog.read_window(settings, {TABLE: table_spec}, stop, 4236099, 3600, 1 << 40)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "changes": len(window.changes[TABLE]),
        "write_seconds": write_seconds,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "reached_end": window.reached_end,
        "bytes": window.bytes,
        "library_events": window.library_events,
    }
    if profiler is None:
        # the same window decoded by two processes, each a transaction-aligned segment (source/binlog_parallel.py)
        from aurora_replication.source import binlog_parallel

        cpu_before = cpu_seconds()
        started = time.perf_counter()
        two = binlog_parallel.read_window(settings, {TABLE: table_spec}, stop, 4236099, 3600, 1 << 40, 2)
        out["two_processes"] = {
            "seconds": time.perf_counter() - started,
            "segments": two.segments,
            "equal": two.changes == window.changes and two.end == window.end,
        }
        # the same window once more with every row image through the library (``text_rows=False``): the
        # row images read straight to text against the library's decoding, in this one run, same bytes
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        library = binlog.read_window(settings, {TABLE: table_spec}, stop, 4236099, 3600, 1 << 40, text_rows=False)
        out["library"] = {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": cpu_seconds() - cpu_before,
            "equal": library.changes == window.changes,
        }
    if profiler is not None:
        pstats_file = str(Path(spec["cprofile"]) / "cdc-reader.pstats")
        profiler.dump_stats(pstats_file)
        out["pstats"] = pstats_file
        out["parts"] = reader_parts(pstats_file)
        out["top_tottime"] = top_functions(pstats_file, 15)
    return out


def reader_parts(pstats_file: str) -> dict[str, float]:
    """The profiled reader's own time summed by ``READER_PARTS`` (the rest: "other")."""
    import pstats

    stats = pstats.Stats(pstats_file).stats  # type: ignore[attr-defined]
    parts = {name: 0.0 for name, _ in READER_PARTS}
    parts["other (builtins, the interpreter)"] = 0.0
    for (filename, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.items():
        where = f"{filename} {name}"
        for part, markers in READER_PARTS:
            if any(m in where for m in markers):
                parts[part] += tt
                break
        else:
            parts["other (builtins, the interpreter)"] += tt
    return parts


def measure_cdc_reader(db: Any, rows: int, profile_dir: str | None) -> dict[str, Any]:
    """The reader alone on a burst as large as the cdc bench's largest (and once more under cProfile)."""
    n = max(n for n in CDC_CHANGES if n <= rows)
    spec = {"kind": "cdc_reader", "source": db.url(), "statements": change_n_sql(rows, n, CDC_BURST_STATEMENTS)}
    log(f"the cdc reader alone: {n:,} changes from {CDC_BURST_STATEMENTS} statements...")
    out = run_child(spec, "cdc reader")
    if profile_dir:
        log("the cdc reader alone, under cProfile...")
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        out["profile"] = run_child({**spec, "cprofile": profile_dir}, "cdc reader profile")
    return out


def report_cdc(cdc: dict[str, Any]) -> None:
    if not cdc.get("available"):
        return
    print(
        "\nchange data capture: a burst of changes written by a few bulk statements, then one cdc run "
        "(2 worker processes); visible s: from the scheduler's invocation to the commit that makes the changes "
        "visible in Snowflake (changes/s and x write are of it); cdc run s: the local run whole, with its "
        "teardown (the worker processes stopped, the outcome read)"
    )
    print(
        f"{'changes':>9} {'statements s':>12} {'cdc run s':>10} {'visible s':>10} {'table s':>8} {'changes/s':>10} "
        f"{'x write':>8}  note"
    )
    for n in cdc["changes"]:
        step = cdc["cdc"][str(n)]
        note = ("ok" if step["ok"] else "FAILED") + f"; {step['rows']:,} rows applied"
        print(_burst_line(n, step, note))
    two = (cdc.get("cdc_two_processes") or {}).get(str(max(cdc["changes"])))
    if two:
        one = cdc["cdc"][str(max(cdc["changes"]))]
        note = (
            ("ok" if two["ok"] else "FAILED")
            + f"; {two['rows']:,} rows applied; the window decoded by two processes (CDC_DECODE_PROCESSES=2): "
            f"{applied_seconds(two) / applied_seconds(one):.2f} x the one-process run's time"
        )
        print(_burst_line(max(cdc["changes"]), two, note))
    reader = cdc.get("reader")
    if reader:
        print(
            f"the reader alone (binlog.read_window, no stack): {reader['changes']:,} changes in {reader['seconds']:.2f} s "
            f"({rate(reader['changes'], reader['seconds']) or 0:,.0f} changes/s, {reader['cpu_seconds']:.1f} CPU s); "
            f"the statements wrote them in {reader['write_seconds']:.2f} s"
        )
        two = reader.get("two_processes")
        if two:
            print(
                f"  the same window decoded by two processes ({two['segments']} segments, CDC_DECODE_PROCESSES=2): "
                f"{two['seconds']:.2f} s, {reader['seconds'] / two['seconds']:.2f} x as fast as one; the changes "
                + ("equal" if two["equal"] else "DIFFER")
            )
        library = reader.get("library")
        if library:
            print(
                f"  the same window with every row image through mysql-replication: {library['seconds']:.2f} s "
                f"({library['cpu_seconds']:.1f} CPU s); row images read straight to text take "
                f"{reader['seconds'] / library['seconds']:.2f} x its time; the changes "
                + ("equal" if library["equal"] else "DIFFER")
            )
        report_cdc_tables(cdc.get("tables") or {}, cdc["cdc"].get(str(min(cdc["changes"]))))
        prof = reader.get("profile")
        sustained = cdc.get("sustained")
        if sustained:
            print(
                f"a writer at {sustained['rate']:,} changes/s for {sustained['seconds']:g} s ({sustained['written']:,} "
                f"changes) while cdc ran back to back ({len(sustained['runs'])} runs): lag from commit to visible "
                f"p50 {fmt(sustained['lag_p50'], '.1f')} s, p95 {fmt(sustained['lag_p95'], '.1f')} s, max "
                f"{fmt(sustained['lag_max'], '.1f')} s; {sustained['visible']:,} changes seen; at the end "
                + ("MySQL and Snowflake equal (rows, SUM(total))" if sustained["exact"] else "NOT EQUAL")
                + f" {sustained['mysql']} / {sustained['snowflake']}"
            )
        following = cdc.get("following")
        if following:
            windows = following["runs"][0].get("windows", 0) if following["runs"] else 0
            print(
                f"the same writer while one scheduler invocation followed the binlog ({windows} windows): lag from "
                f"commit to visible p50 {fmt(following['lag_p50'], '.1f')} s, p95 {fmt(following['lag_p95'], '.1f')} s, "
                f"max {fmt(following['lag_max'], '.1f')} s; {following['visible']:,} of {following['written']:,} "
                "changes seen; at the end "
                + ("MySQL and Snowflake equal (rows, SUM(total))" if following["exact"] else "NOT EQUAL")
            )
        if prof:
            total = sum(prof["parts"].values()) or 1.0
            print(f"  under cProfile ({prof['seconds']:.2f} s), own time by part:")
            for name, seconds in sorted(prof["parts"].items(), key=lambda kv: -kv[1]):
                print(f"  {seconds:8.2f} s  {seconds / total:6.1%}  {name}")


def applied_seconds(step: dict[str, Any]) -> float:
    """A burst's cdc run until its changes are visible (``visible_seconds``); the local run whole where the
    table has no finish time."""
    return float(step.get("visible_seconds") or step["seconds"])


def _burst_line(n: int, step: dict[str, Any], note: str) -> str:
    seconds = applied_seconds(step)
    ratio = seconds / step["write_seconds"] if step.get("write_seconds") else None
    return (
        f"{n:>9,} {fmt(step.get('write_seconds'), '12.2f')} {step['seconds']:>10.2f} "
        f"{fmt(step.get('visible_seconds'), '10.2f')} {step['table_seconds']:>8.2f} {fmt(rate(n, seconds), '10,.0f')} "
        f"{fmt(ratio, '8.1f')}  {note}"
    )


def cdc_targets(cdc: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    if not cdc.get("available") or not cdc.get("changes"):
        return []
    n = max(cdc["changes"])
    step = cdc["cdc"][str(n)]
    applied = step["ok"] and step["rows"] >= n
    ratio = applied_seconds(step) / step["write_seconds"] if applied and step.get("write_seconds") else None
    return [
        (
            f"cdc catch-up of {n:,} changes / the {CDC_BURST_STATEMENTS} statements' time "
            f"<= {TARGET_CDC_CATCH_UP_RATIO:g}",
            ratio,
            lambda v: v <= TARGET_CDC_CATCH_UP_RATIO,
            "x",
        ),
        (
            f"cdc run of {n:,} changes >= {TARGET_CDC_CHANGES_PER_SECOND:,.0f} changes/s",
            rate(n, applied_seconds(step)) if applied else None,
            lambda v: v >= TARGET_CDC_CHANGES_PER_SECOND,
            "changes/s",
        ),
        *(
            [
                (
                    f"cdc run of {n:,} changes, its window decoded by two processes "
                    f">= {TARGET_CDC_CHANGES_PER_SECOND:,.0f} changes/s",
                    rate(n, applied_seconds(cdc["cdc_two_processes"][str(n)]))
                    if cdc["cdc_two_processes"][str(n)]["ok"] and cdc["cdc_two_processes"][str(n)]["rows"] >= n
                    else None,
                    lambda v: v >= TARGET_CDC_CHANGES_PER_SECOND,
                    "changes/s",
                )
            ]
            if str(n) in (cdc.get("cdc_two_processes") or {})
            else []
        ),
        *(
            [
                (
                    f"cdc lag p95 under {cdc['sustained']['rate']:,} changes/s for {cdc['sustained']['seconds']:g} s "
                    f"<= {TARGET_CDC_LAG_P95_SECONDS:g} s (and equal at the end)",
                    cdc["sustained"]["lag_p95"] if cdc["sustained"]["ok"] and cdc["sustained"]["exact"] else None,
                    lambda v: v <= TARGET_CDC_LAG_P95_SECONDS,
                    "s",
                )
            ]
            if cdc.get("sustained")
            else []
        ),
        *(
            [
                (
                    f"cdc lag p95 following the binlog under {cdc['following']['rate']:,} changes/s "
                    f"<= {TARGET_CDC_LAG_P95_SECONDS:g} s (and equal at the end)",
                    cdc["following"]["lag_p95"] if cdc["following"]["ok"] and cdc["following"]["exact"] else None,
                    lambda v: v <= TARGET_CDC_LAG_P95_SECONDS,
                    "s",
                )
            ]
            if cdc.get("following")
            else []
        ),
    ]


def cdc_only(out: str, keep_servers: bool, rows: int, profile: bool) -> int:
    """``--cdc-only``: the table (built once), the cdc and incremental runs, the reader alone; nothing else."""
    with servers.started(keep_servers) as (db, sf):
        orders.build_table(db, rows)
        cdc = measure_cdc(db, sf, rows, str(Path(out).resolve().parent) if profile else None)
    report_cdc(cdc)
    print("\ntargets (issue 29):")
    cdc["targets"] = print_targets(cdc_targets(cdc))
    write_results(out, {"cdc": cdc})
    return 0 if cdc["ok"] else 1


def measure_cdc(db: Any, sf: Any, rows: int, profile_dir: str | None = None) -> dict[str, Any]:
    """A cdc run and an incremental run of the same changes (1,000, then 100,000 rows), 2 workers each,
    each mode in a child of its own after its own initial copy."""
    sizes = [n for n in CDC_CHANGES if n <= rows]
    out: dict[str, Any] = {"available": True, "changes": sizes}
    for mode, first in (("cdc", "cdc"), ("incremental", "full")):
        request = {"tables": TABLE, "mode": mode, "chunk_rows": FULL_CHUNK_ROWS}
        steps = [{"name": "initial", "request": {**request, "mode": first}}]
        steps += [
            {"name": f"{n}", "request": request, "before_sql": change_n_sql(rows, n, CDC_BURST_STATEMENTS)}
            for n in sizes
        ]
        log(f"{mode}: initial copy, then runs after {', '.join(f'{n:,}' for n in sizes)} changed rows...")
        # worker containers as processes, as in Lambda: with threads, the reader (in the scheduler) shared one
        # GIL with both workers' polling and apply, and the run measured the local stack more than the reader
        res = run_child(stack_spec(db, sf, f"vs-{mode}", f"BENCHVS{mode.upper()}", 2, steps, processes=True), mode)
        out[mode] = {step["name"]: step for step in res["steps"]}
    # the largest burst once more, the window decoded by two processes (CDC_DECODE_PROCESSES=2)
    n = max(sizes)
    request = {"tables": TABLE, "mode": "cdc", "chunk_rows": FULL_CHUNK_ROWS}
    steps = [
        {"name": "initial", "request": request},
        {"name": f"{n}", "request": request, "before_sql": change_n_sql(rows, n, CDC_BURST_STATEMENTS)},
    ]
    log(f"cdc with CDC_DECODE_PROCESSES=2: initial copy, then a run after {n:,} changed rows...")
    spec = {**stack_spec(db, sf, "vs-cdc2", "BENCHVSCDC2", 2, steps, processes=True), "env": DECODE_TWO}
    out["cdc_two_processes"] = {step["name"]: step for step in run_child(spec, "cdc, two processes")["steps"]}
    out["ok"] = all(step["ok"] for mode in ("cdc", "incremental", "cdc_two_processes") for step in out[mode].values())
    out["reader"] = measure_cdc_reader(db, rows, profile_dir)
    out["tables"] = measure_cdc_tables(db, sf)
    out["sustained"] = measure_cdc_sustained(db, sf, rows, SUSTAINED_RATE, SUSTAINED_SECONDS)
    out["following"] = measure_cdc_sustained(db, sf, rows, SUSTAINED_RATE, SUSTAINED_SECONDS, follow=True)
    out["ok"] = out["ok"] and out["tables"]["ok"]
    out["ok"] = out["ok"] and all(out[k]["ok"] and out[k]["exact"] for k in ("sustained", "following"))
    return out
