"""Where the bench keeps its servers and tables, the sizes it measures at, and the targets of the issues it
reports against."""

from __future__ import annotations

from pathlib import Path

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
