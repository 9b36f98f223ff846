"""The COPY's file format pins the date and timestamp formats the staging writes (never AUTO, which
reads the account's input formats), and the emulator parses them as Snowflake does: text in that
format loads, text in another fails the COPY."""

from __future__ import annotations

import gzip

import pytest
import snowflake.connector

from aurora_replication.target.snowflake import sql as snowflake_sql


def _copy(env, tmp_path, name: str, line: str) -> list[tuple[object, ...]]:
    conn = env.snowflake()
    cur = conn.cursor()
    try:
        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{env.schema}"')
        cur.execute(f'USE SCHEMA "{env.schema}"')
        cur.execute("CREATE STAGE IF NOT EXISTS FMT_STAGE")
        cur.execute(f'CREATE OR REPLACE TABLE "{name}" (D DATE, TS TIMESTAMP_NTZ(6), N NUMBER(5,0))')
        path = tmp_path / f"{name}.csv.gz"
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(line + "\n")
        cur.execute(f"PUT file://{path} @FMT_STAGE/{name}/ AUTO_COMPRESS = FALSE")
        cur.execute(
            f'COPY INTO "{name}" ("D", "TS", "N") FROM @FMT_STAGE/{name}/ {snowflake_sql.CSV_FILE_FORMAT} PURGE = TRUE'
        )
        return list(cur.execute(f'SELECT D::VARCHAR, TS::VARCHAR, N FROM "{name}"').fetchall())
    finally:
        conn.close()


def test_staged_dates_and_timestamps_load_in_the_pinned_formats(env, tmp_path):
    assert _copy(env, tmp_path, "OK", "2024-02-29,2024-02-29 23:59:59.000001,1") == [
        ("2024-02-29", "2024-02-29 23:59:59.000001", 1)
    ]


@pytest.mark.parametrize(
    "line",
    ["2024-02-29,2024-02-29 23:59:59,1", "02/29/2024,2024-02-29 23:59:59.000001,1"],
    ids=["timestamp-without-fraction", "date-in-another-format"],
)
def test_text_in_another_format_fails_the_copy(env, tmp_path, line):
    with pytest.raises(snowflake.connector.errors.ProgrammingError):
        _copy(env, tmp_path, "BAD", line)
