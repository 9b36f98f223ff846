"""The emulator reads a staged file within a small memory budget, however long its records may be.

DuckDB allocates a compressed CSV's whole read buffer up front, 16 x max_line_size unless told: the
launcher's 512 MB record limit once cost 8 GB per COPY, and three concurrent COPYs ran a 23 GB
machine out of memory in the middle of a test run."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from aurora_replication_dev.local.snowflake_emulator import _longest_possible_record

_READ = r"""
import json, sys
import duckdb
from fakesnow import copy_into
from aurora_replication_dev.local.snowflake_emulator import _patch_csv_types

_patch_csv_types()
sql = copy_into.ReadCSV(quote='"').read_expression(sys.argv[1]).sql(dialect="duckdb")
conn = duckdb.connect(config={"memory_limit": "256MB", "threads": 1})
print(json.dumps(conn.execute(f"SELECT count(*), max(length(column1)) FROM {sql}").fetchone()))
"""


def _staged(path: Path, long_value: int, rows: int) -> Path:
    with gzip.open(path, "wt", newline="") as f:
        f.write(f'0,"{"y" * long_value}"\n')
        for i in range(1, rows):
            f.write(f'{i},"x{i}"\n')
    return path


def test_a_gzipped_file_with_a_record_longer_than_duckdbs_default_reads_in_256_mb(tmp_path: Path) -> None:
    staged = _staged(tmp_path / "chunk.csv.gz", 3_000_000, 20_000)
    out = subprocess.run([sys.executable, "-c", _READ, str(staged)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [20_000, 3_000_000]


def test_the_record_limit_is_the_files_uncompressed_size_within_2_mb_and_512_mb(tmp_path: Path) -> None:
    small = _staged(tmp_path / "small.csv.gz", 10, 3)
    assert _longest_possible_record(str(small)) == 2 * 1024 * 1024
    plain = tmp_path / "plain.csv"
    plain.write_text("1," + "z" * 5_000_000 + "\n")
    assert _longest_possible_record(str(plain)) == 5_000_003 + 1
    long = _staged(tmp_path / "long.csv.gz", 4_000_000, 1)
    assert _longest_possible_record(str(long)) == 4_000_000 + len('0,""\n') + 1
    assert _longest_possible_record("s3://bucket/elsewhere.csv.gz") == 512 * 1024 * 1024


def test_the_emulator_keeps_only_its_most_recent_results() -> None:
    from aurora_replication_dev.local.snowflake_emulator import RecentResults

    cache = RecentResults(3)
    for i in range(5):
        cache[f"q{i}"] = (i,)
    assert list(cache) == ["q2", "q3", "q4"] and cache.get("q0") is None
