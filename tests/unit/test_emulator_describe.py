"""The emulator describes a result from the statement that produced it (DuckDB's ``DESCRIBE`` of
the SQL it ran), with the columns and types the emulator's own describe gave, and without parsing
and translating the statement a second time (``_patch_describe_last_sql``)."""

from __future__ import annotations

import subprocess
import sys

_DESCRIBE = r"""
import json, sys, tempfile
import sqlglot
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.instance import FakeSnow
from aurora_replication_dev.local import snowflake_emulator

patched = sys.argv[1] == "patched"
snowflake_emulator._patch_number_38()
if patched:
    snowflake_emulator._patch_describe_last_sql()
conn = FakeSnow(db_path=tempfile.mkdtemp()).connect(database="DB", schema="S")
cur = conn.cursor()
cur.execute(
    "CREATE TABLE T (ID NUMBER(38,0), AMOUNT NUMBER(12,2), NAME VARCHAR, TS TIMESTAMP_NTZ(6), D DATE, "
    "F FLOAT, B BINARY, FLAG BOOLEAN)"
)
cur.execute("INSERT INTO T VALUES (1, 2.5, 'a', '2026-12-05 01:02:03.456789', '2026-12-05', 1.5, TO_BINARY('0A', 'HEX'), TRUE)")
parses = []
parse_one = sqlglot.parse_one
sqlglot.parse_one = lambda sql, *a, **k: parses.append(str(sql).startswith("DESCRIBE")) or parse_one(sql, *a, **k)
described = {}
ids = {}
for name, sql, params in [
    ("select", "SELECT ID, AMOUNT, NAME AS N, TS, D, F, B, FLAG, COUNT(*) OVER () AS C FROM T WHERE ID = %s", (1,)),
    ("aggregate", "SELECT COUNT(*), SUM(AMOUNT), MAX(NAME) FROM T", None),
    ("insert", "INSERT INTO T (ID) VALUES (2)", None),
    ("update", "UPDATE T SET NAME = 'b' WHERE ID = 2", None),
    ("create", "CREATE TABLE U (X VARCHAR, V VARIANT, TM TIME)", None),
    ("insert_select", "INSERT INTO U SELECT NAME, PARSE_JSON('[1, 2]'), '01:02:03' FROM T", None),
    ("variant", "SELECT V, V[0] AS A, TM, X FROM U", None),
    ("bound", "SELECT %s AS S, %s AS N, TS FROM T WHERE ID = %s", ("text", 12.5, 1)),
    ("merge", "MERGE INTO T USING (SELECT 1 AS K, 'm' AS NEW) S ON T.ID = S.K WHEN MATCHED THEN UPDATE SET NAME = S.NEW", None),
    ("delete", "DELETE FROM T WHERE ID = 2", None),
    ("begin", "BEGIN", None),
    ("insert_in_tx", "INSERT INTO T (ID) VALUES (3)", None),
    ("commit", "COMMIT", None),
    ("information_schema", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'T'", None),
    ("ctas", "CREATE TABLE W AS SELECT ID, AMOUNT FROM T", None),
    ("last", "SELECT * FROM TABLE(RESULT_SCAN(%s))", "select"),
]:
    if name == "last":  # a result read back from the emulator's result cache
        params = (ids[params],)
    cur.execute(sql, params)
    ids[name] = cur.sfqid
    described[name] = [[c.name, c.type_code, c.precision, c.scale, c.internal_size] for c in cur.description]
print(json.dumps({"described": described, "parses": sum(parses)}))
"""


def _describe(mode: str) -> dict:
    import json

    out = subprocess.run([sys.executable, "-c", _DESCRIBE, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_patched_describe_gives_the_emulators_own_columns_and_types() -> None:
    original, patched = _describe("original"), _describe("patched")
    assert patched["described"] == original["described"]
    assert [c[0] for c in patched["described"]["select"]] == ["ID", "AMOUNT", "N", "TS", "D", "F", "B", "FLAG", "C"]
    assert patched["described"]["insert"][0][0] == "number of rows inserted"
    assert [c[0] for c in patched["described"]["variant"]] == ["V", "A", "TM", "X"]
    assert len(patched["described"]) == 16
    # the original parsed every statement's translation again to describe it; the patch does not
    assert patched["parses"] == 0 and original["parses"] == 16
