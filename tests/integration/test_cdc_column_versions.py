"""A type change during a cdc stream that is not a lossless widening: a new column version, filled from
MySQL by key over several windows, without a re-copy and without stopping the other tables."""

from __future__ import annotations

from compare import assert_same

# tiny pages and a small budget per window, so that 301 rows fill over three windows
STACK_ENV = {
    "AUDIT_PERIOD_SECONDS": "1",
    "AUDIT_MIN_ROWS": "1",  # every run audits a slice at least, however soon after the last audit it starts
    "POWERTOOLS_METRICS_DISABLED": "false",
    "CDC_FILL_PAGE_ROWS": "50",
    "CDC_FILL_ROWS": "120",
}
VERSION = {"qty": "QTY__V2"}


def _cdc(stack, tables: str = "items,other", **extra):
    return stack.run({"tables": tables, "mode": "cdc", **extra}, workers=2, timeout=180)


def _target(env, sql: str) -> list[tuple]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()


def _seed(env, rows: int = 300) -> None:
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT)",
        f"INSERT INTO items SELECT seq, CONCAT('item ', seq), seq FROM seq_1_to_{rows}",
        "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO other VALUES (1, 'a')",
    )


def test_a_type_change_gets_a_column_version_filled_over_several_windows(env):
    _seed(env)
    stack = env.start_stack(STACK_ENV)
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET qty = 1000 WHERE id = 1",  # before the ALTER, same window: an INT image
        "ALTER TABLE items MODIFY qty DECIMAL(12,2)",
        "UPDATE items SET qty = 2.5 WHERE id = 2",
        "UPDATE items SET qty = 250.25 WHERE id = 250",
        "INSERT INTO items VALUES (301, 'new', 7.25)",
        "UPDATE other SET v = 'b' WHERE id = 1",
    )
    second = _cdc(stack)
    states = second.run["table_states"]
    t = states["items"]
    assert second.ok and t["mode"] == "cdc", states  # streamed on: no re-copy, no stop
    assert states["other"]["status"] == "published"
    assert_same(env, "other")
    changes = t["schema_changes"]
    assert [(c["change"], c["column"], c["run"]) for c in changes] == [
        ("column version added", "QTY__V2", second.run_id)
    ], changes
    assert (changes[0]["old_type"], changes[0]["new_type"]) == ("int(11)", "decimal(12,2)"), changes
    assert "audit_differences" not in t, t  # no audit while the version fills
    assert "filling" in t["column_version"], t
    # the first pages (ids 1..120) are filled, the rest not yet; the old column is kept, frozen
    rows = _target(env, 'SELECT "ID", "QTY", "QTY__V2" FROM "ITEMS" WHERE "ID" IN (1, 2, 3, 121, 250) ORDER BY "ID"')
    assert [(r[0], r[2]) for r in rows] == [(1, 1000), (2, 2.5), (3, 3), (121, None), (250, None)], rows
    assert rows[2][1] == 3 and rows[3][1] == 121, rows  # the old column keeps its values
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["result"] == "ok" and "qty" in report["not_compared"] and report["filling"], report
    health = stack.invoke("HealthFunction", {})["checks"]
    assert health["cdc"]["tables"]["items"]["filling"] == ['QTY__V2 (cursor ["120"])'], health["cdc"]
    # changes after the ALTER, on rows filled and not yet filled: written to the version by their images
    env.sql("UPDATE items SET qty = 5.5 WHERE id = 5", "UPDATE items SET qty = 200.75 WHERE id = 200")
    third = _cdc(stack)
    t = third.run["table_states"]["items"]
    assert third.ok and t["mode"] == "cdc" and "filling" in t["column_version"], t
    assert not t.get("schema_changes"), t  # recorded once
    fourth = _cdc(stack)
    t = fourth.run["table_states"]["items"]
    assert fourth.ok and t["column_version"].endswith("filled"), t
    assert assert_same(env, "items", VERSION) == 301
    # filled: compared as any column, by the audit and by validate
    env.sql("UPDATE items SET qty = 9.99 WHERE id = 9")
    fifth = _cdc(stack)
    t = fifth.run["table_states"]["items"]
    assert fifth.ok and t["audit_differences"] == 0 and "column_version" not in t, t
    assert assert_same(env, "items", VERSION) == 301
    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["result"] == "ok" and "filling" not in report and not report.get("not_compared"), report
    checks = stack.invoke("HealthFunction", {})["checks"]
    status = checks["replication"]["tables"]["items"]
    assert [(c["change"], c["column"]) for c in status["schema_changes"]] == [("column version added", "QTY__V2")]
    assert "filling" not in checks["cdc"]["tables"]["items"], checks["cdc"]
    # a second change of the same column, by CHANGE keeping its name (a MODIFY): the next version
    env.sql("ALTER TABLE items CHANGE qty qty VARCHAR(20)", "UPDATE items SET qty = 'x' WHERE id = 10")
    for _ in range(4):
        t = _cdc(stack).run["table_states"]["items"]
        assert t["status"] == "published", t
        if t.get("column_version", "").endswith("filled"):
            break
    assert assert_same(env, "items", {"qty": "QTY__V3"}) == 301
