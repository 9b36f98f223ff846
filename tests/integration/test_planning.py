"""Chunk planning against the real MariaDB: every key distribution and kind is partitioned exactly,
into bounded chunks, with a number of statements that grows with the chunks and without reading
the rows; and tables planned that way replicate exactly through the local stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from aurora_replication.keyset import range_predicate
from aurora_replication.source import bounds
from aurora_replication.source import connect as source_connect
from aurora_replication.source import read as source_read
from aurora_replication.source.sql import mysql_ident
from compare import assert_same

CHUNK = 2000

# name: (DDL, fill, key) -- about 40,000 rows each, generated inside MariaDB
TABLES: dict[str, tuple[str, list[str], list[str]]] = {
    "dense": (
        "CREATE TABLE dense (id BIGINT PRIMARY KEY, pad VARCHAR(80))",
        ["INSERT INTO dense SELECT seq, REPEAT('x', seq % 80) FROM seq_1_to_40000"],
        ["id"],
    ),
    "sparse": (
        "CREATE TABLE sparse (id BIGINT PRIMARY KEY, pad VARCHAR(80))",
        ["INSERT INTO sparse SELECT seq * 1000003, REPEAT('x', seq % 80) FROM seq_1_to_40000"],
        ["id"],
    ),
    "skewed": (  # a dense core, a cubic tail, outliers at the top of the unsigned range
        "CREATE TABLE skewed (id BIGINT UNSIGNED PRIMARY KEY, pad VARCHAR(80))",
        [
            "INSERT INTO skewed SELECT seq, REPEAT('x', seq % 80) FROM seq_1_to_30000",
            "INSERT INTO skewed SELECT 1000000 + seq * seq * seq, 'tail' FROM seq_1_to_10000",
            "INSERT INTO skewed VALUES (18446744073709551615, 'max'), (9223372036854775807, 'mid')",
        ],
        ["id"],
    ),
    "composite": (  # one tenant holds most rows: it is split by the second column
        "CREATE TABLE composite (tenant INT NOT NULL, id INT NOT NULL, pad VARCHAR(40), PRIMARY KEY (tenant, id))",
        [
            "INSERT INTO composite SELECT 1, seq, 'big tenant' FROM seq_1_to_25000",
            "INSERT INTO composite SELECT 2 + seq DIV 50, seq % 50, 'small' FROM seq_0_to_14999",
        ],
        ["tenant", "id"],
    ),
    "strings_ci": (  # case- and accent-insensitive order, four-byte characters
        "CREATE TABLE strings_ci (k VARCHAR(64) NOT NULL PRIMARY KEY, pad VARCHAR(40)) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
        [
            "INSERT INTO strings_ci SELECT CONCAT(ELT(1 + seq % 7, 'alice', 'Bob', 'émile', 'zoë', 'Ørsted', '李', "
            "'😀'), '-', LPAD(seq, 7, '0'), IF(seq % 3 = 0, 'X', 'y')), 'p' FROM seq_1_to_40000"
        ],
        ["k"],
    ),
    "strings_uca": (
        "CREATE TABLE strings_uca (k CHAR(32) NOT NULL PRIMARY KEY, pad VARCHAR(40)) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        ["INSERT INTO strings_uca SELECT MD5(seq), 'p' FROM seq_1_to_40000"],
        ["k"],
    ),
    "strings_bin": (
        "CREATE TABLE strings_bin (k VARCHAR(40) NOT NULL PRIMARY KEY) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        ["INSERT INTO strings_bin SELECT CONCAT(IF(seq % 2, 'A', 'a'), HEX(seq * 7919)) FROM seq_1_to_40000"],
        ["k"],
    ),
    "strings_latin1": (
        "CREATE TABLE strings_latin1 (k VARCHAR(40) NOT NULL PRIMARY KEY) CHARACTER SET latin1",
        ["INSERT INTO strings_latin1 SELECT CONCAT(ELT(1 + seq % 3, 'Ärger', 'arm', 'Zoo'), seq) FROM seq_1_to_40000"],
        ["k"],
    ),
    "string_composite": (
        "CREATE TABLE string_composite (region VARCHAR(20) NOT NULL, id INT NOT NULL, pad VARCHAR(40), "
        "PRIMARY KEY (region, id)) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        [
            "INSERT INTO string_composite SELECT ELT(1 + seq % 4, 'eu', 'US', 'apac', 'Eu-West'), seq, 'p' FROM seq_1_to_40000"
        ],
        ["region", "id"],
    ),
    "dates": (
        "CREATE TABLE dates (d DATE NOT NULL, n INT NOT NULL, pad VARCHAR(40), PRIMARY KEY (d, n))",
        [
            "INSERT INTO dates SELECT DATE('2000-01-01') + INTERVAL (seq DIV 100) DAY, seq % 100, 'p' FROM seq_1_to_40000"
        ],
        ["d", "n"],
    ),
    "datetimes": (
        "CREATE TABLE datetimes (at DATETIME(6) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            "INSERT INTO datetimes SELECT TIMESTAMP('2021-01-01') + INTERVAL (seq * 31) SECOND "
            "+ INTERVAL (seq % 1000000) MICROSECOND, 'p' FROM seq_1_to_40000"
        ],
        ["at"],
    ),
    "decimals": (
        "CREATE TABLE decimals (v DECIMAL(20,4) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        ["INSERT INTO decimals SELECT (CAST(seq AS SIGNED) - 20000) * 0.0173, 'p' FROM seq_1_to_40000"],
        ["v"],
    ),
    "times": (
        "CREATE TABLE times (t TIME(3) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        ["INSERT INTO times SELECT SEC_TO_TIME(CAST(seq AS SIGNED) * 61 - 1000000), 'p' FROM seq_1_to_40000"],
        ["t"],
    ),
    "unique_index": (  # no primary key: the unique index is the key and its index is the one used
        "CREATE TABLE unique_index (a INT NULL, code VARCHAR(20) NOT NULL, n INT NOT NULL, UNIQUE KEY ux (code, n))",
        ["INSERT INTO unique_index SELECT NULL, CONCAT('c', seq % 50), seq FROM seq_1_to_40000"],
        ["code", "n"],
    ),
    "enum_key": (  # MySQL orders an ENUM by its index and compares it as text: walked, still exact
        "CREATE TABLE enum_key (r ENUM('z', 'a', 'm') NOT NULL, id INT NOT NULL, PRIMARY KEY (r, id))",
        ["INSERT INTO enum_key SELECT ELT(1 + seq % 3, 'z', 'a', 'm'), seq FROM seq_1_to_9000"],
        ["r", "id"],
    ),
}


class CountingConnection:
    """A connection that counts the statements sent through it."""

    def __init__(self, conn: pymysql.Connection[Any]) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def cursor(self, *args: Any) -> Any:
        cur = self.conn.cursor(*args)
        original = cur.execute

        def execute(query: str, params: Any = None) -> Any:
            self.statements.append(query)
            return original(query, params)

        cur.execute = execute  # type: ignore[method-assign]
        return cur


def connect(db: Any, database: str) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host="127.0.0.1",
        port=db.port,
        user=db.user,
        password=db.password,
        database=database,
        charset="utf8mb4",
        autocommit=True,
        conv=source_connect.ENCODERS_ONLY,
        init_command="SET time_zone = '+00:00'",
    )


@pytest.fixture(scope="module")
def planning_db(servers: Any) -> Iterator[pymysql.Connection[Any]]:
    db, _ = servers
    name = f"plan{os.getpid()}"
    admin = db.connect()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    conn = connect(db, name)
    with conn.cursor() as cur:
        for ddl, fill, _ in TABLES.values():
            cur.execute(ddl)
            for statement in fill:
                cur.execute(statement)
        for table in TABLES:
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    yield conn
    conn.close()


def handler_reads(conn: pymysql.Connection[Any]) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'", ())
        return {str(k): int(v) for k, v in cur.fetchall()}


def partition_counts(conn: pymysql.Connection[Any], table: str, key: list[str], ranges: list[Any]) -> list[int]:
    """Rows in each range, counted by MySQL; fails unless every row is in exactly one range."""
    contiguous = [hi for _, hi in ranges[:-1]] == [lo for lo, _ in ranges[1:]]
    assert ranges[0][0] is None and ranges[-1][1] is None and contiguous, ranges
    predicates, params = [], []
    for lower, upper in ranges:
        where, values = range_predicate(key, lower, upper, mysql_ident)
        predicates.append(f"({where})")
        params.extend(values)
    member = " + ".join(predicates)
    sums = ", ".join(f"SUM({p})" for p in predicates)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), SUM(({member}) = 1), {sums} FROM {mysql_ident(table)}", params * 2)
        total, exactly_once, *counts = (int(v or 0) for v in cur.fetchone())  # type: ignore[union-attr]
    assert exactly_once == total, f"{table}: {total - exactly_once} row(s) in no range or in several"
    assert sum(counts) == total
    return counts


@pytest.mark.parametrize("table", [t for t in TABLES if t != "enum_key"])
def test_estimated_bounds_partition_every_distribution_into_bounded_chunks(planning_db, table, monkeypatch):
    monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 0)  # these tables are small: force the estimates
    _, _, key = TABLES[table]
    counting = CountingConnection(planning_db)
    before = handler_reads(planning_db)
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(counting, table, key, CHUNK, stats=stats)  # type: ignore[arg-type]
    reads = {k: v - before.get(k, 0) for k, v in handler_reads(planning_db).items()}
    counts = partition_counts(planning_db, table, key, ranges)
    total = sum(counts)
    assert stats.method == "estimates" and stats.walked_ranges == 0, stats
    assert max(counts) <= 2 * CHUNK, (counts, stats)
    assert len(ranges) <= 3 * total // CHUNK + 2, (counts, stats)  # not absurdly many small chunks either
    # statements grow with the chunks (most estimates and dives go a hundred per statement)
    assert len(counting.statements) == stats.statements <= 4 * len(ranges) + 20, stats
    # and MySQL read no rows to plan: index dives only, nothing scanned or skipped
    scanned = reads.get("Handler_read_next", 0) + reads.get("Handler_read_prev", 0)
    assert scanned <= 5 and reads.get("Handler_read_rnd_next", 0) <= 50, reads
    # one key lookup per dive; skewed keys need a few more levels of cuts (logarithmic in the key domain)
    assert reads.get("Handler_read_key", 0) <= 16 * len(ranges) + 100, reads


def test_a_large_table_takes_the_estimates_by_default(servers, planning_db):
    with planning_db.cursor() as cur:
        cur.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, pad VARCHAR(40))")
        cur.execute("INSERT INTO big SELECT seq, 'p' FROM seq_1_to_150000")
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(planning_db, "big", ["id"], 10_000, stats=stats)
    counts = partition_counts(planning_db, "big", ["id"], ranges)
    assert stats.method == "estimates" and stats.rows_walked == 0
    assert max(counts) <= 20_000 and len(ranges) <= 30, counts


def test_a_small_table_is_walked_exactly(planning_db):
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(planning_db, "dense", ["id"], 7000, stats=stats)
    assert stats.method == "walk"
    assert partition_counts(planning_db, "dense", ["id"], ranges) == [7000] * 5 + [5000]


def test_a_key_mysql_cannot_range_scan_is_walked_and_still_exact(planning_db):
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(planning_db, "enum_key", ["r", "id"], 1000, stats=stats)
    partition_counts(planning_db, "enum_key", ["r", "id"], ranges)
    assert stats.method == "walk" and "ENUM" in stats.notes[0]


def test_a_stale_row_estimate_hands_the_walk_over_to_the_estimates(planning_db, monkeypatch):
    monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 5000)
    monkeypatch.setattr(bounds._Planner, "table_rows", lambda self: 10)  # "10 rows": InnoDB is wrong
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(planning_db, "dense", ["id"], CHUNK, stats=stats)
    counts = partition_counts(planning_db, "dense", ["id"], ranges)
    assert stats.method == "walk, then estimates" and "stale" in stats.notes[0]
    assert stats.rows_walked == (2 * 5000 // CHUNK + 2) * CHUNK  # the walk stopped at its bound
    assert counts[:7] == [CHUNK] * 7 and max(counts) <= 2 * CHUNK


def test_a_range_candidates_cannot_cut_is_walked_exactly(planning_db, monkeypatch):
    monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 0)
    monkeypatch.setattr(bounds.Strings, "candidates", lambda self, *a, **k: [])
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(planning_db, "strings_ci", ["k"], CHUNK, stats=stats)
    counts = partition_counts(planning_db, "strings_ci", ["k"], ranges)
    assert stats.walked_ranges == 1 and max(counts) <= CHUNK


# smaller versions of three of the tables above, for a run through the local stack
REPLICATED = {
    "skewed": [
        "INSERT INTO skewed SELECT seq, REPEAT('x', seq % 80) FROM seq_1_to_1500",
        "INSERT INTO skewed SELECT 1000000 + seq * seq * seq, 'tail' FROM seq_1_to_500",
        "INSERT INTO skewed VALUES (18446744073709551615, 'max'), (9223372036854775807, 'mid')",
    ],
    "composite": [
        "INSERT INTO composite SELECT 1, seq, 'big tenant' FROM seq_1_to_1500",
        "INSERT INTO composite SELECT 2 + seq DIV 20, seq % 20, 'small' FROM seq_0_to_599",
    ],
    "strings_ci": [TABLES["strings_ci"][1][0].replace("seq_1_to_40000", "seq_1_to_2000")],
}


def test_tables_planned_from_estimates_replicate_exactly(env, monkeypatch):
    """A full run through the local stack of tables whose chunks came from the estimates."""
    monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 0)
    for table, fill in REPLICATED.items():
        env.sql(TABLES[table][0], *fill, f"ANALYZE TABLE `{table}`")
    stack = env.start_stack()
    outcome = stack.run({"tables": ",".join(REPLICATED), "mode": "full", "chunk_rows": 250}, workers=2)
    states = outcome.run["table_states"]
    assert outcome.ok, {t: (s.get("status"), s.get("reason"), s.get("validation")) for t, s in states.items()}
    for table in REPLICATED:
        assert int(states[table]["chunk_count"]) >= 5, (table, states[table]["chunk_count"])
        assert_same(env, table)
