"""Property: for every type the type map supports, generated values stored in MariaDB and copied
through the pipeline read back equal from Snowflake, and every row's checksum is the same in both
engines (so validation can never fail a correct copy, as YEAR 0 once did, nor pass a wrong one).

Bounded for CI: FIDELITY_EXAMPLES examples (default 3, one pipeline run each) of 16 to
FIDELITY_ROWS rows (default 60). A soak run raises both and draws new values each time, e.g.
``FIDELITY_EXAMPLES=200 FIDELITY_ROWS=300 FIDELITY_RANDOM=1 .venv/bin/pytest tests/integration/test_canonical_forms.py``
(docs/types.md).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aurora_replication import checksums
from aurora_replication.config import load_settings
from aurora_replication.pipeline import diagnose
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.target.snowflake import sql as target_sql
from aurora_replication.target.snowflake.client import Target, execute
from compare import fetch_pair

EXAMPLES = int(os.environ.get("FIDELITY_EXAMPLES", "3"))
ROWS = int(os.environ.get("FIDELITY_ROWS", "60"))
SMALL = 8  # rows of the last chunk, which takes the INSERT path
RANDOM = os.environ.get("FIDELITY_RANDOM") == "1"
# shrinking re-runs the pipeline many times: on for a soak run that wants the smallest failing rows
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("FIDELITY_SHRINK") else [])

# name, MySQL type, value strategy (None: NULL), SQL placeholder for the value
COLUMNS: list[tuple[str, str, Any, str]] = []


def column(name: str, mysql_type: str, values: Any, placeholder: str = "%s") -> None:
    COLUMNS.append((name, mysql_type, values, placeholder))


def ints(lo: int, hi: int) -> Any:
    return st.one_of(st.sampled_from([lo, hi, 0, lo + 1, hi - 1]), st.integers(lo, hi))


for name, t, lo, hi in [
    ("ti", "TINYINT", -(2**7), 2**7 - 1),
    ("tiu", "TINYINT UNSIGNED", 0, 2**8 - 1),
    ("si", "SMALLINT", -(2**15), 2**15 - 1),
    ("siu", "SMALLINT UNSIGNED", 0, 2**16 - 1),
    ("mi", "MEDIUMINT", -(2**23), 2**23 - 1),
    ("miu", "MEDIUMINT UNSIGNED", 0, 2**24 - 1),
    ("i", "INT", -(2**31), 2**31 - 1),
    ("iu", "INT UNSIGNED", 0, 2**32 - 1),
    ("bi", "BIGINT", -(2**63), 2**63 - 1),
    ("biu", "BIGINT UNSIGNED", 0, 2**64 - 1),
    ("flag", "BOOLEAN", -128, 127),
]:
    column(name, t, ints(lo, hi))


def decimals(p: int, s: int) -> Any:
    top = decimal.Decimal(10) ** (p - s) - decimal.Decimal(10) ** -s
    return st.decimals(-top, top, places=s, allow_nan=False, allow_infinity=False).map(str)


for p, s in [(5, 0), (18, 6), (38, 10), (38, 0), (10, 10), (65, 30), (40, 2)]:
    column(f"d{p}_{s}", f"DECIMAL({p},{s})", decimals(p, s))

column("f", "FLOAT", st.floats(width=32, allow_nan=False, allow_infinity=False))
column(
    "dbl",
    "DOUBLE",
    st.one_of(
        st.sampled_from([5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1, 1e22]),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
)
for bits in (1, 8, 64):
    column(f"b{bits}", f"BIT({bits})", ints(0, 2**bits - 1))
column("yr", "YEAR", st.one_of(st.just(0), st.integers(1901, 2155)))

ZERO_DATES = ["0000-00-00", "2024-00-10", "2024-05-00"]
dates = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))
column("dt", "DATE", st.one_of(st.sampled_from(["1000-01-01", "9999-12-31", *ZERO_DATES]), dates.map(str)))


def datetimes(lo: str, hi: str) -> Any:
    values = st.datetimes(dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi))
    return st.one_of(st.sampled_from([lo, hi]), values.map(lambda v: v.isoformat(sep=" ")))


for p in (0, 3, 6):
    column(
        f"dtt{p}",
        f"DATETIME({p})",
        st.one_of(
            st.sampled_from(["0000-00-00 00:00:00", "2024-05-00 10:00:00"]),
            datetimes("1000-01-01 00:00:00", "9999-12-31 23:59:59.999999"),
        ),
    )
column("ts", "TIMESTAMP(6) NULL", datetimes("1970-01-01 00:00:01", "2038-01-19 03:14:07.999999"))

MAX_TIME = (838 * 3600 + 59 * 60 + 59) * 1_000_000


def time_text(micros: int, precision: int) -> str:
    sign = "-" if micros < 0 else ""
    micros = abs(micros) // 10 ** (6 - precision) * 10 ** (6 - precision)
    s, us = divmod(micros, 1_000_000)
    h, rest = divmod(s, 3600)
    return f"{sign}{h}:{rest // 60:02d}:{rest % 60:02d}" + (f".{us:06d}"[: precision + 1] if precision else "")


for p in (0, 6):
    column(f"tm{p}", f"TIME({p})", ints(-MAX_TIME, MAX_TIME).map(lambda m, p=p: time_text(m, p)))

AWKWARD = "\",\n\r\t\\\x00\x1e\x1f'NUL\\N "
unicode_text = st.text(
    alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(exclude_categories=("Cs",))), max_size=60
)
column("c", "CHAR(20)", st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20))
column("vc", "VARCHAR(100)", unicode_text)
column("tx", "TEXT", st.one_of(st.sampled_from(["", "NULL", "\\N", "null", '""', "costs $US", "$$x$$"]), unicode_text))
column("lt", "LONGTEXT", unicode_text)
# MySQL's latin1 is Windows-1252, with its five unassigned bytes mapped to the C1 controls
LATIN1 = bytes(range(256)).decode("cp1252", errors="ignore") + "\x81\x8d\x8f\x90\x9d"
column("lat", "VARCHAR(60) CHARACTER SET latin1", st.text(alphabet=st.sampled_from(LATIN1), max_size=60))
column(
    "u3",
    "VARCHAR(60) CHARACTER SET utf8mb3",
    st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=60),
)
column("cbin", "VARCHAR(60) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", unicode_text)
column("bin", "BINARY(8)", st.binary(min_size=0, max_size=8))
column("vb", "VARBINARY(60)", st.binary(max_size=60))
column("bl", "BLOB", st.binary(max_size=200))
column("e", "ENUM('a','b c','','ü','\"q\"')", st.sampled_from(["a", "b c", "", "ü", '"q"']))
column("st", "SET('x','y','z')", st.sets(st.sampled_from(["x", "y", "z"])).map(lambda s: ",".join(sorted(s))))
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        unicode_text,
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(unicode_text, children, max_size=4)),
    max_leaves=12,
)
# MariaDB keeps a document's text as written: spacing, number spellings, escapes and duplicate keys
JSON_AS_WRITTEN = ['{"a": 1, "a": 2}', " [1, 2.50, -0, 1e2, 1E-7] ", '{"b":{"z":1,"a":[]},"a":"\\u00e9\\n"}', "null"]
column(
    "js",
    "JSON",
    st.one_of(st.sampled_from(JSON_AS_WRITTEN), json_values.map(lambda v: json.dumps(v, ensure_ascii=False))),
)
column(
    "g",
    "GEOMETRY",
    st.tuples(
        st.floats(-1e9, 1e9, allow_nan=False), st.floats(-1e9, 1e9, allow_nan=False), st.sampled_from([0, 4326, 3857])
    ).map(lambda p: (f"POINT({p[0]!r} {p[1]!r})", p[2])),
    "ST_GeomFromText(%s, %s)",
)

rows_strategy = st.lists(
    st.tuples(*(st.one_of(st.none(), values) for _, _, values, _ in COLUMNS)),
    min_size=min(ROWS, 2 * SMALL),
    max_size=ROWS,
)


def _create(env) -> None:
    cols = ", ".join(f"`{n}` {t}{'' if 'NULL' in t else ' NULL'}" for n, t, _, _ in COLUMNS)
    env.sql(f"CREATE TABLE prop (id INT NOT NULL PRIMARY KEY, {cols}) CHARACTER SET utf8mb4")


def _insert(env, rows: list[tuple[Any, ...]]) -> None:
    env.sql("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'", "TRUNCATE TABLE prop")
    with env.mysql.cursor() as cur:
        for i, row in enumerate(rows, start=1):
            params: list[Any] = [i]
            sql_values = ["%s"]
            for (_, _, _, placeholder), v in zip(COLUMNS, row, strict=True):
                if v is None:
                    sql_values.append("NULL")
                elif placeholder == "%s":
                    sql_values.append("%s")
                    params.append(v)
                else:
                    sql_values.append(placeholder)
                    params.extend(v)
            cur.execute(f"INSERT INTO prop VALUES ({', '.join(sql_values)})", params)


def _row_hashes(env, plan, target: Target) -> tuple[dict[str, str], dict[str, str]]:
    """Each row's hash (key MD5 -> row MD5) in both engines, from the validation builders."""
    mysql = {
        str(k): str(h) for k, h, *_ in source_read.query(env.mysql, source_sql.row_hashes_query(plan, "", 0, 0), [])
    }
    statement = target_sql.row_hashes_query(plan, plan.target_table, _checked(plan), False, "", 0, 0)
    snowflake = {str(k): str(h) for k, h, *_ in execute(target.conn, statement)}
    return mysql, snowflake


def _checked(plan):
    return checksums.checksum_columns(plan)


def test_every_value_reads_back_equal_and_hashes_alike(env):
    """Each run copies a chunk through a staged file and its last, small chunk through the multi-row
    INSERT path (SMALL_CHUNK_ROWS); the staged file is the rows MySQL sent, encoded and checksummed on
    the worker, in one run, MySQL's formatted lines in the next and values encoded in Python from pymysql
    in the third (EXTRACT_FORMAT), so every encoding meets every value class."""
    _create(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": str(SMALL), "REDELIVERY_BASE_SECONDS": "0"})
    paths = itertools.cycle(["worker", "server", "python"])
    plan = source_discover.discover_table(env.mysql, env.database, "prop")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows=rows_strategy)
    def copy_and_compare(rows: list[tuple[Any, ...]]) -> None:
        _insert(env, rows)
        os.environ["EXTRACT_FORMAT"] = next(paths)
        load_settings.cache_clear()  # each run's workers are new containers: they read it again
        request = {"tables": "prop", "mode": "full", "chunk_rows": max(len(rows) - SMALL, SMALL + 1)}
        # hypothesis replays a failing example: a failed run's lease must not decline the replay
        stack.dynamodb.delete_item(
            TableName=stack.table_name, Key={"pk": {"S": env.key("prop").pk}, "sk": {"S": "LEASE"}}
        )
        logged = stack.log_path.stat().st_size
        outcome = stack.run(request, workers=1, idle_timeout=10, timeout=300)
        # the finaliser compared every chunk's checksum in the load table (JSON as text included)
        state = outcome.run["table_states"].get("prop", {})
        if not outcome.ok:
            with stack.log_path.open() as log:
                log.seek(logged)
                errors = [line[:2000] for line in log if '"level":"ERROR"' in line or "Error" in line][:5]
            pytest.fail(
                f"{state.get('status')}: {state.get('reason') or state.get('last_error')}\n"
                + "\n".join([*state.get("differences", []), *errors])
            )
        sf = env.snowflake()
        try:
            mysql_rows, sf_rows = fetch_pair(env.db.connect(env.database), env.database, sf, "prop")
            assert len(mysql_rows) == len(sf_rows) == len(rows)
            for m, s in zip(mysql_rows, sf_rows, strict=True):
                for c, a, b in zip(plan.columns, m, s, strict=True):
                    assert a == b, f"row id={m[0]} column {c.name!r}: MySQL {a!r}, Snowflake {b!r}"
            # and every row's checksum is the same in both engines, in the published target
            target = Target(sf, "STAGE")
            mine, theirs = _row_hashes(env, plan, target)
            if mine != theirs:
                named = diagnose.name_differences(env.mysql, target, plan, None, None, plan.target_table)
                pytest.fail("row hashes differ: " + "; ".join(d.describe() for d in named))
            assert not diagnose.json_differences(env.mysql, target, plan, None, None, plan.target_table)
        finally:
            sf.close()

    copy_and_compare()


def test_a_rows_term_is_the_same_number_in_both_engines(env):
    """Snowflake's term is ``MD5_NUMBER_UPPER64`` of the row's text, MySQL's the first 16 hex digits of
    its MD5 as a number: the same 64 bits, so their sums agree. The first value is the example of
    Snowflake's SQL reference ("MD5_NUMBER_UPPER64": 'Snowflake' gives 17145559544104499780), which
    the emulator must reproduce rather than DuckDB's own md5_number_upper (another byte order). The
    sum of five terms is past 2^53: a sum through a double would lose its last digits."""
    import hashlib

    texts = ["Snowflake", "", "é😀", "a\x1fb", "x" * 5000]
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute("SELECT MD5_NUMBER_UPPER64('Snowflake')")
        assert int(cur.fetchone()[0]) == 17145559544104499780
        values = ", ".join(["(%s)"] * len(texts))
        # summed as the checksums sum them, from a derived column: exact, as Snowflake sums a NUMBER
        # (the emulator is made to; it summed such a column as a DOUBLE)
        terms = f"SELECT MD5_NUMBER_UPPER64(column1) AS t FROM VALUES {values}"
        cur.execute(f"SELECT COUNT(*), SUM(t) FROM ({terms})", texts)
        snowflake = tuple(int(v) for v in cur.fetchone())
    finally:
        conn.close()
    rows = " UNION ALL ".join(["SELECT CONVERT(%s USING utf8mb4) AS t"] * len(texts))
    with env.mysql.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), SUM(CAST(CONV(SUBSTRING(MD5(t), 1, 16), 16, 10) AS UNSIGNED)) FROM ({rows}) v", texts
        )
        mysql = tuple(int(v) for v in cur.fetchone())
    assert snowflake == mysql
    digests = [hashlib.md5(t.encode()).hexdigest() for t in texts]  # noqa: S324 - a checksum, not security
    assert checksums.fold_sums(*snowflake) == checksums.fold_hashes(digests)


def test_the_worker_makes_each_rows_line_and_term_as_mysql_does(env):
    """EXTRACT_FORMAT=worker: from the bytes MySQL sends for a plain SELECT of the chunk's columns
    (``source.bulk``), the worker's staging line and checksum term of each row (``pipeline.rowcodec``)
    are byte for byte MySQL's formatted line (``source.sql._csv_field``) and the number of MySQL's own
    term (``source.sql.row_hash_hex``), for every value class of the table above, NULLs and zero dates
    included. So the worker's checksum is the one MySQL would have computed, and a line it spelled
    wrong would show as a difference from what Snowflake loads."""
    from aurora_replication.pipeline import rowcodec
    from aurora_replication.secrets import MySQLSettings
    from aurora_replication.source import bulk

    _create(env)
    plan = source_discover.discover_table(env.mysql, env.database, "prop")
    settings_ = MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)
    conn = bulk.connect(settings_)
    fields = ", ',', ".join(source_sql._csv_field(c) for c in plan.columns)
    mysql_side = f"SELECT `id`, CONCAT({fields}), {source_sql.row_hash_hex(plan, json_text=True)} FROM `prop`"
    query, params = source_sql.chunk_query(plan, None, None)

    @settings(
        max_examples=EXAMPLES * 10,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows=rows_strategy)
    def compare(rows: list[tuple[Any, ...]]) -> None:
        _insert(env, rows)
        expected = {int(i): (line, int(term, 16)) for i, line, term in source_read.query(env.mysql, mysql_side)}
        batch = [row for b in bulk.batches(conn, query, params) for row in b]
        codec = rowcodec.RowCodec(plan, hashed=True)
        codec.encode(batch, b"\n")  # the chunk's checksum, a batch at a time
        each = rowcodec.RowCodec(plan, hashed=False)
        lines = [each.encode([row], b"").decode() for row in batch]  # a line may hold newlines
        got = {int(row[0]): (line, term) for row, line, term in zip(batch, lines, codec.terms(batch), strict=True)}
        assert got.keys() == expected.keys()
        for i, (line, term) in got.items():
            assert line == expected[i][0], f"row id={i}: worker {line!r}, MySQL {expected[i][0]!r}"
            assert term == expected[i][1], f"row id={i}: the worker's term differs from MySQL's"
        assert codec.checksum() == source_read.chunk_checksum(env.mysql, plan, None, None)

    try:
        compare()
    finally:
        conn.close()
