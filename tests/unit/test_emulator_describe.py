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
from aurora_replication.local import snowflake_emulator

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
for name, sql, params in [
    ("select", "SELECT ID, AMOUNT, NAME AS N, TS, D, F, B, FLAG, COUNT(*) OVER () AS C FROM T WHERE ID = %s", (1,)),
    ("aggregate", "SELECT COUNT(*), SUM(AMOUNT), MAX(NAME) FROM T", None),
    ("insert", "INSERT INTO T (ID) VALUES (2)", None),
    ("update", "UPDATE T SET NAME = 'b' WHERE ID = 2", None),
    ("create", "CREATE TABLE U (X VARCHAR)", None),
]:
    cur.execute(sql, params)
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
    # the original parsed every statement's translation again to describe it; the patch does not
    assert patched["parses"] == 0 and original["parses"] == 5
