"""Types a real schema has, through every path: ZEROFILL numbers, non-ASCII table names, zero dates and
negative fractional TIME, copied (full, incremental) and applied through the binlog (cdc)."""

from __future__ import annotations

import pytest

from compare import assert_same


def _validate(tables: list[str]) -> list[dict]:
    """``replicate validate``: the whole source table against its target now, every column compared."""
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    return validate.validate_tables(Services.from_settings(load_settings()), tables)


ZEROFILL_TABLE = """CREATE TABLE zf (
    id INT ZEROFILL NOT NULL PRIMARY KEY,
    ti TINYINT ZEROFILL NULL, tiu TINYINT UNSIGNED ZEROFILL NULL, t1 TINYINT(1) ZEROFILL NULL,
    si SMALLINT ZEROFILL NULL, siu SMALLINT UNSIGNED ZEROFILL NULL,
    mi MEDIUMINT ZEROFILL NULL, miu MEDIUMINT UNSIGNED ZEROFILL NULL,
    i INT ZEROFILL NULL, i11 INT(11) ZEROFILL NULL, iu INT UNSIGNED ZEROFILL NULL,
    bi BIGINT ZEROFILL NULL, biu BIGINT UNSIGNED ZEROFILL NULL, b3 BIGINT(3) ZEROFILL NULL,
    d DECIMAL(10,2) ZEROFILL NULL, d0 DECIMAL(5,0) ZEROFILL NULL, dbig DECIMAL(65,30) ZEROFILL NULL,
    f FLOAT ZEROFILL NULL, f73 FLOAT(7,3) ZEROFILL NULL, dbl DOUBLE ZEROFILL NULL
)"""
ZEROFILL_COLUMNS = "ti, tiu, t1, si, siu, mi, miu, i, i11, iu, bi, biu, b3, d, d0, dbig, f, f73, dbl"
ZEROFILL_ROWS = [
    "(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
    "(2, 255, 255, 255, 65535, 65535, 16777215, 16777215, 4294967295, 4294967295, 4294967295,"
    " 18446744073709551615, 18446744073709551615, 123456, 99999999.99, 99999,"
    " 99999999999999999999999999999999999.999999999999999999999999999999, 3.40282e38, 9999.999,"
    " 1.7976931348623157e308)",
    "(3, 7, 7, 1, 42, 42, 4242, 4242, 5, 5, 5, 5, 5, 5, 1.5, 7, 1.5, 1.5, 1.5, 2.25)",
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL)",
]


@pytest.mark.parametrize("mode", ["full", "incremental", "cdc"])
def test_zerofill_numbers_publish_in_every_mode(env, mode):
    """MySQL prints a ZEROFILL number padded ('000', '04294967295'); Snowflake holds the number. Every
    width and attribute publishes first time (no heal round), reads back equal and validates, in every
    mode, with a ZEROFILL key split into several chunks."""
    env.sql(ZEROFILL_TABLE, "INSERT INTO zf VALUES " + ", ".join(ZEROFILL_ROWS))
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    request: dict = {"tables": "zf", "mode": "cdc" if mode == "cdc" else "full", "chunk_rows": 2}
    if mode == "incremental":
        request["watermark_columns"] = {"zf": "id"}
    first = stack.run(request, workers=2)
    assert first.ok, first.run["table_states"]
    assert not first.run["table_states"]["zf"].get("heal_round"), first.run["table_states"]["zf"]  # no re-copy
    assert assert_same(env, "zf") == 4
    if mode != "full":
        env.sql(
            f"INSERT INTO zf (id, {ZEROFILL_COLUMNS}) SELECT id + 10, {ZEROFILL_COLUMNS} FROM zf",
            "UPDATE zf SET ti = 9, d = 0.01, biu = 1, dbig = 0 WHERE id = 3" if mode == "cdc" else "DO 0",
            "DELETE FROM zf WHERE id = 1" if mode == "cdc" else "DO 0",
        )
        again = stack.run({**request, "mode": mode}, workers=2)
        assert again.ok, again.run["table_states"]
        assert again.run["table_states"]["zf"]["mode"] == mode
        assert assert_same(env, "zf") == (7 if mode == "cdc" else 8)
    [report] = _validate(["zf"])
    assert report["result"] == "ok" and "differences" not in report, report


def test_cdc_with_non_ascii_table_names(env):
    """Tables named in CJK characters, accented Latin and punctuation, and one of 64 characters, take their
    initial copy through staged files and then their changes through the binlog, in the same runs as a
    plain table: every one of them exact."""
    # the longest name MySQL allows (64 characters): the names derived from it must fit too
    names = ["顧客", "café_crème", "some|test@data", "DBZ.1834", "長" * 20 + "_long_name" * 4 + "x" * 4, "plain"]
    assert len(names[4]) == 64
    for name in names:
        env.sql(
            f"CREATE TABLE `{name}` (id INT PRIMARY KEY, `名前` VARCHAR(20) CHARACTER SET utf8mb4, n INT)",
            f"INSERT INTO `{name}` SELECT seq, CONCAT('行', seq), seq FROM seq_1_to_30",
        )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    tables = ",".join(names)
    first = stack.run({"tables": tables, "mode": "cdc", "chunk_rows": 10}, workers=2)
    assert first.ok, first.run["table_states"]
    for name in names:
        env.sql(
            f"UPDATE `{name}` SET `名前` = 'ü 变了', n = n + 100 WHERE id % 3 = 0",
            f"DELETE FROM `{name}` WHERE id % 5 = 0",
            f"INSERT INTO `{name}` VALUES (100, '新', 1)",
        )
    second = stack.run({"tables": tables, "mode": "cdc"}, workers=2)
    assert second.ok, second.run["table_states"]
    for name in names:
        t = second.run["table_states"][name]
        assert t["mode"] == "cdc" and t["upserts"] == 9 and t["deletes"] == 6, t
        assert assert_same(env, name) == 30 - 6 + 1


TEMPORAL_TABLE = """CREATE TABLE tz (
    id INT PRIMARY KEY, d DATE NULL, dt DATETIME NULL, dt3 DATETIME(3) NULL, dt6 DATETIME(6) NULL,
    ts TIMESTAMP NULL DEFAULT NULL, ts1 TIMESTAMP(1) NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
    t0 TIME NULL, t1 TIME(1) NULL, t2 TIME(2) NULL, t3 TIME(3) NULL, t4 TIME(4) NULL, t5 TIME(5) NULL,
    t6 TIME(6) NULL
)"""
# zero and partial-zero dates (which the copy path writes as NULL) and every TIME precision at its edges,
# negative fractions included (stored as the whole second below and a fraction counted up from it)
TEMPORAL_ROWS = [
    "(2, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.000000',"
    " '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '0000-00-00 00:00:00.000000',"
    " '-00:00:01', '-00:00:00.1', '-00:00:00.01', '-00:00:00.001', '-00:00:00.0001', '-00:00:00.00001',"
    " '-00:00:00.000001')",
    "(3, '2020-00-00', '2020-00-15 10:00:00', '2020-05-00 10:00:00.5', '0000-01-01 00:00:00.000001',"
    " '1970-01-01 00:00:01', '1970-01-01 00:00:01.5', '2038-01-19 03:14:07.999999',"
    " '-838:59:59', '-838:59:58.9', '-838:59:58.99', '-838:59:58.999', '-838:59:58.9999', '-838:59:58.99999',"
    " '-838:59:58.999999')",
    "(4, '2024-02-29', '1970-01-01 00:00:00', '1000-01-01 00:00:00.000', '9999-12-31 23:59:59.999999',"
    " '2024-02-29 12:00:00', '2024-02-29 12:00:00.9', '2024-02-29 12:00:00.000001',"
    " '838:59:59', '838:59:59.9', '838:59:59.99', '-00:00:01.25', '-00:59:59.5', '-01:00:00.00001',"
    " '-12:34:56.789012')",
    "(5, '0001-01-01', '2000-01-01 00:00:00', NULL, NULL, NULL, NULL, NULL,"
    " '00:00:00', '00:00:00.0', '-00:00:00.50', '00:00:00.001', '-00:00:59.9999', '00:00:00.00001',"
    " '-00:00:59.000001')",
]


def test_zero_dates_and_negative_fractional_time_through_cdc_as_through_the_copy(env):
    """Rows written after the initial copy reach the target through the binlog exactly as a copy writes
    them: zero and partial-zero DATE/DATETIME/TIMESTAMP as NULL (a zero TIMESTAMP is not 1970-01-01), and
    every TIME(0..6) value, negative fractions included (-00:00:00.000001 is not -00:00:00.999999)."""
    env.sql(
        "SET SESSION sql_mode = ''",
        "SET SESSION time_zone = '+00:00'",
        TEMPORAL_TABLE,
        "INSERT INTO tz (id) VALUES (1)",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "tz", "mode": "cdc"}, workers=1).ok
    env.sql(
        "INSERT INTO tz VALUES " + ", ".join(TEMPORAL_ROWS), "UPDATE tz SET ts = '0000-00-00 00:00:00' WHERE id = 1"
    )
    second = stack.run({"tables": "tz", "mode": "cdc"}, workers=1)
    assert second.ok, second.run["table_states"]
    assert second.run["table_states"]["tz"]["mode"] == "cdc"
    assert assert_same(env, "tz") == 5  # MySQL's zero dates read as NULL, TIME as MySQL's text
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "TS", "TS6", "DT", "T6" FROM "TZ" WHERE "ID" IN (1, 2) ORDER BY "ID"')
    assert cur.fetchall() == [(None, None, None, None), (None, None, None, "-00:00:00.000001")]
    sf.close()
    [report] = _validate(["tz"])
    assert report["result"] == "ok" and "differences" not in report, report


def test_zero_date_policy_fail_fails_that_cdc_table_only(env):
    """Under ZERO_DATE_POLICY=fail a zero date arriving through the binlog fails its table with the
    policy's message, as a copy fails its chunk, and the run's other table still gets its changes."""
    env.sql(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE z (id INT PRIMARY KEY, d DATE NULL, ts TIMESTAMP NULL DEFAULT NULL)",
        "CREATE TABLE ok_table (id INT PRIMARY KEY, v INT)",
        "INSERT INTO z VALUES (1, '2024-01-01', '2024-01-01 00:00:00')",
        "INSERT INTO ok_table VALUES (1, 1)",
    )
    stack = env.start_stack({"ZERO_DATE_POLICY": "fail"})
    assert stack.run({"tables": "z,ok_table", "mode": "cdc"}, workers=1).ok
    env.sql("UPDATE z SET ts = '0000-00-00 00:00:00' WHERE id = 1", "UPDATE ok_table SET v = 2 WHERE id = 1")
    outcome = stack.run({"tables": "z,ok_table", "mode": "cdc"}, workers=1)
    states = outcome.run["table_states"]
    assert states["ok_table"]["status"] == "published", states
    assert states["z"]["status"] == "failed" and "ZERO_DATE_POLICY=fail" in states["z"]["reason"], states["z"]
    assert "0000-00-00 00:00:00" in states["z"]["reason"]
    assert assert_same(env, "ok_table") == 1


def test_a_zero_date_in_a_key_fails_that_cdc_table_loudly(env):
    """Snowflake cannot hold a zero date, so a change whose key holds one cannot be matched to its row
    (the copy writes NULL; two zero dates would be one key): the table fails naming the key, and the
    run's other table gets its changes."""
    env.sql(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE dk (id INT, d DATE, v INT, PRIMARY KEY (id, d))",
        "CREATE TABLE ok_table (id INT PRIMARY KEY, v INT)",
        "INSERT INTO dk VALUES (1, '2024-01-01', 1)",
        "INSERT INTO ok_table VALUES (1, 1)",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "dk,ok_table", "mode": "cdc"}, workers=1).ok
    env.sql("INSERT INTO dk VALUES (2, '2024-00-10', 2)", "UPDATE ok_table SET v = 2 WHERE id = 1")
    states = stack.run({"tables": "dk,ok_table", "mode": "cdc"}, workers=1).run["table_states"]
    assert states["ok_table"]["status"] == "published", states
    assert states["dk"]["status"] == "failed", states["dk"]
    assert "key column 'd' holds the zero date '2024-00-10'" in states["dk"]["reason"]
    assert assert_same(env, "ok_table") == 1
