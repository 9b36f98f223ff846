"""``--profile``: the phases of a run timed by wrappers around the functions that do each step, one worker
driven from the main thread, and the same runs under cProfile."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.children import copied_rows, execute_source, fresh_stack, run_child
from bench.copies import FULL, INCREMENTAL
from bench.orders import change_rows_sql
from bench.output import log
from bench.settings import BENCH, ROOT, TABLE
from bench.usage import maxrss_mb


class PhaseTimer:
    """Wall time (and growth of the process's peak memory) per phase, from wrappers around the
    functions that do each step; the profile child installs them before any handler is loaded."""

    CHUNK_READ = "MySQL: read the chunk (by default a plain SELECT through the C client, source.bulk)"
    CSV = "staging file: lines, checksum terms, zstd or gzip (staging.write_encoded, write_lines_gz, write_csv_gz; less the MySQL read)"

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.peak_growth_mb: dict[str, float] = {}
        self.in_checksum = False
        self.in_csv = False
        self.csv_read = 0.0

    def add(self, name: str, seconds: float, rss_before: float | None = None) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1
        if rss_before is not None and maxrss_mb() > rss_before:
            self.peak_growth_mb[name] = self.peak_growth_mb.get(name, 0.0) + maxrss_mb() - rss_before

    def timed(self, name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            rss, started = maxrss_mb(), time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.add(name, time.perf_counter() - started, rss)

        return wrapper

    def install(self) -> None:
        from aurora_replication.pipeline import staging
        from aurora_replication.source import bulk as source_bulk
        from aurora_replication.source import connect as source_connect
        from aurora_replication.source import read as source_read
        from aurora_replication.target.snowflake import client as target_mod

        timer = self
        original_lines = staging.write_lines_gz
        original_stream, original_csv, original_checksum = (
            source_read.stream_rows,
            staging.write_csv_gz,
            source_read.chunk_checksum,
        )

        original_batches, original_encoded = source_bulk.batches, staging.write_encoded

        def stream_rows(*a: Any, **k: Any) -> Any:
            return timed_read(original_stream(*a, **k))

        def batches(*a: Any, **k: Any) -> Any:
            return timed_read(original_batches(*a, **k))

        def timed_read(gen: Any) -> Any:
            counted = not timer.in_checksum  # the checksum's rows are timed with the checksum
            total = 0.0
            try:
                while True:
                    started = time.perf_counter()
                    try:
                        row = next(gen)
                    except StopIteration:
                        total += time.perf_counter() - started
                        return
                    total += time.perf_counter() - started
                    yield row
            finally:
                gen.close()  # an early close reads the rest of the result off the connection
                if counted:
                    timer.add(timer.CHUNK_READ, total)
                    if timer.in_csv:
                        timer.csv_read += total

        def staging_file(original: Any) -> Any:
            """Time a staging-file writer; the MySQL reads inside it are subtracted later."""

            def write(*a: Any, **k: Any) -> Any:
                timer.in_csv = True
                rss, started = maxrss_mb(), time.perf_counter()
                try:
                    return original(*a, **k)
                finally:
                    timer.in_csv = False
                    timer.add("_csv_total", time.perf_counter() - started, rss)

            return write

        def table_checksum(*a: Any, **k: Any) -> Any:
            timer.in_checksum = True
            try:
                return timed_checksum(*a, **k)
            finally:
                timer.in_checksum = False

        timed_checksum = self.timed(
            "MySQL: checksum of each chunk in its snapshot (one MD5 per row, summed inside MySQL)", original_checksum
        )
        source_read.stream_rows = stream_rows
        source_bulk.batches = batches
        staging.write_encoded = staging_file(original_encoded)
        staging.write_csv_gz = staging_file(original_csv)
        staging.write_lines_gz = staging_file(original_lines)
        source_read.chunk_checksum = table_checksum
        T = target_mod.Target
        for attr, name in (
            ("put", "PUT the staging file to the stage (emulator)"),
            ("load_file", "COPY INTO the load table (emulator)"),
            ("load_rows", "small-chunk INSERT (emulator)"),
            ("merge_validated", "MERGE the validated chunks into the target (emulator)"),
            ("merged_checksum", "validation: emulator checksum of the merged rows (summed inside the emulator)"),
            ("record_attempts", "finaliser: write the validated attempts (emulator)"),
            ("ensure_load_table", "CREATE load table (emulator)"),
            ("ensure_target_table", "CREATE target table IF NOT EXISTS (emulator)"),
            ("checksum", "validation: emulator checksum (summed inside the emulator)"),
            ("checksums_of_attempts", "validation: emulator checksums per chunk (summed inside the emulator)"),
            ("range_checksum", "validation: emulator checksum of one key range (summed inside the emulator)"),
            ("publish", "publish: INSERT OVERWRITE in a transaction (emulator)"),
            ("drop", "DROP load table (emulator)"),
        ):
            setattr(T, attr, self.timed(name, getattr(T, attr)))
        target_mod.connect = self.timed("connect to the emulator", target_mod.connect)
        source_connect.connect = self.timed("connect to MySQL", source_connect.connect)

    def result(self, total: float) -> dict[str, Any]:
        seconds = dict(self.seconds)
        growth = dict(self.peak_growth_mb)
        csv_total = seconds.pop("_csv_total", 0.0)
        if "_csv_total" in growth:
            growth[f"{self.CHUNK_READ} / {self.CSV}"] = growth.pop("_csv_total")
        seconds[self.CSV] = csv_total - self.csv_read
        seconds["everything else (DynamoDB/SQS in moto, Powertools, idempotency, polling)"] = total - sum(
            seconds.values()
        )
        calls = {k: v for k, v in self.calls.items() if k != "_csv_total"}
        return {"total_seconds": total, "phases": seconds, "calls": calls, "peak_growth_mb": growth}


def drive_in_main_thread(stack: Any, request: dict[str, Any], timer: PhaseTimer) -> tuple[str, float]:
    """The scheduler, then one worker polling the queue, all in this thread (cProfile sees only it)."""
    from aurora_replication.ledger.store import StateStore

    batch = int(stack.template.resolve(stack.template.sqs_event("WorkerFunction").get("BatchSize", 10)))
    state = StateStore(stack.table_name)
    started = time.perf_counter()
    summary = timer.timed("scheduler: plan + record + enqueue", stack.invoke)("SchedulerFunction", request)
    run_id = summary["run_id"]
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        statuses = state.table_statuses(run_id)
        if statuses and all(status in ("published", "failed", "declined") for status in statuses.values()):
            break
        msgs = stack.receive(batch)
        if not msgs:
            time.sleep(0.1)
            continue
        result = stack.invoke("WorkerFunction", {"Records": [stack._record(m) for m in msgs]}) or {}
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for m in msgs:
            if m["MessageId"] not in failed:
                stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return run_id, time.perf_counter() - started


def child_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs (a full one, then an incremental one) with one worker driven from the main thread,
    timing each phase; with spec["cprofile"] (a directory) each run is also under cProfile."""
    from aurora_replication.ledger.store import StateStore

    timer = PhaseTimer()
    timer.install()
    stack = fresh_stack(spec)
    results = []
    try:
        for step in spec["steps"]:
            timer.__init__()  # type: ignore[misc]  # each step counts on its own
            changed = execute_source(spec["source"], step.get("before_sql", []))
            rss_before = maxrss_mb()
            profiler = None
            if spec.get("cprofile"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            run_id, total = drive_in_main_thread(stack, step["request"], timer)
            pstats_file = None
            if profiler is not None:
                profiler.disable()
                pstats_file = str(Path(spec["cprofile"]) / f"profile-{step['name']}.pstats")
                profiler.dump_stats(pstats_file)
            table_state = StateStore(stack.table_name).get_run(run_id).get("table_states", {}).get(TABLE, {})
            results.append(
                {
                    "name": step["name"],
                    "changed_rows": changed,
                    **timer.result(total),
                    "status": table_state.get("status"),
                    "validation": table_state.get("validation"),
                    "rows": copied_rows(table_state),
                    "maxrss_mb_before": rss_before,
                    "maxrss_mb_after": maxrss_mb(),
                    "pstats": pstats_file,
                }
            )
    finally:
        stack.stop()
    return {"steps": results}


def top_functions(pstats_file: str, n: int = 25) -> list[dict[str, Any]]:
    import pstats

    stats = pstats.Stats(pstats_file).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.items():
        short = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append({"function": f"{short}:{line}({name})", "ncalls": nc, "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: -r["tottime"])
    return rows[:n]


def measure_profile(db: Any, sf: Any, rows: int, out: str) -> dict[str, Any]:
    """``--profile``: the full and the incremental run with phase timers, then under cProfile (pstats beside ``out``)."""
    out_dir = Path(out).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "kind": "profile",
        "home": str((BENCH / "profile").resolve()),
        "source": db.url(),
        "target": sf.url("ANALYTICS", "BENCHPROF"),
        "steps": [
            {"name": "full", "request": FULL},
            {"name": "incremental", "request": INCREMENTAL, "before_sql": [change_rows_sql(rows)]},
        ],
    }
    log("profile: phase timers, one worker driven from the main thread (full, then incremental)...")
    result = run_child(spec, "profile")
    log("profile: the same runs under cProfile...")
    prof = run_child({**spec, "cprofile": str(out_dir)}, "cprofile")
    result["cprofile"] = [
        {
            "name": step["name"],
            "seconds_under_profiler": step["total_seconds"],
            "pstats": step["pstats"],
            "top_tottime": top_functions(step["pstats"]),
        }
        for step in prof["steps"]
    ]
    return result
