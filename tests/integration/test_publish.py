"""A full run publishes into the target table in place: the object and what is attached to it survive."""

from __future__ import annotations

from typing import Any

from aurora_replication.target.snowflake import client as target_client
from aurora_replication.target.snowflake import sql as snowflake_sql
from compare import assert_same


def _query(env, statement: str) -> list[tuple[Any, ...]]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(statement)
        return list(cur.fetchall())
    finally:
        conn.close()


def test_a_second_full_run_keeps_comment_and_clustering_key_and_a_failed_publish_keeps_the_old_rows(
    env, monkeypatch
) -> None:
    env.sql(
        "CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO p SELECT seq, CONCAT('old ', seq) FROM seq_1_to_40",
    )
    stack = env.start_stack({"REDELIVERY_BASE_SECONDS": "0"})
    assert stack.run({"tables": "p", "mode": "full", "chunk_rows": 10}, workers=2).ok
    _query(env, "COMMENT ON TABLE \"P\" IS 'owned by analytics'")
    _query(env, 'ALTER TABLE "P" CLUSTER BY ("ID")')  # accepted; the emulator does not record it
    old = _query(env, 'SELECT "ID", "V" FROM "P" ORDER BY "ID"')
    env.sql("UPDATE p SET v = 'new' WHERE id <= 5", "DELETE FROM p WHERE id > 30", "INSERT INTO p VALUES (99, 'x')")

    # the first publish fails inside its transaction (after INSERT OVERWRITE has begun); its retry succeeds
    original = snowflake_sql.overwrite
    seen: list[list[tuple[Any, ...]]] = []

    def failing_once(*args: Any) -> str:
        statement = original(*args)
        return statement + " AND CAST('not a number' AS NUMBER) = 1" if not seen else statement

    real_overwrite = target_client.Target.overwrite

    def overwrite(self: Any, *args: Any) -> None:
        try:
            real_overwrite(self, *args)
        except Exception:
            seen.append(_query(env, 'SELECT "ID", "V" FROM "P" ORDER BY "ID"'))
            raise

    monkeypatch.setattr(snowflake_sql, "overwrite", failing_once)
    monkeypatch.setattr(target_client.Target, "overwrite", overwrite)
    outcome = stack.run({"tables": "p", "mode": "full", "chunk_rows": 10}, workers=2)
    state = outcome.run["table_states"]["p"]
    assert outcome.ok, state
    assert seen == [old]  # the failed publish left the old contents, whole
    assert state["publish"] == "rows overwritten in place"
    assert_same(env, "p")
    assert _query(
        env, "SELECT comment FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = 'P'"
    ) == [("owned by analytics",)]


def test_a_full_run_over_a_changed_type_recreates_the_target_and_says_so(env) -> None:
    env.sql("CREATE TABLE c (id INT PRIMARY KEY, code VARCHAR(10))", "INSERT INTO c VALUES (1, '7'), (2, '8')")
    stack = env.start_stack()
    assert stack.run({"tables": "c", "mode": "full"}, workers=1).ok
    env.sql("ALTER TABLE c MODIFY code INT")
    outcome = stack.run({"tables": "c", "mode": "full"}, workers=1)
    state = outcome.run["table_states"]["c"]
    assert outcome.ok, state
    assert state["publish"].startswith("target recreated") and "'code'" in state["publish"]
    assert_same(env, "c")
