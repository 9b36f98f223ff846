"""The emulator takes a table's lock for UPDATE, DELETE and MERGE, as Snowflake documents ("Resource
locking": they do not run in parallel with each other on one table). fakesnow runs a MERGE as several
DuckDB statements, each on its own snapshot: two MERGEs of the same new keys at once both inserted them,
a duplicate Snowflake does not make (this is what a cdc batch delivered twice at once met)."""

from __future__ import annotations

import threading
from typing import Any

ROWS = 200_000


def _run(env: Any, statements: list[str]) -> list[Any]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        out: list[Any] = []
        for statement in statements:
            cur.execute(statement)
            out.append(cur.fetchall())
        return out
    finally:
        conn.close()


def test_two_merges_of_the_same_new_keys_at_once_insert_each_key_once(env) -> None:
    _run(
        env,
        [
            "CREATE OR REPLACE TABLE LOCK_SRC (ID NUMBER, V VARCHAR)",
            f"INSERT INTO LOCK_SRC SELECT SEQ8(), 'v' FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))",
            "CREATE OR REPLACE TABLE LOCK_T (ID NUMBER, V VARCHAR)",
        ],
    )
    merge = (
        "MERGE INTO LOCK_T t USING (SELECT DISTINCT ID, V FROM LOCK_SRC) s ON t.ID = s.ID "
        "WHEN MATCHED THEN UPDATE SET t.V = s.V WHEN NOT MATCHED THEN INSERT (ID, V) VALUES (s.ID, s.V)"
    )
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait(timeout=30)
            _run(env, [merge])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    [[(count, distinct)]] = _run(env, ["SELECT COUNT(*), COUNT(DISTINCT ID) FROM LOCK_T"])
    assert (count, distinct) == (ROWS, ROWS)
