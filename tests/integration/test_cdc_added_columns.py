"""Columns added during a cdc stream whose values the binlog does not carry for the rows no event touched
(NOT NULL, a default, or added beside a dropped column): added to the target and filled from MySQL by key,
without a re-copy and without stopping the table."""

from __future__ import annotations

from compare import assert_same

# small pages and budget per window, so that each added column fills over two windows
STACK_ENV = {"AUDIT_PERIOD_SECONDS": "1", "CDC_FILL_PAGE_ROWS": "100", "CDC_FILL_ROWS": "200"}


def _cdc(stack):
    return stack.run({"tables": "items,other", "mode": "cdc"}, workers=2, timeout=180)


def test_columns_added_not_null_with_a_default_or_beside_a_drop_are_filled_from_mysql(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT)",
        "INSERT INTO items SELECT seq, CONCAT('item ', seq), seq FROM seq_1_to_300",
        "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO other VALUES (1, 'a')",
    )
    stack = env.start_stack(STACK_ENV)
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET qty = 1000 WHERE id = 1",
        "ALTER TABLE items ADD COLUMN flag INT NOT NULL DEFAULT 7",
        "UPDATE items SET flag = 1 WHERE id = 250",
        "ALTER TABLE items DROP COLUMN name, ADD COLUMN label VARCHAR(20) NULL",  # another type: not a rename
        "UPDATE items SET label = 'L' WHERE id IN (2, 290)",
        "INSERT INTO items (id, qty, flag, label) VALUES (301, 5, 3, 'new')",
        "UPDATE other SET v = 'b' WHERE id = 1",
    )
    second = _cdc(stack)
    states = second.run["table_states"]
    t = states["items"]
    assert second.ok and t["mode"] == "cdc", states  # streamed on: no stop, no re-copy
    assert states["other"]["status"] == "published"
    changes = sorted((c["change"], c["column"]) for c in t["schema_changes"])
    assert changes == [
        ("column added, filled", "FLAG"),
        ("column added, filled", "LABEL"),
        ("column dropped", "NAME"),
    ], t["schema_changes"]
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["result"] == "ok" and report["filling"], report  # not compared while filling, and says so
    windows = 0
    while any("is filling" in n for n in t.get("notes") or []):  # one column after the other, in pages
        windows += 1
        assert windows <= 6, t
        env.sql("UPDATE items SET qty = qty + 1 WHERE id = 5")  # changes go on meanwhile
        run = _cdc(stack)
        t = run.run["table_states"]["items"]
        assert run.ok and t["mode"] == "cdc", t
    assert windows >= 3, windows  # two columns of 301 rows, 200 rows per window
    assert assert_same(env, "items") == 301
    assert assert_same(env, "other") == 1
    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["result"] == "ok" and "filling" not in report, report
