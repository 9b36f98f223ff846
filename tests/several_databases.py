"""Helpers of the tests of several source databases: the databases beside the test's own, and their rows
on each side."""

from __future__ import annotations

from typing import Any

# rows 1..n with ``v`` '<suffix>-<n>' and a watermark one second apart (``items`` with ``updated_at``)
WITH_WATERMARK = (
    "INSERT INTO items (id, v, updated_at) SELECT seq, CONCAT('{suffix}-', seq), "
    "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{n}"
)


def make_databases(env: Any, table: str, sizes: dict[str, int], insert: str) -> dict[str, str]:
    """A database ``<db>_<suffix>`` beside the test's own per ``sizes`` entry, each with ``table`` and the
    rows ``insert`` (formatted with ``suffix`` and ``n``) puts in it; suffix -> database name."""
    names = {}
    for suffix, n in sizes.items():
        name = f"{env.database}_{suffix}"
        env.sql(f"CREATE DATABASE `{name}`", f"USE `{name}`", table, insert.format(suffix=suffix, n=n))
        names[suffix] = name
    env.sql(f"USE `{env.database}`")
    return names


def mysql_rows(env: Any, database: str, columns: str) -> list[tuple[Any, ...]]:
    """``database``.items' ``columns``, by id."""
    conn = env.db.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT {columns} FROM items ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def snowflake_rows(env: Any, schema: str, table: str, columns: str) -> list[tuple[Any, ...]]:
    """``ANALYTICS.<schema>.<table>``'s ``columns``, by ID."""
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT {columns} FROM "ANALYTICS"."{schema}"."{table}" ORDER BY "ID"')
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def landing(env: Any, mapping: str, database: str) -> tuple[str, str]:
    """The Snowflake schema and table ``database``.items lands in under ``mapping`` (schema or prefix)."""
    if mapping == "schema":
        return database.upper(), "ITEMS"
    return env.schema, f"{database}__items".upper()
