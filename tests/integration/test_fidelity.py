"""Every column is checked, and a mismatch is named down to the row and the column.

A corruption planted in Snowflake in each column kind (a byte of a blob, a key of a JSON document,
the last digit of a float, a character of a latin1 string, ...) is caught by validation and named
by key and column, with both values: by ``replicate validate`` against the target, and by the
finaliser against a full copy's load table.
"""

from __future__ import annotations

import json

import pytest

from aurora_replication.config import load_settings
from aurora_replication.pipeline import diagnose, validate
from aurora_replication.services import Services
from aurora_replication.source import discover as source_discover
from aurora_replication.target.snowflake.client import Target
from aurora_replication.target.snowflake.sql import load_table_name
from compare import assert_same

ROWS = 300

TABLE = """CREATE TABLE planted (
    id INT NOT NULL PRIMARY KEY,
    bl BLOB NULL,
    js JSON NULL,
    f DOUBLE NULL,
    ff FLOAT NULL,
    lat VARCHAR(20) CHARACTER SET latin1 NULL,
    u3 VARCHAR(20) CHARACTER SET utf8mb3 NULL,
    cs VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    vb VARBINARY(16) NULL,
    g GEOMETRY NULL,
    n DECIMAL(12,3) NULL,
    dt DATETIME(6) NULL
) CHARACTER SET utf8mb4"""


def _fill(env) -> None:
    env.sql(TABLE)
    values = []
    for i in range(1, ROWS + 1):
        values.append(
            f"({i}, UNHEX(SHA2('{i}', 256)), JSON_OBJECT('n', {i}, 'tags', JSON_ARRAY('a', {i} / 7), 'k{i % 5}', TRUE), "
            f"{i} / 7e0 + 1e-13, {i} / 3e0, CONVERT(X'636166E9802D{i % 256:02X}' USING latin1), 'ñandú {i}', "
            f"'Case{i}', X'00{i % 256:02X}', ST_GeomFromText('POINT({i} {i / 2})', {4326 if i % 2 else 0}), "
            f"{i}.125, '2024-02-29 12:00:00.{i:06d}')"
        )
    env.sql("INSERT INTO planted VALUES " + ", ".join(values))


def _target_value(env, column: str, row_id: int) -> object:
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute(f'SELECT "{column}" FROM "PLANTED" WHERE "ID" = %s', (row_id,))
    value = cur.fetchone()[0]
    conn.close()
    return value


def _plant(env, table: str, assignments: list[tuple[int, str, str, list[object]]]) -> None:
    conn = env.snowflake()
    cur = conn.cursor()
    for row_id, column, expr, params in assignments:
        cur.execute(f'UPDATE "{table}" SET "{column}" = {expr} WHERE "ID" = %s', (*params, row_id))
    conn.close()


def test_every_column_kind_copies_exactly_and_a_planted_corruption_in_each_is_named(env):
    _fill(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    outcome = stack.run({"tables": "planted", "mode": "full", "chunk_rows": 100}, workers=2)
    assert outcome.ok, outcome.run["table_states"]  # latin1, utf8mb3, floats, blobs, JSON: all validated
    assert assert_same(env, "planted") == ROWS
    services = Services.from_settings(load_settings())
    [report] = validate.validate_tables(services, ["planted"])
    assert report["result"] == "ok" and "differences" not in report, report

    blob = bytearray(_target_value(env, "BL", 7))
    blob[5] ^= 0x01  # one bit of one byte
    doc = json.loads(_target_value(env, "JS", 42))
    doc["renamed"] = doc.pop("tags")  # one key of a JSON document
    f = repr(_target_value(env, "F", 100))
    f_planted = f[:-1] + ("1" if f[-1] != "1" else "2")  # the last digit of a float
    _plant(
        env,
        "PLANTED",
        [
            (7, "BL", "TO_BINARY(%s, 'HEX')", [bytes(blob).hex()]),
            (42, "JS", "PARSE_JSON(%s)", [json.dumps(doc)]),
            (100, "F", "%s", [float(f_planted)]),
            (200, "LAT", "%s", ["cafe\u20ac-\u00c8"]),  # one character of a latin1 string (é -> e)
            (250, "VB", "TO_BINARY(%s, 'HEX')", ["00FB"]),
            (260, "CS", "%s", ["case260"]),  # case, in a binary collation
        ],
    )
    [report] = validate.validate_tables(services, ["planted"])
    assert report["result"] == "checksum differs"
    named = "\n".join(report["differences"])
    for row_id, column in [(7, "bl"), (42, "js"), (100, "f"), (200, "lat"), (250, "vb"), (260, "cs")]:
        assert f"row (id={row_id}) column {column!r}" in named, named
    assert "caf\u00e9\u20ac" in named and "cafe\u20ac" in named  # both values of the latin1 string
    assert f"MySQL {f!r}, Snowflake {repr(float(f_planted))!r}" in named  # both floats, exactly
    assert 'Snowflake \'{"n":42,"k2":true,"renamed"' in named
    assert len(report["differences"]) == 6


def test_the_finaliser_names_the_rows_and_columns_a_full_copy_got_wrong(env):
    """A corruption that re-appears in every re-copy (here: planted into the load table after each
    COPY) fails the table after its heal rounds; the ledger says which row and column differ."""
    _fill(env)
    sf = env.snowflake()

    def corrupt(step, msg):
        if step == "copied" and msg.chunk_id == 1:
            table = load_table_name(msg.plan, msg.run_id)
            cur = sf.cursor()
            cur.execute(f'UPDATE "{table}" SET "FF" = "FF" * 2, "U3" = %s WHERE "ID" = 150', ("nandu 150",))

    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0", "HEAL_ATTEMPTS": "1", "REDELIVERY_BASE_SECONDS": "0"})
    outcome = stack.run({"tables": "planted", "mode": "full", "chunk_rows": 100}, workers=1, fault=corrupt)
    sf.close()
    state = outcome.run["table_states"]["planted"]
    assert state["status"] == "failed", state
    named = "\n".join(state["differences"])
    assert "chunk 1: row (id=150) column 'ff': value differs" in named, named
    assert "chunk 1: row (id=150) column 'u3': value differs: MySQL 'ñandú 150', Snowflake 'nandu 150'" in named
    # the health check shows them too
    health = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["planted"]
    assert health["status"] == "failed" and any("row (id=150) column 'u3'" in d for d in health["differences"])


def test_naming_is_bounded_and_finds_missing_extra_and_duplicated_rows(env):
    env.sql(
        "CREATE TABLE wide (k VARCHAR(20) NOT NULL PRIMARY KEY, v INT) CHARACTER SET utf8mb4",
        "INSERT INTO wide SELECT CONCAT('Key-', seq), seq FROM seq_1_to_5000",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "wide", "mode": "full"}, workers=1).ok
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute('DELETE FROM "WIDE" WHERE "K" = \'Key-17\'')
    cur.execute("INSERT INTO \"WIDE\" VALUES ('key-17', 17), ('Key-99', 99)")  # a case twin, and a duplicate
    cur.execute('UPDATE "WIDE" SET "V" = -1 WHERE "K" = \'Key-4000\'')
    plan = source_discover.discover_table(env.mysql, env.database, "wide")
    target = Target(conn, "STAGE")
    found = diagnose.name_differences(env.mysql, target, plan, None, None, "WIDE", leaf_rows=100)
    described = sorted(d.describe() for d in found)
    assert described == [
        "row (k=Key-17): missing in Snowflake",
        "row (k=Key-4000) column 'v': value differs: MySQL '4000', Snowflake '-1'",
        "row (k=Key-99): duplicated in Snowflake (2 copies)",
        "row (k=key-17): extra in Snowflake",
    ]
    # a text key cannot be ranged in Snowflake (collations differ): say so instead of guessing
    with pytest.raises(Exception, match="does not order alike"):
        diagnose.name_differences(env.mysql, target, plan, ["Key-1"], ["Key-2"], "WIDE")
    conn.close()


def test_an_incremental_finaliser_names_the_differences_within_the_chunks_window(env):
    """Incremental: the failing chunk's load-table rows (its window) are named against MySQL's rows of
    the chunk's key range and window only; rows outside the window, unchanged since the full copy,
    are not reported as missing."""
    env.sql(
        "CREATE TABLE inc (id INT PRIMARY KEY, v VARCHAR(20), js JSON NULL, updated_at DATETIME(6) NOT NULL)",
        "INSERT INTO inc SELECT seq, CONCAT('v', seq), JSON_OBJECT('n', seq), '2024-01-01' FROM seq_1_to_300",
    )
    stack = env.start_stack(
        {
            "SMALL_CHUNK_ROWS": "0",
            "HEAL_ATTEMPTS": "1",
            "REDELIVERY_BASE_SECONDS": "0",
            "WATERMARK_OVERLAP_SECONDS": "0",
        }
    )
    request = {"tables": "inc", "mode": "full", "chunk_rows": 100}
    assert stack.run(request, workers=1).ok
    env.sql("UPDATE inc SET v = CONCAT(v, '+'), updated_at = '2024-02-01' WHERE id IN (120, 150, 250)")
    sf = env.snowflake()

    def corrupt(step, msg):
        if step == "copied" and msg.chunk_id == 1:
            cur = sf.cursor()
            cur.execute(
                f'UPDATE "{load_table_name(msg.plan, msg.run_id)}" SET "JS" = %s WHERE "ID" = 150', ('{"n":0}',)
            )

    outcome = stack.run({**request, "mode": "incremental"}, workers=1, fault=corrupt)
    sf.close()
    state = outcome.run["table_states"]["inc"]
    assert state["status"] == "failed", state
    named = "\n".join(state["differences"])
    assert "chunk 1: row (id=150) column 'js': value differs" in named, named
    assert "missing" not in named, named  # rows 101..200 outside the window: not in the chunk, not named
    assert state["source_rows"] == 3, state  # the window: the three rows changed since the full copy
    assert "rows written since the chunks' snapshots may show up" in named
    assert "differences: chunk 1: row (id=150)" in state["reason"]
