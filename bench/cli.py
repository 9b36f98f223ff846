"""``python -m bench``: the options, and which measures they run; ``--child SPEC`` is a child process's entry."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench import cdc, cdc_sustained, children, finaliser, phases, planning, small_tables, suite
from bench.output import jsonable
from bench.settings import CHANGED_ROWS, ROOT, SMALL_ROWS, SMALL_TABLES


def child(spec_path: str) -> int:
    """A child process (``--child SPEC``): the run its spec names; its result written where the spec says."""
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("kind") == "profile":
        result = phases.child_profile(spec)
    elif spec.get("kind") == "cdc_reader":
        result = cdc.child_cdc_reader(spec)
    elif spec.get("kind") == "cdc_sustained":
        result = cdc_sustained.child_cdc_sustained(spec)
    else:
        result = children.child_stack(spec)
    Path(spec["out"]).write_text(json.dumps(jsonable(result)))
    return 0


def parser() -> argparse.ArgumentParser:
    """The options (docs/performance.md, "Running it")."""
    p = argparse.ArgumentParser(
        prog="python -m bench", description="benchmark: this project vs the mariadb client and dlt"
    )
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
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
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

    if args.planning_only:
        return planning.planning_only(args.out, args.keep_servers)
    if args.small_only:
        return small_tables.small_only(
            args.out, args.keep_servers, args.small_tables or SMALL_TABLES, args.small_processes
        )
    if args.finaliser_only:
        return finaliser.finaliser_only(args.out, args.keep_servers, rows)
    if args.cdc_only:
        return cdc.cdc_only(args.out, args.keep_servers, rows, args.profile)
    return suite.run_all(args, rows)
