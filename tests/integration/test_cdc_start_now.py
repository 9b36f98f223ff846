"""cdc's start_position "now" (streaming from the position now, no initial copy) and a re-snapshot of one
table while the run's other tables stream."""

from __future__ import annotations

from compare import assert_same

NO_AUDIT = {"AUDIT_PERIOD_SECONDS": "86400", "AUDIT_MIN_ROWS": "100000000"}


def _target(env, sql: str, *params) -> list[tuple]:
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute(sql, params or None)
    rows = cur.fetchall() if cur.description else []
    sf.close()
    return rows


def _backfill(env, ids: range) -> None:
    """What the owner's own backfill does: the MySQL rows loaded into the target behind the pipeline."""
    with env.mysql.cursor() as cur:
        cur.execute("SELECT id, name, qty FROM items WHERE id BETWEEN %s AND %s", (ids.start, ids.stop - 1))
        rows = cur.fetchall()
    sf = env.snowflake()
    sf.cursor().executemany('INSERT INTO "ITEMS" ("ID", "NAME", "QTY") VALUES (%s, %s, %s)', rows)
    sf.close()


def test_start_position_now_streams_without_a_copy_and_is_not_taken_for_drift(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items SELECT seq, CONCAT('i', seq), seq FROM seq_1_to_20",
    )
    stack = env.start_stack(NO_AUDIT)
    first = stack.run({"tables": "items", "mode": "cdc", "start_position": "now"}, workers=1, timeout=120)
    t = first.run["table_states"]["items"]
    assert first.ok and t["status"] == "published" and t["mode"] == "cdc" and t["chunk_count"] == 0, t
    assert "without an initial copy" in " ".join(t["notes"])
    assert _target(env, 'SELECT COUNT(*) FROM "ITEMS"') == [(0,)]  # made, empty: the backfill's to load
    _backfill(env, range(1, 6))
    env.sql(
        "UPDATE items SET qty = 1000 WHERE id = 1",
        "INSERT INTO items VALUES (100, 'new', 1)",
        "DELETE FROM items WHERE id = 2",
    )
    second = stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "cdc" and t["upserts"] == 2 and t["deletes"] == 1, t
    assert _target(env, 'SELECT "ID", "QTY" FROM "ITEMS" ORDER BY 1') == [(1, 1000), (3, 3), (4, 4), (5, 5), (100, 1)]
    _backfill(env, range(6, 21))  # the target's count moves behind the pipeline: the backfill, not drift
    env.sql("UPDATE items SET name = 'later' WHERE id = 7")
    third = stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120)
    t = third.run["table_states"]["items"]
    assert third.ok and t["mode"] == "cdc", t  # no new initial copy
    assert any("row count is not checked" in n for n in t["notes"]), t["notes"]
    assert assert_same(env, "items") == 20


def test_one_table_re_snapshotted_while_the_others_stream(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items SELECT seq, CONCAT('i', seq), seq FROM seq_1_to_30",
        "CREATE TABLE other (k INT PRIMARY KEY, v INT)",
        "INSERT INTO other SELECT seq, seq FROM seq_1_to_10",
    )
    stack = env.start_stack(NO_AUDIT)
    assert stack.run({"tables": "items,other", "mode": "cdc"}, workers=2, timeout=120).ok
    env.sql("UPDATE items SET qty = 0 WHERE id = 1", "UPDATE other SET v = 0 WHERE k = 1")
    both = stack.run({"tables": "items,other", "mode": "cdc", "resnapshot": ["other"]}, workers=2, timeout=120)
    states = both.run["table_states"]
    assert both.ok, states
    assert states["items"]["mode"] == "cdc" and states["items"]["upserts"] == 1  # streamed in the same run
    assert states["other"]["mode"] == "full"  # copied again from a new position
    env.sql("DELETE FROM items WHERE id = 2", "DELETE FROM other WHERE k = 2")
    again = stack.run({"tables": "items,other", "mode": "cdc"}, workers=2, timeout=120)
    assert again.ok and {t["mode"] for t in again.run["table_states"].values()} == {"cdc"}, again.run
    assert assert_same(env, "items") == 29 and assert_same(env, "other") == 9
