"""Every common type at its edges reads back equal from Snowflake, through both load paths."""

from __future__ import annotations

import pytest

from compare import assert_same

EDGE_TABLE = """CREATE TABLE edge (
    id INT NOT NULL PRIMARY KEY,
    ti TINYINT NULL, tiu TINYINT UNSIGNED NULL, si SMALLINT NULL, siu SMALLINT UNSIGNED NULL,
    mi MEDIUMINT NULL, miu MEDIUMINT UNSIGNED NULL, i INT NULL, iu INT UNSIGNED NULL,
    bi BIGINT NULL, biu BIGINT UNSIGNED NULL, flag BOOLEAN NULL,
    d DECIMAL(38,10) NULL, dbig DECIMAL(65,30) NULL, f FLOAT NULL, dbl DOUBLE NULL, b BIT(10) NULL,
    c CHAR(5) NULL, vc VARCHAR(300) NULL, tx TEXT NULL, lt LONGTEXT NULL,
    bin BINARY(4) NULL, vb VARBINARY(20) NULL, bl BLOB NULL,
    e ENUM('x','y z','') NULL, st SET('a','b','c') NULL,
    dt DATE NULL, dtt DATETIME NULL, dt6 DATETIME(6) NULL, ts TIMESTAMP(3) NULL, yr YEAR NULL, tm TIME(6) NULL,
    js JSON NULL
) CHARACTER SET utf8mb4"""

ROWS = [
    """(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
        -9223372036854775808, 18446744073709551615, 1,
        -9999999999999999999999999999.9999999999, 12345678901234567890123456789012345.123456789012345678901234567890,
        -3.40282e38, 1.7976931348623157e308, b'1111111111',
        'ab  ', 'emoji 😀🎉 and 中文', 'line1\\nline2\\r\\n\\ttab "dq" \\'sq\\' back\\\\slash', REPEAT('long ', 1000),
        X'00FF0A0D', X'', X'DEADBEEF00',
        'y z', '', '1000-01-01', '9999-12-31 23:59:59', '2024-02-29 12:34:56.123456', '2038-01-19 03:14:07.999',
        2155, '-838:59:59.000000', '{"big": 12345678901234567890, "u": "日本 😀", "n": [1, {"x": null}]}')""",
    """(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'0',
        '', '', '', '', X'00000000', X'00', X'',
        '', 'a,c', '2000-01-01', '1970-01-01 00:00:01', '1970-01-01 00:00:00.000001', '1970-01-01 00:00:01.000',
        1901, '838:59:59.999999', '[]')""",
    """(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NULL, 'NULL', '\\\\N', 'a,b\\n"c"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null')""",
    """(4, 127, 1, 32767, 1, 8388607, 1, 2147483647, 1, 9223372036854775807, 1, 0,
        0.0000000001, -0.000000000000000000000000000001, 1.17549e-38, -2.2250738585072014e-308, b'0000000001',
        'x', ' leading and trailing ', CONCAT('nul', CHAR(0), 'byte'), '', NULL, NULL, NULL,
        'x', 'a,b,c', '2024-01-01', '2024-01-01 00:00:00', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 2024,
        '00:00:00', '"just a string"')""",
]


@pytest.mark.parametrize(
    "small_chunk_rows, extract",
    [("0", "worker"), ("0", "server"), ("0", "python"), ("1000", "server"), ("1000", "worker")],
    ids=[
        "put-copy-worker-rows",
        "put-copy-server-lines",
        "put-copy-python-values",
        "multi-row-insert",
        "multi-row-insert-worker-rows",
    ],
)
@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_edge_values_read_back_equal(env, small_chunk_rows, extract, mode):
    env.sql(EDGE_TABLE, "INSERT INTO edge VALUES " + ", ".join(ROWS))
    stack = env.start_stack({"SMALL_CHUNK_ROWS": small_chunk_rows, "EXTRACT_FORMAT": extract})
    request = {"tables": "edge", "mode": "full", "chunk_rows": 2}
    if mode == "incremental":
        # incremental by an integer watermark: the id
        assert stack.run({**request, "watermark_columns": {"edge": "id"}}, workers=2).ok
        env.sql("INSERT INTO edge (id, vc) VALUES (5, 'added later')")
        request = {"tables": "edge", "mode": "incremental", "watermark_columns": {"edge": "id"}}
    outcome = stack.run(request, workers=2)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "edge") == (5 if mode == "incremental" else 4)


@pytest.mark.parametrize("small_chunk_rows", ["0", "200"], ids=["server-lines", "multi-row-insert"])
def test_zero_dates_become_null(env, small_chunk_rows):
    env.sql(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME)",
        "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00'), (2, '2024-00-10', '2024-05-00 10:00:00'), "
        "(3, '2024-05-05', '2024-05-05 05:05:05')",
    )
    outcome = env.start_stack({"SMALL_CHUNK_ROWS": small_chunk_rows}).run({"tables": "z", "mode": "full"}, workers=1)
    assert outcome.ok, outcome.run["table_states"]
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute('SELECT "ID", "D", "DT" FROM "Z" ORDER BY 1')
    rows = cur.fetchall()
    assert [r[1] for r in rows[:2]] == [None, None] and [r[2] for r in rows[:2]] == [None, None]
    assert str(rows[2][1]) == "2024-05-05"


def test_zero_dates_fail_the_chunk_under_the_fail_policy(env):
    env.sql(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE z (id INT PRIMARY KEY, d DATE)",
        "INSERT INTO z VALUES (1, '0000-00-00'), (2, '2024-01-01')",
    )
    stack = env.start_stack({"ZERO_DATE_POLICY": "fail", "REDELIVERY_BASE_SECONDS": "0"})
    outcome = stack.run({"tables": "z", "mode": "full"}, workers=1, idle_timeout=2)
    assert not outcome.ok
    assert outcome.dlq_messages == 1  # retried, then parked in the DLQ: never silently dropped
    assert "ZERO_DATE_POLICY=fail" in stack.log_path.read_text()


@pytest.mark.parametrize("extract", ["server", "worker"])
def test_a_row_longer_than_max_allowed_packet_is_encoded_value_by_value(env, extract):
    """MySQL returns NULL for a formatted line longer than max_allowed_packet: the worker notices and
    encodes that chunk in Python instead, so the long value arrives whole. (Quotes double in the line,
    not in the checksum's input, which stays under the limit.) With EXTRACT_FORMAT=worker MySQL sends
    the value as it is, under the limit, and the worker doubles the quotes: the row copies as any other."""
    env.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, t TEXT)",
        """INSERT INTO big VALUES (1, REPEAT('"', 700)), (2, 'short'), (3, NULL)""",
    )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0", "EXTRACT_FORMAT": extract})
    summary = stack.invoke("SchedulerFunction", {"tables": "big", "mode": "full"})
    admin = env.db.connect()
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        before = cur.fetchone()[0]
        cur.execute("SET GLOBAL max_allowed_packet = 1024")  # new connections (the worker's) get it
    try:
        outcome = stack.drain(summary["run_id"], workers=1, timeout=120)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")
        admin.close()
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "big") == 3
    log = stack.log_path.read_text()
    assert ("longer than max_allowed_packet" in log) == (extract == "server")


def test_a_row_mysql_cannot_checksum_is_an_error_not_a_silent_gap(env):
    from aurora_replication.source import discover as source_discover
    from aurora_replication.source import read as source_read

    env.sql(
        "CREATE TABLE huge (id INT PRIMARY KEY, t TEXT)", "INSERT INTO huge VALUES (1, REPEAT('x', 2000)), (2, 'a')"
    )
    plan = source_discover.discover_table(env.mysql, env.database, "huge")
    admin = env.db.connect()
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        before = cur.fetchone()[0]
        cur.execute("SET GLOBAL max_allowed_packet = 1024")
    try:
        conn = env.db.connect(env.database)
        with pytest.raises(RuntimeError, match="longer than MySQL's max_allowed_packet"):
            source_read.table_checksum(conn, plan)
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")
        admin.close()
    conn = env.db.connect(env.database)
    assert source_read.table_checksum(conn, plan)[0] == 2
    conn.close()


@pytest.mark.parametrize("small_chunk_rows", ["0", "200"], ids=["server-lines", "multi-row-insert"])
def test_a_value_longer_than_snowflake_holds_is_named_not_a_cryptic_load_error(env, monkeypatch, small_chunk_rows):
    """Snowflake's VARCHAR holds 128 MB: a LONGTEXT value beyond that fails its chunk with an error that
    names the table, row key and column (the limit is lowered here: 128 MB rows do not fit a test)."""
    from aurora_replication import typemap

    monkeypatch.setattr(typemap, "VARCHAR_MAX_BYTES", 1000)
    env.sql(
        "CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT, note TEXT)",
        "INSERT INTO docs VALUES (1, REPEAT('a', 1000), REPEAT('b', 2000)), (2, REPEAT('é', 501), 'x'), (3, NULL, NULL)",
    )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": small_chunk_rows, "REDELIVERY_BASE_SECONDS": "0"})
    outcome = stack.run({"tables": "docs", "mode": "full"}, workers=1, idle_timeout=2)
    assert not outcome.ok and outcome.dlq_messages == 1
    error = outcome.run["table_states"]["docs"]["last_error"]
    assert "table 'docs', row id='2': column 'body' holds 1,002 bytes, more than Snowflake's VARCHAR holds" in error


@pytest.mark.parametrize("small_chunk_rows", ["0", "200"], ids=["server-lines", "multi-row-insert"])
def test_a_blob_beyond_snowflake_fails_its_chunk_and_nothing_is_half_published(env, monkeypatch, small_chunk_rows):
    """A LONGTEXT or LONGBLOB value longer than Snowflake's VARCHAR (128 MB) or BINARY (64 MB) holds,
    in one chunk of several, through the real pipeline: that chunk fails with an error naming the
    table, the row key and the column, the other chunks' rows are not published, and the target
    keeps the previous run's copy untouched. (The limits are lowered: such rows do not fit a test.)"""
    from aurora_replication import typemap

    env.sql(
        "CREATE TABLE blobs (id INT PRIMARY KEY, body LONGTEXT, data LONGBLOB)",
        "INSERT INTO blobs VALUES "
        + ", ".join(f"({i}, REPEAT('t', {10 * i}), UNHEX(REPEAT('AB', {10 * i})))" for i in range(1, 7)),
    )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": small_chunk_rows, "REDELIVERY_BASE_SECONDS": "0"})
    request = {"tables": "blobs", "mode": "full", "chunk_rows": 2}
    first = stack.run(request, workers=1, idle_timeout=2)
    assert first.ok, first.run
    published = _blob_rows(env, "blobs")
    assert len(published) == 6

    monkeypatch.setattr(typemap, "VARCHAR_MAX_BYTES", 1000)
    monkeypatch.setattr(typemap, "BINARY_MAX_BYTES", 500)
    env.sql(
        "UPDATE blobs SET body = CONCAT(body, '+'), data = CONCAT(data, X'00')",  # every chunk changes
        "UPDATE blobs SET data = UNHEX(REPEAT('CD', 501)) WHERE id = 4",  # the middle chunk: 501 bytes
    )
    outcome = stack.run(request, workers=1, idle_timeout=2)
    assert not outcome.ok and outcome.dlq_messages == 1
    state = outcome.run["table_states"]["blobs"]
    assert state["status"] != "published"
    assert (
        "table 'blobs', row id='4': column 'data' holds 501 bytes, more than Snowflake's BINARY holds (500 bytes)"
        in state["last_error"]
    )
    assert _blob_rows(env, "blobs") == published  # the first run's copy, not one row of the second


def _blob_rows(env, table: str) -> list[tuple[object, ...]]:
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute(f'SELECT "ID", "BODY", "DATA" FROM "{table.upper()}" ORDER BY "ID"')
    rows = [tuple(r) for r in cur.fetchall()]
    conn.close()
    return rows
