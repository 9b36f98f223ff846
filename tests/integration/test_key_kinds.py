"""Every kind of key a real schema uses is cut into bounded chunks, and every row is copied exactly
once: BINARY(16) UUIDs and VARBINARY hashes (bounds as hex, compared as bytes, with 0x00 and 0xFF
bytes and trailing zero bytes at the edges), DECIMAL, DATE, DATETIME, TIMESTAMP, FLOAT and DOUBLE,
strings under case-insensitive collations with and without trailing-space padding, and composite
keys mixing them; a table without a usable key is copied whole below FULL_SCAN_MAX_ROWS and refused
above it with the reason and the fix."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from aurora_replication.keyset import range_predicate
from aurora_replication.source import bounds
from aurora_replication.source import connect as source_connect
from aurora_replication.source import read as source_read
from aurora_replication.source.sql import KeyForm, mysql_ident
from compare import assert_same

CHUNK = 2000
ROWS = 20_000


class Kind:
    def __init__(
        self, ddl: str, fill: list[str], key: list[str], binary: tuple[str, ...] = (), statements: int = 4
    ) -> None:
        self.ddl, self.fill, self.key = ddl, fill, key
        self.form = KeyForm(binary=frozenset(binary))
        self.statements = statements  # planning statements per chunk, at most


# about ROWS rows each, generated inside MariaDB; each has rows at the edges of its key's order
KINDS: dict[str, Kind] = {
    "uuid16": Kind(
        "CREATE TABLE uuid16 (id BINARY(16) NOT NULL PRIMARY KEY, n INT NOT NULL, pad VARCHAR(40))",
        [
            f"INSERT INTO uuid16 SELECT UNHEX(MD5(seq)), seq, 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO uuid16 VALUES (REPEAT(X'00', 16), -1, 'zeros'), (REPEAT(X'FF', 16), -2, 'ones'), "
            "(CONCAT(REPEAT(X'00', 15), X'01'), -3, 'one'), (CONCAT(REPEAT(X'FF', 15), X'FE'), -4, 'ones less one'), "
            "(CONCAT(X'00', REPEAT(X'FF', 15)), -5, 'low high'), (CONCAT(X'80', REPEAT(X'00', 15)), -6, 'middle')",
        ],
        ["id"],
        ("id",),
    ),
    "hashes": Kind(  # variable lengths: a value, the same with trailing 0x00 bytes, and its prefixes
        "CREATE TABLE hashes (h VARBINARY(32) NOT NULL PRIMARY KEY, n INT NOT NULL)",
        [
            f"INSERT IGNORE INTO hashes SELECT LEFT(UNHEX(SHA2(seq, 256)), 2 + seq % 31), seq FROM seq_1_to_{ROWS}",
            "INSERT IGNORE INTO hashes VALUES (X'', -1), (X'00', -2), (X'0000', -3), (X'FF', -4), (X'FFFF', -5), "
            "(X'6162', -6), (X'616200', -7), (X'61620000', -8), (X'6162FF', -9), (X'7F', -10), (X'80', -11)",
        ],
        ["h"],
        ("h",),
    ),
    "decimals": Kind(
        "CREATE TABLE decimals (v DECIMAL(30,10) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT INTO decimals SELECT (CAST(seq AS SIGNED) - {ROWS // 2}) * 123456.0000000007, 'p' "
            f"FROM seq_1_to_{ROWS}",
            "INSERT INTO decimals VALUES (99999999999999999999.9999999999, 'max'), "
            "(-99999999999999999999.9999999999, 'min'), (0.0000000001, 'tiny')",
        ],
        ["v"],
    ),
    "dates": Kind(
        "CREATE TABLE dates (d DATE NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT INTO dates SELECT DATE('1950-01-01') + INTERVAL seq DAY, 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO dates VALUES ('1000-01-01', 'min'), ('9999-12-31', 'max')",
        ],
        ["d"],
    ),
    "datetimes": Kind(
        "CREATE TABLE datetimes (at DATETIME(6) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT INTO datetimes SELECT TIMESTAMP('2020-02-28 23:59:59') + INTERVAL (seq * 7919) SECOND "
            f"+ INTERVAL (seq % 999999) MICROSECOND, 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO datetimes VALUES ('1000-01-01 00:00:00', 'min'), ('9999-12-31 23:59:59.999999', 'max')",
        ],
        ["at"],
    ),
    "timestamps": Kind(
        "CREATE TABLE timestamps (ts TIMESTAMP(3) NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT INTO timestamps SELECT TIMESTAMP('1990-01-01') + INTERVAL (seq * 3607) SECOND "
            f"+ INTERVAL (seq % 1000) * 1000 MICROSECOND, 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO timestamps VALUES ('1970-01-01 00:00:01', 'min'), ('2038-01-19 03:14:07.999', 'max')",
        ],
        ["ts"],
    ),
    "doubles": Kind(  # many orders of magnitude on both sides of zero
        "CREATE TABLE doubles (k DOUBLE NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT INTO doubles SELECT IF(seq % 2, 1, -1) * EXP(seq / 500.0) / 1e9, 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO doubles VALUES (0, 'zero'), (1.7976931348623157e308, 'max'), (-1.7976931348623157e308, "
            "'min'), (2.2250738585072014e-308, 'smallest'), (0.1, 'tenth'), (0.30000000000000004, 'sum')",
        ],
        ["k"],
        # outliers at 1e-308 and 1e308: the first cuts by magnitude fall where no row is, and
        # each further level of cuts costs a few statements
        statements=9,
    ),
    "floats": Kind(  # single precision: MySQL prints 6 digits, the bounds must name the stored value
        "CREATE TABLE floats (k FLOAT NOT NULL PRIMARY KEY, pad VARCHAR(40))",
        [
            f"INSERT IGNORE INTO floats SELECT (CAST(seq AS SIGNED) - {ROWS // 2}) / 7.0 + 1000000, 'p' "
            f"FROM seq_1_to_{ROWS}",
            "INSERT IGNORE INTO floats VALUES (3.4e38, 'max'), (-3.4e38, 'min'), (0, 'zero')",
        ],
        ["k"],
    ),
    "ci_padded": Kind(  # 'a' = 'A' and 'a' = 'a ': the values differ in case and trailing spaces
        "CREATE TABLE ci_padded (k VARCHAR(40) NOT NULL PRIMARY KEY, pad VARCHAR(40)) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
        [
            f"INSERT INTO ci_padded SELECT CONCAT(IF(seq % 2, 'k', 'K'), ELT(1 + seq % 3, 'é', 'e', 'E'), "
            f"LPAD(seq, 6, '0'), REPEAT(' ', seq % 4)), 'p' FROM seq_1_to_{ROWS}",
            "INSERT INTO ci_padded VALUES ('', 'empty'), (' x', 'leading space'), ('zzz ', 'last')",
        ],
        ["k"],
    ),
    "ci_nopad": Kind(  # NO PAD: 'k1', 'k1 ' and 'K1  ' are three keys, in that order
        "CREATE TABLE ci_nopad (k VARCHAR(40) NOT NULL PRIMARY KEY, pad VARCHAR(40)) "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_nopad_ci",
        [
            f"INSERT INTO ci_nopad SELECT CONCAT(IF(seq % 2, 'k', 'K'), LPAD(seq DIV 4, 6, '0'), "
            f"REPEAT(' ', seq % 4)), 'p' FROM seq_1_to_{ROWS}",
        ],
        ["k"],
    ),
    "mixed": Kind(  # composite: binary tenant, date, integer; one tenant holds most rows
        "CREATE TABLE mixed (tenant VARBINARY(8) NOT NULL, d DATE NOT NULL, n INT NOT NULL, pad VARCHAR(20), "
        "PRIMARY KEY (tenant, d, n))",
        [
            f"INSERT INTO mixed SELECT IF(seq % 10, X'00FF', UNHEX(HEX(seq % 7))), DATE('2024-01-01') "
            f"+ INTERVAL (seq % 400) DAY, seq, 'p' FROM seq_1_to_{ROWS}",
        ],
        ["tenant", "d", "n"],
        ("tenant",),
    ),
}


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
def kinds_db(servers: Any) -> Iterator[pymysql.Connection[Any]]:
    db, _ = servers
    name = f"kinds{os.getpid()}"
    admin = db.connect()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    conn = connect(db, name)
    with conn.cursor() as cur:
        for kind in KINDS.values():
            cur.execute(kind.ddl)
            for statement in kind.fill:
                cur.execute(statement)
        for table in KINDS:
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    yield conn
    conn.close()


def partition_counts(conn: pymysql.Connection[Any], table: str, kind: Kind, ranges: list[Any]) -> list[int]:
    """Rows in each range, counted by MySQL with the bounds compared as the worker compares them
    (binary ones as bytes); fails unless every row is in exactly one range."""
    contiguous = [hi for _, hi in ranges[:-1]] == [lo for lo, _ in ranges[1:]]
    assert ranges[0][0] is None and ranges[-1][1] is None and contiguous, ranges
    predicates, params = [], []
    for lower, upper in ranges:
        where, values = range_predicate(kind.key, lower, upper, mysql_ident, kind.form.placeholder)
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


def chunks_expected(rows: int, chunk_rows: int) -> tuple[int, int]:
    """How many chunks a table of ``rows`` may take: at least one per ``chunk_rows`` (none larger than
    twice that, checked apart), at most about twice that many (estimates merge small pieces)."""
    least = math.ceil(rows / chunk_rows)
    return least, 2 * least + 2


@pytest.mark.parametrize("table", list(KINDS))
@pytest.mark.parametrize("method", ["estimates", "walk"])
def test_every_key_kind_is_cut_into_bounded_chunks_that_partition_it(kinds_db, table, method, monkeypatch):
    if method == "estimates":  # these tables are small: force the estimates, as a large table takes them
        monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 0)
    kind = KINDS[table]
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(kinds_db, table, kind.key, CHUNK, stats=stats)
    counts = partition_counts(kinds_db, table, kind, ranges)
    total = sum(counts)
    least, most = chunks_expected(total, CHUNK)
    assert stats.method == method and stats.walked_ranges == 0, stats
    assert least <= len(ranges) <= most, (len(ranges), counts, stats)
    assert max(counts) <= (2 * CHUNK if method == "estimates" else CHUNK), (counts, stats)
    if method == "estimates":  # a few statements per chunk, as for integer keys
        assert stats.statements <= kind.statements * len(ranges) + 20, stats
    print(f"{table}: {total} rows, {len(ranges)} chunks by {method} (largest {max(counts)})")


def test_a_240k_row_uuid_table_takes_about_six_chunks_of_40k(kinds_db):
    """The case the issue names: 240k rows keyed by BINARY(16), chunk_rows 40000 (estimates, as a
    table this size takes by default)."""
    with kinds_db.cursor() as cur:
        cur.execute("CREATE TABLE uuid240 (id BINARY(16) NOT NULL PRIMARY KEY, n INT NOT NULL)")
        cur.execute("INSERT INTO uuid240 SELECT UNHEX(MD5(seq)), seq FROM seq_1_to_240000")
        cur.execute("ANALYZE TABLE uuid240")
        cur.fetchall()
    stats = bounds.PlanStats()
    ranges = source_read.chunk_bounds(kinds_db, "uuid240", ["id"], 40_000, stats=stats)
    counts = partition_counts(kinds_db, "uuid240", KINDS["uuid16"], ranges)
    assert stats.method == "estimates" and sum(counts) == 240_000
    assert 6 <= len(ranges) <= 9 and max(counts) <= 80_000, counts
    print(f"uuid240: 240000 rows, {len(ranges)} chunks of 40000 (largest {max(counts)})")


def test_every_key_kind_replicates_exactly_once(env, monkeypatch):
    """One full run through the local stack of a smaller table of each kind, planned from the
    estimates: each is cut into about rows / chunk_rows chunks and Snowflake ends equal to MySQL
    (no row lost or doubled at a chunk's edge)."""
    monkeypatch.setattr(bounds, "SMALL_TABLE_ROWS", 0)
    chunk_rows = 400
    for table, kind in KINDS.items():
        env.sql(kind.ddl, *(s.replace(f"seq_1_to_{ROWS}", "seq_1_to_3000") for s in kind.fill))
        env.sql(f"ANALYZE TABLE `{table}`")
    stack = env.start_stack()
    outcome = stack.run({"tables": ",".join(KINDS), "mode": "full", "chunk_rows": chunk_rows}, workers=2)
    states = outcome.run["table_states"]
    assert outcome.ok, {t: (s.get("status"), s.get("reason"), s.get("validation")) for t, s in states.items()}
    for table in KINDS:
        rows = assert_same(env, table)
        least, most = chunks_expected(rows, chunk_rows)
        chunks = int(states[table]["chunk_count"])
        assert least <= chunks <= most, (table, rows, chunks)
        print(f"{table}: {rows} rows replicated in {chunks} chunks of {chunk_rows}")


def test_a_binary_keyed_table_is_copied_incrementally_by_its_key(env):
    """A BINARY(16) key is a key for every mode: the incremental run MERGEs the changed rows on it."""
    env.sql(
        "CREATE TABLE u (id BINARY(16) NOT NULL PRIMARY KEY, v VARCHAR(20), "
        "updated_at DATETIME(6) NOT NULL, KEY ix_updated (updated_at))",
        "INSERT INTO u SELECT UNHEX(MD5(seq)), CONCAT('v', seq), '2024-01-01' FROM seq_1_to_3000",
        "INSERT INTO u VALUES (REPEAT(X'00', 16), 'zeros', '2024-01-01'), (REPEAT(X'FF', 16), 'ones', '2024-01-01')",
    )
    stack = env.start_stack()
    first = stack.run({"tables": "u", "mode": "full", "chunk_rows": 500}, workers=2)
    assert first.ok and int(first.run["table_states"]["u"]["chunk_count"]) >= 6
    env.sql(
        "UPDATE u SET v = 'changed', updated_at = '2024-02-01' WHERE id = REPEAT(X'FF', 16) OR id = REPEAT(X'00', 16) "
        "OR id = UNHEX(MD5(7))",
        "INSERT INTO u VALUES (CONCAT(REPEAT(X'FF', 15), X'FE'), 'new', '2024-02-01')",
    )
    second = stack.run({"tables": "u", "mode": "auto", "chunk_rows": 500}, workers=2)
    assert second.ok and second.run["table_states"]["u"]["mode"] == "incremental", second.run
    assert assert_same(env, "u") == 3003


def test_a_table_without_a_usable_key_is_copied_whole_below_the_limit_and_refused_above(env):
    env.sql(
        "CREATE TABLE heap (a INT NULL, b VARCHAR(20), UNIQUE KEY ua (a))",  # a unique key on a nullable column
        "INSERT INTO heap SELECT IF(seq % 10, seq, NULL), CONCAT('b', seq) FROM seq_1_to_3000",
        "CREATE TABLE docs (k JSON NOT NULL, v INT, PRIMARY KEY (k(50)))",  # a key MySQL cannot order by value
        "INSERT INTO docs SELECT JSON_OBJECT('id', seq), seq FROM seq_1_to_300",
        "ANALYZE TABLE heap",
        "ANALYZE TABLE docs",
    )
    stack = env.start_stack({"FULL_SCAN_MAX_ROWS": "1000"})
    outcome = stack.run({"tables": "heap,docs", "mode": "full", "chunk_rows": 100}, workers=2)
    states = outcome.run["table_states"]
    assert states["docs"]["status"] == "published" and int(states["docs"]["chunk_count"]) == 1, states["docs"]
    assert assert_same(env, "docs") == 300
    assert "JSON" in " ".join(states["docs"]["notes"])
    assert states["heap"]["status"] == "failed", states["heap"]
    reason = states["heap"]["reason"]
    assert "FULL_SCAN_MAX_ROWS=1,000" in reason and "add a primary key or a unique index" in reason, reason


def test_a_binary_keyed_table_takes_its_binlog_changes_by_its_key(env):
    """cdc on a BINARY(16) key: updates, deletes, inserts and a key change at the 0x00 and 0xFF ends
    are applied by key (the binlog's key values travel as hex, as the chunk bounds do)."""
    env.sql(
        "CREATE TABLE ub (id BINARY(16) NOT NULL PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO ub SELECT UNHEX(MD5(seq)), CONCAT('v', seq) FROM seq_1_to_500",
        "INSERT INTO ub VALUES (REPEAT(X'00', 16), 'zeros'), (REPEAT(X'FF', 16), 'ones')",
    )
    stack = env.start_stack()
    first = stack.run({"tables": "ub", "mode": "cdc", "chunk_rows": 100}, workers=2, timeout=180)
    assert first.ok and int(first.run["table_states"]["ub"]["chunk_count"]) >= 5, first.run["table_states"]
    env.sql(
        "UPDATE ub SET v = 'changed' WHERE id = REPEAT(X'00', 16) OR id = UNHEX(MD5(3))",
        "DELETE FROM ub WHERE id = REPEAT(X'FF', 16) OR id = UNHEX(MD5(4))",
        "INSERT INTO ub VALUES (CONCAT(REPEAT(X'FF', 15), X'FE'), 'new'), (X'00000000000000000000000000000001', 'one')",
        "UPDATE ub SET id = REPEAT(X'FF', 16) WHERE id = UNHEX(MD5(5))",
    )
    second = stack.run({"tables": "ub", "mode": "cdc"}, workers=2, timeout=180)
    state = second.run["table_states"]["ub"]
    assert second.ok and state["mode"] == "cdc" and state["deletes"] > 0, state
    assert assert_same(env, "ub") == 502 - 2 + 2
