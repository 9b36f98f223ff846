"""Table-level state (lease, watermark, last run, catalog) is kept per source database and target
database.schema.table: a stack pointed at another target schema, or another source database, starts
from nothing there (a full copy) and leaves the state of the first one as it was."""

from __future__ import annotations

from typing import Any

from aurora_replication_dev.local.stack import parse_source_url
from compare import assert_same

TABLE = (
    "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
)


def _rows(n: int, prefix: str) -> str:
    return (
        f"INSERT INTO items (id, v, updated_at) SELECT seq, CONCAT('{prefix}', seq), "
        f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{n}"
    )


def _item(stack: Any, key: Any, sk: str) -> dict[str, Any] | None:
    return stack.dynamodb.get_item(TableName=stack.table_name, Key={"pk": {"S": key.pk}, "sk": {"S": sk}}).get("Item")


def test_a_new_target_schema_gets_a_full_copy_and_the_old_watermark_stays(env) -> None:
    env.sql(TABLE, _rows(50, "v"))
    stack = env.start_stack()
    first = stack.run({"tables": "items", "mode": "auto"}, workers=1)
    assert first.ok and first.run["table_states"]["items"]["mode"] == "full", first.run["table_states"]
    schema_a = env.key("items")
    watermark_a = _item(stack, schema_a, "WATERMARK")
    assert watermark_a is not None and watermark_a["run_id"]["S"] == first.run_id
    # an incremental run into A would now copy these 10 rows only
    env.sql("UPDATE items SET v = 'changed' WHERE id <= 10")
    stack.stop()

    env.schema += "_B"  # a new target secret: same stack and state, another schema
    stack = env.start_stack()
    second = stack.run({"tables": "items", "mode": "auto"}, workers=1)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "full" and int(t["rows_copied"]) == 50, t
    assert any("full copy (auto mode: first run)" in note for note in t["notes"]), t["notes"]
    assert assert_same(env, "items") == 50
    assert _item(stack, schema_a, "WATERMARK") == watermark_a  # A's state untouched
    watermark_b = _item(stack, env.key("items"), "WATERMARK")
    assert watermark_b is not None and watermark_b["run_id"]["S"] == second.run_id
    assert env.key("items").pk != schema_a.pk
    # the health check lists the tables of the scope the stack copies to now
    tables = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]
    assert tables["items"]["last_run"] == second.run_id


def test_two_source_databases_with_the_same_table_do_not_share_state(env) -> None:
    env.sql(TABLE, _rows(50, "first"))
    stack = env.start_stack()
    assert stack.run({"tables": "items", "mode": "auto"}, workers=1).ok
    first_db = env.key("items")
    watermark_first = _item(stack, first_db, "WATERMARK")
    stack.stop()

    other = env.database + "_other"
    env.sql(f"CREATE DATABASE `{other}`", f"USE `{other}`", TABLE, _rows(30, "other"))
    env.sql("UPDATE items SET updated_at = '2023-06-01' WHERE id <= 5")  # older than the first watermark
    env.database = other  # the source secret names the other database from now on
    stack = env.start_stack(source_secret=parse_source_url(env.source_url))
    outcome = stack.run({"tables": "items", "mode": "auto"}, workers=1)
    t = outcome.run["table_states"]["items"]
    # incremental from the first database's watermark would have copied some of the 30 rows over the 50
    assert outcome.ok and t["mode"] == "full" and int(t["rows_copied"]) == 30, t
    assert assert_same(env, "items") == 30
    assert _item(stack, first_db, "WATERMARK") == watermark_first
    assert env.key("items").pk != first_db.pk
