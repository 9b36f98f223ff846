"""`make bench`: how fast the project copies one table, measured against a ceiling and a peer.

Run from the project directory with the project's venv:

    .venv/bin/python bench/run.py                # 1,000,000 rows (the size the targets speak of)
    .venv/bin/python bench/run.py --quick        # 100,000 rows
    .venv/bin/python bench/run.py --rows 250000 --profile --out bench-results/250k.json
    .venv/bin/python bench/run.py --planning-only  # chunk planning at 1M and 10M rows, nothing else

What it measures, one table (`bench.orders`, 10 columns of mixed types, built once and cached):

* ceiling: the `mariadb --quick` client dumping the table to /dev/null (best of two runs);
* this project, end to end over the local stack (moto, the real handlers, MariaDB, the Snowflake
  emulator), full mode with 1 and with 2 workers: the wall time of `LocalStack.run()`;
* the peer: dlt's sql_database source (pyarrow backend) into DuckDB, in a venv of its own;
* planning the chunk bounds of tables of 1M and 10M rows (and the old OFFSET walk, for comparison);
* an incremental run after 1,000 rows changed, planning time, and the peak resident memory of
  the process that runs the local stack for several chunk sizes;
* change data capture: a cdc run after 1,000 and after 100,000 changed rows (updates that move the
  watermark, so an incremental run sees them too; 4 bulk statements, timed), against incremental runs of
  the same changes, the reader alone, and a sustained writer with cdc back to back (lag from commit to
  visible); issue 29's targets with their ratios (``--no-cdc`` skips it, ``--cdc-only`` runs only it).

Every stack run happens in a fresh child process (this file again, with --child), so runs do not
share interpreter state and each child's peak memory is its own. The servers live under
.local/bench and are stopped at the end (unless --keep-servers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(".local/bench")
DATABASE = "bench"
TABLE = "orders"
FULL_CHUNK_ROWS = 200_000
# the parts a chunk is read in (EXTRACT_PROCESSES) in the run that measures reading in parts
PARTS = 2
MEMORY_CHUNKS = (50_000, 200_000, 1_000_000)
CHANGED_ROWS = 1_000
# planning (chunk bounds) is measured on tables of one schema at these sizes, at these chunk sizes
PLAN_SIZES = (1_000_000, 10_000_000)
PLAN_CHUNKS = (FULL_CHUNK_ROWS, 50_000)

# the targets of the issue
TARGET_CEILING_RATIO = 0.5
TARGET_PEER_RATIO = 5.0
TARGET_INCREMENTAL_SECONDS = 3.0  # issue 14 (issue 6 said 5 s)
TARGET_PLAN_SECONDS = 1.0
TARGET_PLAN_GROWTH = 5.0  # planning 10M rows / 1M rows at the full run's chunk size ("well below 10x")
TARGET_CHUNK_BOUND = 2.0  # the largest chunk planned, in chunk_rows
TARGET_MEMORY_GROWTH = 0.20
TARGET_MEMORY_MB = 256.0
# many small tables (issue 14): SMALL_TABLES tables of SMALL_ROWS rows, one full run of `*`, 2 workers
SMALL_DATABASE = "bench_small"
SMALL_TABLES = 300
SMALL_ROWS = 3
TARGET_SMALL_SECONDS = 60.0
TARGET_TWO_WORKERS = 1.6
# the finaliser's own time (its invocations, less the asynchronous statements they wait for) at 10 x the rows
TARGET_FINALISER_GROWTH = 3.0
# issue 28: MariaDB's CPU per row copied against the dump's, and the worker's CPU per million rows
TARGET_SOURCE_CPU_RATIO = 1.5
TARGET_WORKER_CPU_SECONDS = 2.5
# issue 29: cdc at the source's pace. A burst of changes written by a few bulk statements (as a batch job or a
# busy hour writes them), then one cdc run: its time against the statements' time, and changes a second
CDC_BURST_STATEMENTS = 4
TARGET_CDC_CATCH_UP_RATIO = 1.0
TARGET_CDC_CHANGES_PER_SECOND = 20_000.0
# a writer at a bounded rate for a bounded time while cdc runs back to back (loopback): lag from commit to visible
SUSTAINED_RATE = 2_000  # row changes a second, in transactions of a tenth of a second's changes
SUSTAINED_SECONDS = 60.0
TARGET_CDC_LAG_P95_SECONDS = 60.0

DDL = f"""CREATE TABLE `{TABLE}` (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    email VARCHAR(120) NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    discount DOUBLE NULL,
    placed_at DATETIME(6) NOT NULL,
    ship_date DATE NULL,
    status ENUM('new','paid','shipped','cancelled','returned') NOT NULL,
    note TEXT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY ix_orders_updated_at (updated_at)
) ENGINE=InnoDB CHARACTER SET utf8mb4"""

FILL = """INSERT INTO `{table}` (id, customer_id, email, total, discount, placed_at, ship_date, status, note, updated_at)
SELECT seq,
       1 + (seq * 7919) % 50000,
       CONCAT('customer', (seq * 7919) % 50000, '@example.com'),
       ROUND((seq * 104729 % 10000000) / 100, 2),
       IF(seq % 5 = 0, NULL, (seq % 1000) / 7e0),
       TIMESTAMP('2021-01-01') + INTERVAL (seq * 31) SECOND + INTERVAL (seq % 1000000) MICROSECOND,
       IF(seq % 4 = 0, NULL, DATE('2021-01-01') + INTERVAL (seq % 1400) DAY),
       ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'cancelled', 'returned'),
       CASE seq % 6
            WHEN 0 THEN NULL
            WHEN 1 THEN ''
            WHEN 2 THEN CONCAT('Gift wrap, "fragile", leave at door ', seq)
            WHEN 3 THEN CONCAT('Zustellung an Nachbarn 🚚 — Größe M ', seq)
            WHEN 4 THEN REPEAT('lorem ipsum dolor ', 1 + seq % 8)
            ELSE CONCAT('line one\\nline two\\twith tab ', seq)
       END,
       TIMESTAMP('2024-01-01') + INTERVAL (seq * 2) SECOND
FROM seq_1_to_{rows}"""

# the rows an earlier run changed (FILL's updated_at ends in January 2024), back as FILL made them
RESET_CHANGES = (
    "UPDATE `{table}` SET updated_at = TIMESTAMP('2024-01-01') + INTERVAL (id * 2) SECOND "
    "WHERE updated_at >= TIMESTAMP('2024-01-01') + INTERVAL (id * 2) SECOND + INTERVAL 1 SECOND"
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

DLT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import dlt
    from dlt.sources.sql_database import sql_table

    url, duck_path, pipelines_dir, out = sys.argv[1:5]
    source = sql_table(credentials=url, table="orders", backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench_orders",
        destination=dlt.destinations.duckdb(duck_path),
        dataset_name="bench",
        pipelines_dir=pipelines_dir,
    )
    started = time.perf_counter()
    info = pipeline.run(source, write_disposition="replace")
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT COUNT(*) FROM orders")[0][0]
    json.dump({"seconds": seconds, "rows": int(rows), "dlt_version": dlt.__version__,
               "failed_jobs": bool(info.has_failed_jobs)}, open(out, "w"))
    """
)


# ---- small helpers ----------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [jsonable(x) for x in v]
        return sorted(items, key=str) if isinstance(v, (set, frozenset)) else items
    return v


def copied_rows(table_state: dict[str, Any]) -> int:
    return int(table_state.get("rows_copied") or 0)


def run_child(spec: dict[str, Any], label: str, extra_args: list[str] | None = None) -> dict[str, Any]:
    """Run this file with --child SPEC in a fresh interpreter; its result comes back through a file."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec = {**spec, "out": str(out_file)}
        spec_file.write_text(json.dumps(spec))
        cmd = [sys.executable, *(extra_args or []), str(Path(__file__).resolve()), "--child", str(spec_file)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0 or not out_file.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
            raise RuntimeError(f"{label}: child exited {proc.returncode}:\n" + "\n".join(tail))
        return dict(json.loads(out_file.read_text()))


# ---- the child: one local stack in a process of its own ---------------------------------------


def child(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("kind") == "profile":
        result = child_profile(spec)
    elif spec.get("kind") == "cdc_reader":
        result = child_cdc_reader(spec)
    elif spec.get("kind") == "cdc_sustained":
        result = child_cdc_sustained(spec)
    else:
        result = child_stack(spec)
    Path(spec["out"]).write_text(json.dumps(jsonable(result)))
    return 0


def _fresh_stack(spec: dict[str, Any]) -> Any:
    from aurora_replication_dev.local.stack import LocalStack, parse_source_url, parse_target_url

    home = Path(spec["home"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "state.json").unlink(missing_ok=True)  # fresh state: no watermarks, no run history
    (home / "logs" / "handlers.log").unlink(missing_ok=True)  # this run's log only
    shutil.rmtree(home / "work", ignore_errors=True)
    stack = LocalStack(home)
    stack.start(parse_source_url(spec["source"]), parse_target_url(spec["target"]), spec.get("env") or None)
    return stack


def _execute_source(url: str, statements: list[str]) -> list[int]:
    import pymysql

    from aurora_replication_dev.local.stack import parse_source_url

    s = parse_source_url(url)
    conn = pymysql.connect(
        host=s["host"],
        port=s["port"],
        user=s["username"],
        password=s["password"],
        database=s["dbname"],
        autocommit=True,
    )
    counts = []
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                counts.append(cur.rowcount)
    finally:
        conn.close()
    return counts


def child_stack(spec: dict[str, Any]) -> dict[str, Any]:
    stack = _fresh_stack(spec)
    rss_started = maxrss_mb()
    steps = []
    try:
        for step in spec["steps"]:
            written = time.perf_counter()
            changed = _execute_source(spec["source"], step.get("before_sql", []))
            write_seconds = time.perf_counter() - written
            cpu_before = cpu_seconds()
            server = spec.get("mariadb_pid")
            server_before = _process_cpu(server) if server else 0.0
            started = time.perf_counter()
            # a step's own settings (EXTRACT_PROCESSES): its worker containers start with them
            with mock.patch.dict(os.environ, step.get("env", {})):
                outcome = stack.run(
                    step["request"],
                    workers=int(step.get("workers", spec["workers"])),
                    processes=bool(spec.get("processes")),
                )
            seconds = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            server_cpu = _process_cpu(server) - server_before if server else None
            states = outcome.run.get("table_states", {})
            table_state = states.get(step.get("table", TABLE), {})
            if spec.get("all_tables"):
                table_state = _all_tables(states)
            steps.append(
                {
                    "name": step["name"],
                    "changed_rows": changed,
                    # the statements that wrote the step's changes (autocommit: each its own transaction)
                    "write_seconds": write_seconds,
                    "seconds": seconds,
                    # CPU of the process running the stack (handlers, moto, boto3): on a shared machine
                    # it says more than the wall time about what the run itself costs
                    "cpu_seconds": cpu,
                    # MariaDB's CPU over the whole run (planning, snapshots, reads): what the run cost the source
                    "mariadb_cpu_seconds": server_cpu,
                    "ok": outcome.ok,
                    "dlq_messages": outcome.dlq_messages,
                    "rows": copied_rows(table_state),
                    # from the table's started_at (scheduler) to finished_at (finaliser), without the
                    # local driver's polling at either end
                    "table_seconds": float(table_state.get("finished_at") or 0)
                    - float(table_state.get("started_at") or 0),
                    # the finaliser's invocation that validated and committed the table (ledger + load table)
                    "finalise_seconds": float(table_state.get("finalise_seconds") or 0),
                    "table_state": {k: v for k, v in table_state.items() if k != "plan"},
                    # process containers: the largest peak of one worker process (None with threads)
                    "worker_peak_mb": outcome.worker_peak_mb,
                    # the table's finalise attempts (each invocation of its finaliser, with its steps)
                    "finalise_attempts": _finalise_attempts(stack, outcome.run_id, step.get("table", TABLE)),
                }
            )
    finally:
        stack.stop()
    return {"steps": steps, "maxrss_mb_after_start": rss_started, "maxrss_mb": maxrss_mb()}


def _finalise_attempts(stack: Any, run_id: str, table: str) -> list[dict[str, Any]]:
    from aurora_replication.ledger.store import StateStore

    attempts = StateStore(stack.table_name, stack.session.resource("dynamodb")).get_attempts(run_id)
    return [
        {"seconds": float(a["seconds"]), "status": a.get("status"), "steps": json.loads(a.get("steps") or "[]")}
        for a in attempts
        if a.get("table") == table and a.get("kind") == "finalise"
    ]


def _all_tables(states: dict[str, Any]) -> dict[str, Any]:
    """A run of many tables as one: how many ended in each status, rows, and the span from the first
    table's start to the last one's publish."""
    statuses: dict[str, int] = {}
    for t in states.values():
        statuses[str(t.get("status"))] = statuses.get(str(t.get("status")), 0) + 1
    started = [float(t["started_at"]) for t in states.values() if t.get("started_at")]
    finished = [float(t["finished_at"]) for t in states.values() if t.get("finished_at")]
    return {
        "tables": len(states),
        "statuses": statuses,
        "rows_copied": sum(copied_rows(t) for t in states.values()),
        "started_at": min(started) if started else 0,
        "finished_at": max(finished) if finished else 0,
        "validation": sorted({str(t.get("validation")) for t in states.values()})[:5],
    }


def build_small_tables(db: Any, tables: int, rows: int) -> dict[str, Any]:
    """``bench_small``: ``tables`` tables of ``rows`` rows each (key, text, decimal, date, NULLs), built
    once and reused while the count matches."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password, autocommit=True)
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
        source_read.stream_rows = stream_rows  # type: ignore[assignment]
        source_bulk.batches = batches  # type: ignore[assignment]
        staging.write_encoded = staging_file(original_encoded)  # type: ignore[assignment]
        staging.write_csv_gz = staging_file(original_csv)  # type: ignore[assignment]
        staging.write_lines_gz = staging_file(original_lines)  # type: ignore[assignment]
        source_read.chunk_checksum = table_checksum  # type: ignore[assignment]
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
    stack = _fresh_stack(spec)
    results = []
    try:
        for step in spec["steps"]:
            timer.__init__()  # type: ignore[misc]  # each step counts on its own
            changed = _execute_source(spec["source"], step.get("before_sql", []))
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


# ---- the parent: servers, table, measurements --------------------------------------------------


def build_table(db: Any, rows: int) -> dict[str, Any]:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{DATABASE}`")
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (DATABASE, TABLE),
            )
            columns = int(cur.fetchone()[0])  # type: ignore[index]
            existing = -1
            if columns == 10:
                cur.execute(f"SELECT COUNT(*) FROM `{TABLE}`")
                existing = int(cur.fetchone()[0])  # type: ignore[index]
            if existing == rows:
                log(f"table {DATABASE}.{TABLE} has {rows:,} rows already (cached)")
                # an earlier run's changes (cdc and incremental, 100,000 rows at a time) moved their
                # updated_at to that run's moment: the newest of them would be the full run's
                # watermark, and every row changed with it would fall in the next incremental window's
                # overlap. Put them back where FILL generated them, so each run starts from one state
                cur.execute(RESET_CHANGES.format(table=TABLE))
                if cur.rowcount:
                    log(f"  {cur.rowcount:,} rows changed by an earlier run put back as generated")
                return {"built": False, "seconds": 0.0}
            log(f"building {DATABASE}.{TABLE} with {rows:,} rows (once; cached under {BENCH})...")
            started = time.perf_counter()
            cur.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
            cur.execute(DDL)
            cur.execute(FILL.format(table=TABLE, rows=int(rows)))
            cur.execute(f"ANALYZE TABLE `{TABLE}`")
            cur.fetchall()
            seconds = time.perf_counter() - started
            log(f"  built in {seconds:.1f} s")
            return {"built": True, "seconds": seconds}
    finally:
        conn.close()


def plan_table_name(rows: int) -> str:
    return f"plan_{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"plan_{rows}"


def build_plan_table(db: Any, rows: int) -> dict[str, Any]:
    """``bench.plan_<n>``: five columns, ``rows`` rows, built once in MariaDB and then reused."""
    import pymysql

    table = plan_table_name(rows)
    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password, autocommit=True)
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


def print_targets(targets: list[tuple[str, float | None, Any, str]]) -> list[dict[str, Any]]:
    verdicts = []
    for name, value, test, unit in targets:
        if value is None or value != value:
            verdict, shown = "not measured", "-"
        else:
            verdict = "met" if test(value) else "NOT MET"
            shown = f"{value:+.0%}" if unit == "growth" else f"{value:.2f} {unit}" if unit != "x" else f"{value:.2f} x"
        verdicts.append({"target": name, "value": value, "verdict": verdict})
        print(f"  {verdict:<12} {name:<60} measured {shown}")
    return verdicts


READ_PARTS = (1, 2, 4)


def _mariadb_pid(db: Any) -> int | None:
    pid_file = Path(db.base) / "mysqld.pid"
    return int(pid_file.read_text().strip()) if pid_file.exists() else None


def _process_cpu(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    from aurora_replication.secrets import MySQLSettings
    from aurora_replication.source import bulk as source_bulk
    from aurora_replication.source import connect as source_connect
    from aurora_replication.source import discover
    from aurora_replication.source import read as source_read

    server = _mariadb_pid(db)
    if server is None:
        return {"available": False, "reason": f"MariaDB's pid file under {db.base} not found"}
    settings = MySQLSettings("127.0.0.1", db.port, db.user, db.password, DATABASE, tls=False)
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
                        small,
                        True,  # type: ignore[arg-type]
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
            helpers = {h.proc.pid: _process_cpu(h.proc.pid) for h in extract_parts._idle}
            server_before, own_before, started = _process_cpu(server), os.times(), time.perf_counter()
            rows, source = read(parts, reader)
            seconds = time.perf_counter() - started
            own = os.times()
            runs.append(
                {
                    "format": reader,
                    "parts": parts,
                    "rows": rows,
                    "seconds": seconds,
                    "mariadb_cpu_seconds": _process_cpu(server) - server_before,
                    "worker_cpu_seconds": own.user - own_before.user + own.system - own_before.system,
                    "helpers_cpu_seconds": sum(_process_cpu(pid) - cpu for pid, cpu in helpers.items()),
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


def measure_ceiling(db: Any, rows: int, tries: int = 2) -> dict[str, Any]:
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        return {"available": False, "reason": "neither the mariadb nor the mysql client is on PATH"}
    cmd = [
        client,
        "--quick",
        "--batch",
        "--skip-column-names",
        "-h",
        "127.0.0.1",
        "-P",
        str(db.port),
        "-u",
        db.user,
        DATABASE,
        "-e",
        f"SELECT * FROM `{TABLE}`",
    ]
    env = {**os.environ, "MYSQL_PWD": db.password}
    server = _mariadb_pid(db)
    times, server_cpu = [], []
    for _ in range(tries):
        before = _process_cpu(server) if server else 0.0
        started = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(cmd, stdout=null, check=True, env=env)
        times.append(time.perf_counter() - started)
        server_cpu.append(_process_cpu(server) - before if server else None)
    return {
        "available": True,
        "client": client,
        "seconds": min(times),
        "all_seconds": times,
        "rows": rows,
        # MariaDB's CPU for the dump: the least any reader of these rows can cost it (the mean of the tries)
        "mariadb_cpu_seconds": (sum(server_cpu) / len(server_cpu)) if server else None,
        "all_mariadb_cpu_seconds": server_cpu,
    }


def ensure_dlt_venv() -> tuple[Path | None, str]:
    venv = BENCH / "dlt-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and python.exists():
        return python, ""
    log(f"installing dlt into {venv} (once)...")
    try:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, capture_output=True, text=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "dlt[duckdb,sql_database]", "pyarrow", "sqlalchemy", "pymysql"],
            check=True,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        subprocess.run([str(python), "-c", "import dlt, duckdb, pyarrow, sqlalchemy, pymysql"], check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        reason = "installing dlt failed: " + (str(detail).strip().splitlines() or ["?"])[-1]
        return None, reason
    marker.touch()
    return python, ""


def measure_dlt(db: Any, rows: int) -> dict[str, Any]:
    python, reason = ensure_dlt_venv()
    if python is None:
        return {"available": False, "reason": reason}
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp:
        script, out = Path(tmp) / "dlt_bench.py", Path(tmp) / "out.json"
        script.write_text(DLT_SCRIPT)
        # the DuckDB file must not be named like the dataset ("bench"): DuckDB then finds the
        # catalog and the schema ambiguous and dlt's load step fails
        url = f"mysql+pymysql://{db.user}:{db.password}@127.0.0.1:{db.port}/{DATABASE}"
        env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        proc = subprocess.run(
            [str(python), str(script), url, str(Path(tmp) / "peer.duckdb"), str(Path(tmp) / "pipelines"), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not out.exists():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            errors = [line for line in lines if "Error" in line or "Exception" in line] or lines[-1:]
            return {"available": False, "reason": f"dlt run failed (exit {proc.returncode}): " + errors[-1][:300]}
        result = json.loads(out.read_text())
    ok = result["rows"] == rows and not result["failed_jobs"]
    return {"available": True, "ok": ok, "process_seconds": wall, **result}


FINALISER_TABLE = "orders_f{rows}"


def build_fraction(db: Any, rows: int) -> str:
    """A table of the orders table's first ``rows`` rows (same columns, same values), built once."""
    import pymysql

    name = FINALISER_TABLE.format(rows=rows)
    conn = pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password, autocommit=True)
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


def stack_spec(
    db: Any, sf: Any, name: str, schema: str, workers: int, steps: list[dict[str, Any]], processes: bool = False
) -> dict[str, Any]:
    """A child's stack runs; ``processes``: each worker container a process of its own, as in Lambda."""
    return {
        "kind": "stack",
        "home": str((BENCH / name).resolve()),
        "mariadb_pid": _mariadb_pid(db),
        "source": db.url(),
        "target": sf.url("ANALYTICS", schema),
        "workers": workers,
        "steps": steps,
        "processes": processes,
    }


CDC_CHANGES = (1_000, 100_000)


def change_n_sql(rows: int, n: int, statements: int = 1) -> list[str]:
    """``n`` rows updated by ``statements`` bulk statements over consecutive id ranges (their watermark moves
    too, so both modes see them)."""
    every = max(rows // n, 1)
    span = -(-rows // statements)
    each = -(-n // statements)
    return [
        f"UPDATE `{TABLE}` SET updated_at = NOW(6), total = total + 1 "
        f"WHERE id > {i * span} AND id <= {(i + 1) * span} AND id % {every} = 0 LIMIT {min(each, n - i * each)}"
        for i in range(statements)
        if n - i * each > 0
    ]


def change_rows_sql(rows: int) -> str:
    every = max(rows // CHANGED_ROWS, 1)
    return f"UPDATE `{TABLE}` SET updated_at = NOW(6) WHERE id % {every} = 0 LIMIT {CHANGED_ROWS}"


def top_functions(pstats_file: str, n: int = 25) -> list[dict[str, Any]]:
    import pstats

    stats = pstats.Stats(pstats_file).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.items():
        short = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        rows.append({"function": f"{short}:{line}({name})", "ncalls": nc, "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: -r["tottime"])
    return rows[:n]


def rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="benchmark: this project vs the mariadb client and dlt")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in the orders table (default 1,000,000)")
    p.add_argument("--quick", action="store_true", help="100,000 rows")
    p.add_argument("--out", default="bench-results/results.json", help="where to write the results as JSON")
    p.add_argument("--no-peer", action="store_true", help="skip dlt")
    p.add_argument("--profile", action="store_true", help="also time the phases of a one-worker run (and cProfile it)")
    p.add_argument("--keep-servers", action="store_true", help="leave MariaDB and the emulator running")
    p.add_argument(
        "--planning-only",
        action="store_true",
        help="only measure planning (chunk bounds) at 1M and 10M rows: MariaDB only, no emulator, no copy",
    )
    p.add_argument("--no-cdc", action="store_true", help="skip the cdc against incremental runs")
    p.add_argument(
        "--cdc-only",
        action="store_true",
        help="only change data capture: the cdc and incremental runs after a burst, and the reader alone "
        "(with --profile, once more under cProfile)",
    )
    p.add_argument(
        "--no-planning",
        action="store_true",
        help="skip the planning tables (1M and 10M rows; measured on their own by --planning-only)",
    )
    p.add_argument(
        "--small-tables",
        type=int,
        default=SMALL_TABLES,
        help=f"tables of {SMALL_ROWS} rows for the many-small-tables run (default {SMALL_TABLES}; 0 skips it)",
    )
    p.add_argument(
        "--finaliser-only",
        action="store_true",
        help="only the finaliser at two table sizes (the rows asked, and a tenth of them)",
    )
    p.add_argument(
        "--small-only",
        action="store_true",
        help="only the many-small-tables run (MariaDB and the emulator, no large table)",
    )
    p.add_argument(
        "--small-processes",
        action="store_true",
        help="the many-small-tables run with its 2 worker containers as processes of their own, as in Lambda "
        "(the default)",
    )
    p.add_argument(
        "--small-threads",
        action="store_true",
        help="the many-small-tables run with its 2 worker containers as threads of the stack's process, which "
        "share one GIL with moto and the driver (the default of the first rounds)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.chdir(ROOT)
    if args.child:
        return child(args.child)
    if args.small_processes and args.small_threads:
        p.error("--small-processes and --small-threads exclude each other")
    args.small_processes = not args.small_threads
    rows = 100_000 if args.quick else args.rows
    if rows < CHANGED_ROWS:
        p.error(f"--rows must be at least {CHANGED_ROWS}")

    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    if args.planning_only:
        return planning_only(args.out, args.keep_servers)
    if args.small_only:
        return small_only(args.out, args.keep_servers, args.small_tables or SMALL_TABLES, args.small_processes)
    if args.finaliser_only:
        return finaliser_only(args.out, args.keep_servers, rows)
    if args.cdc_only:
        return cdc_only(args.out, args.keep_servers, rows, args.profile)
    started_all = time.perf_counter()
    log("starting MariaDB and the Snowflake emulator under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    sf = SnowflakeEmulator(BENCH / "snowflake").start()
    results: dict[str, Any] = {
        "rows": rows,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    try:
        results["table"] = build_table(db, rows)
        with db.connect(DATABASE) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            results["machine"]["mariadb"] = cur.fetchone()[0]

        log("ceiling: mariadb --quick to /dev/null...")
        results["ceiling"] = measure_ceiling(db, rows)

        full = {"tables": TABLE, "mode": "full", "chunk_rows": FULL_CHUNK_ROWS}
        incremental = {"tables": TABLE, "mode": "incremental", "chunk_rows": FULL_CHUNK_ROWS}
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
        results["memory"] = memory

        if not args.no_planning:
            results["planning"].update(measure_planning(db, PLAN_SIZES, PLAN_CHUNKS))

        if args.profile:
            out_dir = Path(args.out).resolve().parent
            out_dir.mkdir(parents=True, exist_ok=True)
            spec = {
                "kind": "profile",
                "home": str((BENCH / "profile").resolve()),
                "source": db.url(),
                "target": sf.url("ANALYTICS", "BENCHPROF"),
                "steps": [
                    {"name": "full", "request": full},
                    {"name": "incremental", "request": incremental, "before_sql": [change_rows_sql(rows)]},
                ],
            }
            log("profile: phase timers, one worker driven from the main thread (full, then incremental)...")
            results["profile"] = run_child(spec, "profile")
            log("profile: the same runs under cProfile...")
            prof = run_child({**spec, "cprofile": str(out_dir)}, "cprofile")
            results["profile"]["cprofile"] = [
                {
                    "name": step["name"],
                    "seconds_under_profiler": step["total_seconds"],
                    "pstats": step["pstats"],
                    "top_tottime": top_functions(step["pstats"]),
                }
                for step in prof["steps"]
            ]
    finally:
        if not args.keep_servers:
            sf.stop()
            db.stop()
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

    import pymysql

    from aurora_replication.secrets import MySQLSettings
    from aurora_replication.source import binlog
    from aurora_replication_dev.local.stack import parse_source_url

    s = parse_source_url(spec["source"])
    settings = MySQLSettings(s["host"], s["port"], s["username"], s["password"], s["dbname"], False)
    conn = pymysql.connect(
        host=s["host"],
        port=s["port"],
        user=s["username"],
        password=s["password"],
        database=s["dbname"],
        autocommit=True,
    )
    try:
        facts = binlog.column_facts(conn, s["dbname"], TABLE)
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


def _sustained_writer(spec: dict[str, Any], ticks: list[tuple[float, float, int]], failed: list[str]) -> None:
    """``rate`` row changes a second for ``seconds``, each tenth of a second's changes one transaction that
    sets ``updated_at`` to the tick's own time (UTC): which ticks Snowflake shows is then read off the
    target's newest ``updated_at``. Appends (tick time, commit time, rows) to ``ticks``."""
    import datetime as dt

    import pymysql

    from aurora_replication_dev.local.stack import parse_source_url

    s = parse_source_url(spec["source"])
    rows, rate, seconds = int(spec["rows"]), int(spec["rate"]), float(spec["seconds"])
    per_tick = max(rate // 10, 1)
    conn = pymysql.connect(
        host=s["host"],
        port=s["port"],
        user=s["username"],
        password=s["password"],
        database=s["dbname"],
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            started = time.time()
            tick, at = 0, 0
            while time.time() < started + seconds:
                due = started + tick / 10
                if time.time() < due:
                    time.sleep(due - time.time())  # the writer's own pace: a rate, not a condition
                now = time.time()
                stamp = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
                lower = at % rows
                cur.execute(
                    f"UPDATE `{TABLE}` SET total = total + 1, updated_at = %s WHERE id > %s AND id <= %s",
                    (stamp, lower, lower + per_tick),
                )
                ticks.append((now, time.time(), int(cur.rowcount)))
                at += per_tick
                tick += 1
    except Exception as e:  # noqa: BLE001 - reported with the result
        failed.append(f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def _target_facts(spec: dict[str, Any]) -> tuple[int, int, float | None]:
    """Rows, their SUM(total) (in cents) and the newest updated_at (epoch seconds) in Snowflake."""
    import snowflake.connector

    from aurora_replication_dev.local.stack import parse_target_url

    t = parse_target_url(spec["target"])
    conn = snowflake.connector.connect(
        user=t["user"],
        password=t["password"],
        account=t["account"],
        host=t.get("host"),
        port=t.get("port"),
        protocol=t.get("protocol", "https"),
        database=t["database"],
        schema=t["schema"],
    )
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT COUNT(*), SUM(TOTAL * 100), MAX(UPDATED_AT) FROM "{TABLE.upper()}"')
        count, total, newest = cur.fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    import datetime as dt

    newest_at = newest.replace(tzinfo=dt.UTC).timestamp() if newest is not None else None
    return int(count or 0), int(total or 0), newest_at


def child_cdc_sustained(spec: dict[str, Any]) -> dict[str, Any]:
    """The initial cdc copy, then a writer at ``rate`` changes a second for ``seconds`` while cdc runs back
    to back (2 workers), then runs until the target holds the writer's last change. Each change's lag: from
    its commit to the end of the first run after which the target's newest ``updated_at`` reaches it. At
    the end, MySQL's rows and SUM(total) against Snowflake's."""
    import threading

    import pymysql

    from aurora_replication_dev.local.stack import parse_source_url

    stack = _fresh_stack(spec)
    request = {"tables": TABLE, "mode": "cdc"}
    ticks: list[tuple[float, float, int]] = []
    failed: list[str] = []
    runs: list[dict[str, Any]] = []
    try:
        first = stack.run(request, workers=2, processes=True)
        writer = threading.Thread(target=_sustained_writer, args=(spec, ticks, failed), daemon=True)
        writer.start()
        deadline = time.time() + float(spec["seconds"]) + 600  # bounded: a run that cannot catch up ends it
        seen = 0
        while time.time() < deadline:
            writing = writer.is_alive()
            started = time.time()
            outcome = stack.run(request, workers=2, processes=True)
            finished = time.time()
            count, total, newest = _target_facts(spec)
            visible = [t for t in ticks[seen:] if newest is not None and t[0] <= newest + 1e-6]
            runs.append(
                {
                    "started": started,
                    "seconds": finished - started,
                    "ok": outcome.ok,
                    "changes": sum(t[2] for t in visible),
                    "lags": [(finished - t[1], t[2]) for t in visible],
                }
            )
            seen += len(visible)
            if not writing and seen >= len(ticks):
                break
        writer.join(timeout=5)
    finally:
        stack.stop()
    s = parse_source_url(spec["source"])
    conn = pymysql.connect(
        host=s["host"], port=s["port"], user=s["username"], password=s["password"], database=s["dbname"]
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), SUM(total * 100) FROM `{TABLE}`")
            mysql_count, mysql_total = cur.fetchone()  # type: ignore[misc]
    finally:
        conn.close()
    count, total, _ = _target_facts(spec)
    lags = sorted(lag for r in runs for lag, n in r["lags"] for _ in range(n))
    written = sum(t[2] for t in ticks)
    return {
        "rate": spec["rate"],
        "seconds": spec["seconds"],
        "written": written,
        "write_seconds": (ticks[-1][1] - ticks[0][0]) if ticks else 0.0,
        "initial_ok": first.ok,
        "runs": [{k: v for k, v in r.items() if k != "lags"} for r in runs],
        "visible": len(lags),
        "lag_p50": lags[len(lags) // 2] if lags else None,
        "lag_p95": lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else None,
        "lag_max": lags[-1] if lags else None,
        "exact": (int(mysql_count), int(mysql_total or 0)) == (count, total),
        "mysql": [int(mysql_count), int(mysql_total or 0)],
        "snowflake": [count, total],
        "writer_failed": failed,
        "ok": first.ok and all(r["ok"] for r in runs) and not failed and len(lags) == written,
    }


def measure_cdc_sustained(db: Any, sf: Any, rows: int, rate: int, seconds: float) -> dict[str, Any]:
    log(f"cdc under a sustained writer: {rate:,} changes/s for {seconds:g} s, cdc runs back to back...")
    spec = stack_spec(db, sf, "cdc-sustained", "BENCHCDCSUS", 2, [])
    spec.update({"kind": "cdc_sustained", "rows": rows, "rate": rate, "seconds": seconds})
    return run_child(spec, "cdc sustained")


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
        "(2 worker processes)"
    )
    print(
        f"{'changes':>9} {'statements s':>12} {'cdc run s':>10} {'table s':>8} {'changes/s':>10} {'x write':>8}  note"
    )
    for n in cdc["changes"]:
        step = cdc["cdc"][str(n)]
        ratio = step["seconds"] / step["write_seconds"] if step.get("write_seconds") else None
        note = ("ok" if step["ok"] else "FAILED") + f"; {step['rows']:,} rows applied"
        print(
            f"{n:>9,} {fmt(step.get('write_seconds'), '12.2f')} {step['seconds']:>10.2f} {step['table_seconds']:>8.2f} "
            f"{fmt(rate(n, step['seconds']), '10,.0f')} {fmt(ratio, '8.1f')}  {note}"
        )
    reader = cdc.get("reader")
    if reader:
        print(
            f"the reader alone (binlog.read_window, no stack): {reader['changes']:,} changes in {reader['seconds']:.2f} s "
            f"({rate(reader['changes'], reader['seconds']) or 0:,.0f} changes/s, {reader['cpu_seconds']:.1f} CPU s); "
            f"the statements wrote them in {reader['write_seconds']:.2f} s"
        )
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
        if prof:
            total = sum(prof["parts"].values()) or 1.0
            print(f"  under cProfile ({prof['seconds']:.2f} s), own time by part:")
            for name, seconds in sorted(prof["parts"].items(), key=lambda kv: -kv[1]):
                print(f"  {seconds:8.2f} s  {seconds / total:6.1%}  {name}")


def cdc_targets(cdc: dict[str, Any]) -> list[tuple[str, float | None, Any, str]]:
    if not cdc.get("available") or not cdc.get("changes"):
        return []
    n = max(cdc["changes"])
    step = cdc["cdc"][str(n)]
    applied = step["ok"] and step["rows"] >= n
    ratio = step["seconds"] / step["write_seconds"] if applied and step.get("write_seconds") else None
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
            rate(n, step["seconds"]) if applied else None,
            lambda v: v >= TARGET_CDC_CHANGES_PER_SECOND,
            "changes/s",
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
    ]


def cdc_only(out: str, keep_servers: bool, rows: int, profile: bool) -> int:
    """``--cdc-only``: the table (built once), the cdc and incremental runs, the reader alone; nothing else."""
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    log("starting MariaDB and the Snowflake emulator under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    sf = SnowflakeEmulator(BENCH / "snowflake").start()
    try:
        build_table(db, rows)
        cdc = measure_cdc(db, sf, rows, str(Path(out).resolve().parent) if profile else None)
    finally:
        if not keep_servers:
            sf.stop()
            db.stop()
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
    out["ok"] = all(step["ok"] for mode in ("cdc", "incremental") for step in out[mode].values())
    out["reader"] = measure_cdc_reader(db, rows, profile_dir)
    out["sustained"] = measure_cdc_sustained(db, sf, rows, SUSTAINED_RATE, SUSTAINED_SECONDS)
    out["ok"] = out["ok"] and out["sustained"]["ok"] and out["sustained"]["exact"]
    return out


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
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    log("starting MariaDB and the Snowflake emulator under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    sf = SnowflakeEmulator(BENCH / "snowflake").start()
    try:
        small = measure_small_tables(db, sf, tables, SMALL_ROWS, processes)
    finally:
        if not keep_servers:
            sf.stop()
            db.stop()
    report_small_tables(small)
    print("\ntargets (issue 14):")
    small["targets"] = print_targets(small_tables_targets(small))
    write_results(out, {"small_tables": small})
    return 0 if small["ok"] else 1


def finaliser_only(out: str, keep_servers: bool, rows: int) -> int:
    """``--finaliser-only``: the table (built once) and the finaliser at two sizes; nothing else."""
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    log("starting MariaDB and the Snowflake emulator under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    sf = SnowflakeEmulator(BENCH / "snowflake").start()
    try:
        build_table(db, rows)
        finaliser = measure_finaliser(db, sf, rows)
    finally:
        if not keep_servers:
            sf.stop()
            db.stop()
    report_finaliser(finaliser)
    print("\ntargets (issue 27):")
    finaliser["targets"] = print_targets(finaliser_targets(finaliser))
    write_results(out, {"finaliser": finaliser})
    return 0 if finaliser["ok"] else 1


def write_results(out: str, results: dict[str, Any]) -> None:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(results), indent=2) + "\n")
    print(f"\nresults written to {path}")


def planning_only(out: str, keep_servers: bool) -> int:
    """``--planning-only``: MariaDB, the planning tables, and the planning measurements; nothing else."""
    from aurora_replication_dev.local.services import MariaDB

    log("starting MariaDB under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    try:
        planning = measure_planning(db, PLAN_SIZES, PLAN_CHUNKS)
    finally:
        if not keep_servers:
            db.stop()
    report_planning(planning)
    print("\ntargets (issue 9):")
    planning["targets"] = print_targets(planning_targets(planning))
    write_results(out, {"planning": planning})
    return 0 if all(t["verdict"] == "met" for t in planning["targets"]) else 1


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


if __name__ == "__main__":
    raise SystemExit(main())
