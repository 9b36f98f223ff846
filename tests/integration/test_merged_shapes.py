"""``database_mapping: merge``'s agreement check (``pipeline/databases.table_shapes`` and ``shapes_agree``)
against real MariaDB: databases whose tables are alike pass; a column more, a type or nullability of
another kind, another primary key are each refused, naming the table, the databases and the difference."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.pipeline import databases

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NULL, n INT NOT NULL)"


def _make(env: Any, suffix: str, ddl: str) -> str:
    name = f"{env.database}_{suffix}"
    env.sql(f"CREATE DATABASE `{name}`", f"USE `{name}`", ddl)
    env.sql(f"USE `{env.database}`")
    return name


def _check(env: Any, names: list[str]) -> None:
    conn = env.db.connect(env.database)
    try:
        databases.shapes_agree(databases.table_shapes(conn, names, ["items"]), ["items"])
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("other", "error"),
    [
        (TABLE, None),
        (
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NULL, n INT NOT NULL, extra INT)",
            r"no such column in '.*_a', column 'extra' int(\(11\))? NULL in '.*_b'",
        ),
        (
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(30) NULL, n INT NOT NULL)",
            r"column 'v' varchar\(20\) NULL in '.*_a', column 'v' varchar\(30\) NULL in '.*_b'",
        ),
        (
            "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20) NULL, n INT NULL)",
            r"column 'n' int(\(11\))? NOT NULL in '.*_a', column 'n' int(\(11\))? NULL in '.*_b'",
        ),
        (
            "CREATE TABLE items (id INT, v VARCHAR(20) NULL, n INT NOT NULL, PRIMARY KEY (id, n))",
            r"primary key \(id\) in '.*_a', \(id,n\) in '.*_b'",
        ),
    ],
)
def test_merged_databases_must_have_alike_tables(env: Any, other: str, error: str | None) -> None:
    names = [_make(env, "a", TABLE), _make(env, "b", other), _make(env, "c", TABLE)]
    if error is None:
        _check(env, names)
        return
    with pytest.raises(
        BadInputError, match=r"database_mapping 'merge': table 'items' differs between databases .*" + error
    ):
        _check(env, names)
