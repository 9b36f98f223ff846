"""A type change between incremental runs that Snowflake cannot make in place: a new column version,
filled from MySQL by key over several runs, instead of failing the table (incremental) or copying it in
full (auto)."""

from __future__ import annotations

from compare import assert_same

# tiny pages and a small budget per run, so that 301 rows fill over three runs; no overlap, so that a run
# copies exactly the rows whose watermark moved
STACK_ENV = {
    "AUDIT_PERIOD_SECONDS": "1",
    "AUDIT_MIN_ROWS": "1",  # every run audits a slice at least, however soon after the last audit it starts
    "CDC_FILL_PAGE_ROWS": "50",
    "CDC_FILL_ROWS": "120",
    "WATERMARK_OVERLAP_SECONDS": "0",
}
VERSION = {"qty": "QTY__V2"}


def _target(env, sql: str) -> list[tuple]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()


def _validate(table: str) -> dict:
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    [report] = validate.validate_tables(Services.from_settings(load_settings()), [table])
    return report


def test_a_type_change_gets_a_column_version_filled_over_several_incremental_runs(env):
    env.sql(
        """CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT,
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO items (id, name, qty, updated_at) SELECT seq, CONCAT('item ', seq), seq, "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_300",
    )
    stack = env.start_stack(STACK_ENV)
    assert stack.run({"tables": "items", "mode": "auto"}, workers=1).ok  # first run: a full copy
    env.sql(
        "UPDATE items SET qty = 1000 WHERE id = 1",  # before the ALTER
        "ALTER TABLE items MODIFY qty DECIMAL(12,2)",
        "UPDATE items SET qty = 2.5 WHERE id = 2",
        "UPDATE items SET qty = 250.25 WHERE id = 250",
        "INSERT INTO items (id, name, qty) VALUES (301, 'new', 7.25)",
    )
    second = stack.run({"tables": "items", "mode": "incremental"}, workers=1)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "incremental", t  # not failed, not copied in full
    assert int(t["source_rows"]) == 4, t  # the rows whose watermark moved, no more
    changes = t["schema_changes"]
    assert [(c["change"], c["column"], c["run"]) for c in changes] == [
        ("column version added", "QTY__V2", second.run_id)
    ], changes
    assert "audit_differences" not in t and "filling" in t["column_version"], t  # no audit while it fills
    rows = _target(env, 'SELECT "ID", "QTY", "QTY__V2" FROM "ITEMS" WHERE "ID" IN (1, 2, 3, 121, 250) ORDER BY "ID"')
    # copied rows and the first pages (ids 1..120) hold the new column, the rest not yet; the old one frozen
    assert [(r[0], r[2]) for r in rows] == [(1, 1000), (2, 2.5), (3, 3), (121, None), (250, 250.25)], rows
    assert [r[1] for r in rows] == [1, 2, 3, 121, 250], rows
    report = _validate("items")
    assert report["result"] == "ok" and "qty" in report["not_compared"] and report["filling"], report
    # changes after the ALTER, on rows filled and not filled yet: their images write the version
    env.sql("UPDATE items SET qty = 5.5 WHERE id = 5", "UPDATE items SET qty = 200.75 WHERE id = 200")
    third = stack.run({"tables": "items", "mode": "auto"}, workers=1)
    t = third.run["table_states"]["items"]
    assert third.ok and t["mode"] == "incremental" and int(t["source_rows"]) <= 3, t  # auto: no full copy
    assert "filling" in t["column_version"] and not t.get("schema_changes"), t  # recorded once
    fourth = stack.run({"tables": "items", "mode": "incremental"}, workers=1)
    t = fourth.run["table_states"]["items"]
    assert fourth.ok and t["column_version"].endswith("filled"), t
    assert assert_same(env, "items", VERSION) == 301
    # filled: compared as any column, by the audit and by validate
    env.sql("UPDATE items SET qty = 9.99 WHERE id = 9")
    fifth = stack.run({"tables": "items", "mode": "incremental"}, workers=1)
    t = fifth.run["table_states"]["items"]
    assert fifth.ok and "column_version" not in t and t.get("audit_rows"), t
    assert assert_same(env, "items", VERSION) == 301
    report = _validate("items")
    assert report["result"] == "ok" and "filling" not in report and not report.get("not_compared"), report
