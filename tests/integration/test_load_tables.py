"""A small chunk's load table is created with its rows in one statement (``CREATE TABLE ... AS
SELECT``), and is the same table, with the same values, as the two statements it replaces make."""

from __future__ import annotations

from typing import Any

import pytest
import snowflake.connector

from aurora_replication.pipeline import staging
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import connect as source_connect
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.target.snowflake import client as target_client
from aurora_replication.target.snowflake import sql as snowflake_sql

TYPES = """
CREATE TABLE typed (
  id BIGINT PRIMARY KEY, tiny TINYINT(1), amount DECIMAL(12,2), frac DECIMAL(5,5), ratio DOUBLE,
  born DATE, seen DATETIME(6), stamp TIMESTAMP(3) NULL, took TIME(6), yr YEAR, flags BIT(12),
  note VARCHAR(40), body TEXT, raw VARBINARY(16), doc JSON, kind ENUM('a','b'), tags SET('x','y')
) CHARACTER SET utf8mb4
"""
ROWS = [
    "(1, 1, 1234.56, 0.5, 1.5e-300, '2024-02-29', '2024-02-29 23:59:59.999999', '2024-01-01 00:00:00.123', "
    "'-838:59:59', 2024, b'101', 'tab\\there', 'line\\nbreak, \"quoted\" ''single''', X'00FF10', "
    "'{\"a\": [1, 2.50, \"x\"]}', 'b', 'x,y')",
    "(2, NULL, -0.01, -0.00001, -0.0, '1000-01-01', '1970-01-01 00:00:00', NULL, '00:00:00', NULL, NULL, "
    "'', '', X'', 'null', NULL, '')",
    "(3, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]


def _rows(env, plan) -> list[list[Any]]:
    """The rows as the worker binds them: text from a connection that converts nothing, as its own."""
    conn = source_connect.connect(
        MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)
    )
    query, params = source_sql.chunk_query(plan, None, None)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return staging.bound_rows(plan, list(cur.fetchall()))
    finally:
        conn.close()


def _columns(conn, table: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return list(cur.fetchall())


def _attempt(conn, table: str, attempt: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cols = ", ".join(f'"{c[0]}"' for c in _columns(conn, table) if c[0] != snowflake_sql.ATTEMPT_COLUMN)
    cur.execute(f'SELECT {cols} FROM "{table}" WHERE "{snowflake_sql.ATTEMPT_COLUMN}" = %s ORDER BY "ID"', (attempt,))
    return list(cur.fetchall())


def test_a_small_chunk_creates_its_load_table_with_its_rows_and_a_cold_container_inserts_into_it(env):
    env.sql(TYPES, "INSERT INTO typed VALUES " + ", ".join(ROWS))
    plan = source_discover.discover_table(env.mysql, env.database, "typed")
    rows = _rows(env, plan)
    name = snowflake_sql.load_table_name(plan, "20261205T000000Z-abcd")
    first, cold, check = env.snowflake(), env.snowflake(), env.snowflake()
    try:
        executed: list[str] = []
        original = target_client.execute

        def recording(conn, statement, params=None):
            executed.append(statement.split(" AS SELECT ")[0].split(" (")[0])
            return original(conn, statement, params)

        target_client.execute = recording  # type: ignore[assignment]
        try:
            ready: set[str] = set()
            target_client.Target(first, "STAGE", ready).load_rows(plan, name, 0, "a1", rows)
            assert executed == [f'CREATE TRANSIENT TABLE "{name}"'], executed  # one statement: table and rows
            target_client.Target(first, "STAGE", ready).load_rows(plan, name, 0, "a2", rows)  # the same container
            assert executed[1].startswith(f'INSERT INTO "{name}"'), executed
            executed.clear()
            # another container, which has not seen the table: the create fails as Snowflake's does, then inserts
            target_client.Target(cold, "STAGE", set()).load_rows(plan, name, 0, "a3", rows)
            assert executed == [f'CREATE TRANSIENT TABLE "{name}"', f'INSERT INTO "{name}"'], executed
        finally:
            target_client.execute = original  # type: ignore[assignment]

        # the same columns and types as the load table the two statements make
        twin = name + "_TWIN"
        check.cursor().execute(snowflake_sql.create_load_table(plan, twin))
        assert _columns(check, name) == _columns(check, twin)
        # the same values, each converted as an INSERT converts it; and what MySQL holds, checksum for checksum
        created, inserted, again = (_attempt(check, name, a) for a in ("a1", "a2", "a3"))
        assert created == inserted == again and len(created) == 3
        attempts = snowflake_sql.attempts_inline("t", [(0, "a1")])
        sums = target_client.Target(check, "STAGE").checksums_of_attempts(plan, name, attempts)
        assert sums == {0: source_read.chunk_checksum(env.mysql, plan, None, None, None)}
    finally:
        for conn in (first, cold, check):
            conn.close()


def test_an_empty_chunk_still_creates_its_load_table(env):
    env.sql("CREATE TABLE nothing (id INT PRIMARY KEY, v VARCHAR(5))")
    plan = source_discover.discover_table(env.mysql, env.database, "nothing")
    name = snowflake_sql.load_table_name(plan, "20261205T000000Z-ef01")
    conn = env.snowflake()
    try:
        target_client.Target(conn, "STAGE", set()).load_rows(plan, name, 0, "a1", [])
        assert [c[0] for c in _columns(conn, name)] == ["ID", "V", "_ASR_CHUNK", "_ASR_ATTEMPT"]
    finally:
        conn.close()


def test_creating_a_table_that_exists_fails_with_snowflakes_code_for_it(env):
    """Snowflake: 002002 (42710) "Object '...' already exists."; the emulator is made to say the same,
    not the code of a missing object (002003), which the load's fallback relies on."""
    conn = env.snowflake()
    try:
        conn.cursor().execute('CREATE TABLE "TWICE" ("A" NUMBER(10,0))')
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as failed:
            conn.cursor().execute('CREATE TRANSIENT TABLE "TWICE" AS SELECT 1 AS "A"')
        assert (failed.value.errno, failed.value.sqlstate) == (2002, "42710")
        with pytest.raises(snowflake.connector.errors.ProgrammingError) as missing:
            conn.cursor().execute('SELECT * FROM "NEVER_MADE"')
        assert missing.value.errno != 2002
    finally:
        conn.close()
