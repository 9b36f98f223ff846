"""A large chunk read in parts at once (EXTRACT_PROCESSES > 1): the parts cover the chunk's key range
exactly, whatever the key's type; their files hold every row once; their counts and checksums add up
to the chunk's own; and a whole run through the stack publishes the same table as MySQL's."""

from __future__ import annotations

import csv
import gzip
import json
import os
from typing import Any

import pytest
from backports import zstd

from aurora_replication.models import ChunkMessage
from aurora_replication.pipeline import extract_parts
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bounds as source_bounds
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import connect as source_connect
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from compare import assert_same

KEYS = {
    "int": ("id INT PRIMARY KEY", "seq"),
    "varchar": ("id VARCHAR(20) PRIMARY KEY", "CONCAT('k', LPAD(seq * 7 MOD 10007, 6, '0'))"),
    "datetime": ("id DATETIME(6) PRIMARY KEY", "'2024-01-01' + INTERVAL seq * 37 SECOND"),
    "composite": ("a INT, b VARCHAR(10), PRIMARY KEY (a, b)", None),
}


def _settings(env) -> MySQLSettings:
    return MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)


def _make(env, kind: str, rows: int) -> None:
    key, expr = KEYS[kind]
    if kind == "composite":
        env.sql(
            f"CREATE TABLE t ({key}, v DOUBLE, note TEXT)",
            f"INSERT INTO t SELECT seq DIV 50, CONCAT('b', seq MOD 50), seq / 3, IF(seq MOD 9 = 0, NULL, "
            f"CONCAT('n,\"', seq, '\"\\n')) FROM seq_1_to_{rows}",
        )
    else:
        env.sql(
            f"CREATE TABLE t ({key}, v DOUBLE, note TEXT)",
            f"INSERT INTO t SELECT {expr}, seq / 3, IF(seq MOD 9 = 0, NULL, CONCAT('n,\"', seq, '\"\\n')) "
            f"FROM seq_1_to_{rows}",
        )
    env.sql("ANALYZE TABLE t")


def _message(plan, lower=None, upper=None) -> ChunkMessage:
    return ChunkMessage(run_id="r1", chunk_id=0, chunk_count=1, plan=plan, lower=lower, upper=upper)


def _lines(path: str) -> list[tuple[str, ...]]:
    opener = zstd.open if path.endswith(".zst") else gzip.open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return [tuple(row) for row in csv.reader(f)]


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_the_parts_of_a_chunk_hold_its_rows_once_and_add_up_to_its_checksum(env, tmp_path, kind):
    _make(env, kind, 3000)
    plan = source_discover.discover_table(env.mysql, env.database, "t")
    conn = source_connect.connect(_settings(env))
    try:
        ranges = source_bounds.split_range(conn, "t", plan.key, None, None, 4, 200)
        assert len(ranges) >= 2, ranges
        # contiguous: each part starts where the one before it ended, and the ends are open
        assert ranges[0][0] is None and ranges[-1][1] is None
        assert all(a[1] == b[0] and a[1] is not None for a, b in zip(ranges, ranges[1:], strict=False))
        local = str(tmp_path / "work" / "data-A1.csv.gz")
        with source_read.snapshot(conn):
            parts = extract_parts.read_in_parts(
                conn, lambda _: _settings(env), plan, _message(plan), "A1", local, 4, 200, True
            )
        assert parts is not None and len(parts.files) == len(ranges)
        lines = [line for name in parts.files for line in _lines(str(tmp_path / "work" / name))]
        assert parts.rows == len(lines) == 3000
        # the count and checksum of one query over the whole chunk
        single = source_read.chunk_checksum(conn, plan, None, None)
        assert parts.source == single and single[0] == 3000
        assert all(line[-2:] == ("0", "A1") for line in lines)
        assert len(set(lines)) == 3000
    finally:
        conn.close()
        extract_parts.close_helpers()


@pytest.mark.parametrize("kind", ["int", "composite"])
def test_worker_parts_hold_the_chunks_rows_once_and_add_up_to_its_checksum(env, tmp_path, kind):
    """EXTRACT_FORMAT=worker: the parts are plain SELECTs on the bulk reader's connections (the first in
    the chunk's snapshot, the others in helpers), their lines and terms made on the worker, zstd files;
    the chunk is cut on pymysql's connection. Every row once, and MySQL's checksum of the chunk."""
    _make(env, kind, 3000)
    plan = source_discover.discover_table(env.mysql, env.database, "t")
    conn = source_connect.connect(_settings(env))
    bulk = source_bulk.connect(_settings(env))
    try:
        local = str(tmp_path / "work" / "data-A1.csv.zst")
        with source_read.snapshot(bulk):
            parts = extract_parts.read_in_parts(
                bulk, lambda _: _settings(env), plan, _message(plan), "A1", local, 3, 200, True, "worker", conn
            )
        assert parts is not None and len(parts.files) >= 2
        assert all(name.endswith(".csv.zst") for name in parts.files)
        lines = [line for name in parts.files for line in _lines(str(tmp_path / "work" / name))]
        assert parts.rows == len(lines) == len(set(lines)) == 3000
        assert parts.source == source_read.chunk_checksum(conn, plan, None, None)
    finally:
        conn.close()
        bulk.close()
        extract_parts.close_helpers()


def test_a_chunk_estimated_below_two_parts_is_read_in_one_query(env, tmp_path):
    _make(env, "int", 300)
    plan = source_discover.discover_table(env.mysql, env.database, "t")
    conn = source_connect.connect(_settings(env))
    try:
        assert source_bounds.split_range(conn, "t", plan.key, None, None, 4, 1000) == [(None, None)]
        local = str(tmp_path / "data-A1.csv.gz")
        with source_read.snapshot(conn):
            assert (
                extract_parts.read_in_parts(
                    conn, lambda _: _settings(env), plan, _message(plan), "A1", local, 4, 1000, True
                )
                is None
            )
        assert not os.listdir(tmp_path)
        # a sub-range of a chunk is cut inside its own bounds
        inner = source_bounds.split_range(conn, "t", plan.key, ["100"], ["250"], 3, 10)
        assert inner[0][0] == ["100"] and inner[-1][1] == ["250"] and len(inner) == 3
    finally:
        conn.close()


def _part_counts(log_path: str) -> list[list[float] | None]:
    out = []
    with open(log_path, encoding="utf-8") as f:
        for line in f:
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "chunk copied":
                out.append(entry.get("parts"))
    return out


def test_a_run_with_chunks_read_in_parts_publishes_the_table_exactly(env):
    _make(env, "varchar", 4000)
    stack = env.start_stack({"EXTRACT_PROCESSES": "3", "EXTRACT_PART_MIN_ROWS": "100", "SMALL_CHUNK_ROWS": "0"})
    outcome = stack.run({"tables": "t", "mode": "full", "chunk_rows": 2000}, workers=2, timeout=300)
    assert outcome.ok
    assert assert_same(env, "t") == 4000
    parts = _part_counts(str(stack.log_path))
    # at most EXTRACT_PROCESSES parts a chunk; a chunk estimated below two parts is read in one query
    assert any(p is not None and len(p) == 3 for p in parts), parts
    assert all(p is None or 2 <= len(p) <= 3 for p in parts), parts
    # a change, and a second run on the same stack: its workers' helpers are warm
    env.sql("UPDATE t SET v = -v WHERE id < 'k001000'")
    assert stack.run({"tables": "t", "mode": "full", "chunk_rows": 4000}, workers=1, timeout=300).ok
    assert assert_same(env, "t") == 4000


def test_a_copy_of_named_files_loads_those_and_fails_on_a_missing_one(env, tmp_path):
    """The emulator's FILES on an internal stage (the launcher's fix): the named files load, in one
    statement; a name that is not staged fails the COPY and loads nothing, as in Snowflake."""
    import snowflake.connector

    for i in range(2):
        with gzip.open(tmp_path / f"data-A-{i:03d}.csv.gz", "wt", encoding="utf-8", newline="") as f:
            f.write(f'{i},"x{i}"\n')
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{env.schema}"')
        cur.execute(f'USE SCHEMA "{env.schema}"')
        cur.execute("CREATE STAGE IF NOT EXISTS S1")
        cur.execute('CREATE TABLE T1 ("ID" NUMBER, "V" VARCHAR)')
        cur.execute(f"PUT 'file://{tmp_path}/data-A-*.csv.gz' @S1/p/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
        fmt = "FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"' COMPRESSION = GZIP)"
        with pytest.raises(snowflake.connector.errors.ProgrammingError, match="data-A-009.csv.gz"):
            cur.execute(f"COPY INTO T1 FROM @S1/p/ FILES = ('data-A-000.csv.gz', 'data-A-009.csv.gz') {fmt}")
        assert cur.execute("SELECT COUNT(*) FROM T1").fetchone() == (0,)  # the failed COPY loaded nothing
        cur.execute(f"COPY INTO T1 FROM @S1/p/ FILES = ('data-A-000.csv.gz', 'data-A-001.csv.gz') {fmt}")
        assert cur.execute('SELECT "ID", "V" FROM T1 ORDER BY 1').fetchall() == [(0, "x0"), (1, "x1")]
    finally:
        conn.close()
