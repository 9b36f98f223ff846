"""Columns added, widened, dropped or changed in MySQL between incremental runs."""

from __future__ import annotations

from compare import assert_same


def _columns(env, table: str) -> dict[str, tuple[str, object, object]]:
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute(
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s",
        (table,),
    )
    rows = {r[0]: tuple(r[1:]) for r in cur.fetchall()}
    conn.close()
    return rows


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, n INT NOT NULL, label VARCHAR(20), legacy VARCHAR(10),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO acct (id, n, label, legacy, updated_at) SELECT seq, seq, CONCAT('l', seq), 'old', "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_30",
        """CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(10),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO other (id, v, updated_at) VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-01')",
    )


def test_added_widened_and_dropped_columns_follow_into_snowflake(env):
    _seed(env)
    stack = env.start_stack()
    assert stack.run({"tables": "acct", "mode": "full"}, workers=1).ok
    env.sql(
        "ALTER TABLE acct ADD COLUMN score DECIMAL(10,2) NULL",
        # the rows the run does not copy hold the default in MySQL only: filled from MySQL by key
        "ALTER TABLE acct ADD COLUMN region CHAR(2) NOT NULL DEFAULT 'EU'",
        "ALTER TABLE acct MODIFY n BIGINT NOT NULL",
        "ALTER TABLE acct DROP COLUMN legacy",
        "UPDATE acct SET score = 9.5, n = 9000000000 WHERE id <= 3",
        "INSERT INTO acct (id, n, label, score) VALUES (31, 5, 'new', 1.25)",
    )
    outcome = stack.run({"tables": "acct", "mode": "incremental"}, workers=1)
    state = outcome.run["table_states"]["acct"]
    assert outcome.ok, state
    notes = " ".join(state["notes"])
    assert "'score' added" in notes and "'n' widened" in notes and "'LEGACY'" in notes
    # the drop is recorded once (what, when, which run), in the run's table and the table's catalog
    assert sorted((c["change"], c["column"], c["run"]) for c in state["schema_changes"]) == [
        ("column added, filled", "REGION", outcome.run_id),
        ("column added, filled", "SCORE", outcome.run_id),
        ("column dropped", "LEGACY", outcome.run_id),
        ("not null added", "REGION", outcome.run_id),  # checked after the MERGE, as for any NOT NULL column
    ]
    filled = stack.run({"tables": "acct", "mode": "incremental"}, workers=1)  # one column per run: the other
    assert filled.ok and filled.run["table_states"]["acct"]["column_version"].endswith("filled"), filled.run
    cols = _columns(env, "ACCT")
    assert cols["SCORE"] == ("NUMBER", 10, 2)
    assert cols["N"][:2] == ("NUMBER", 19)
    assert "LEGACY" in cols  # kept
    assert_same(env, "acct")
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute('SELECT "ID", "SCORE", "LEGACY" FROM "ACCT" WHERE "ID" IN (10, 31) ORDER BY "ID"')
    rows = cur.fetchall()
    assert [(r[0], r[2]) for r in rows] == [(10, "old"), (31, None)]  # the dropped column: kept, NULL for new rows
    assert rows[0][1] is None and str(rows[1][1]) == "1.25"  # the added column: NULL for old rows
    cur.execute('SELECT COUNT(*) FROM "ACCT" WHERE "LEGACY" IS NULL')
    assert cur.fetchone()[0] == 1
    conn.close()


def test_unsafe_change_stops_that_table_and_the_others_go_on(env):
    _seed(env)
    stack = env.start_stack()
    assert stack.run({"tables": "acct,other", "mode": "full"}, workers=1).ok
    env.sql(
        "ALTER TABLE acct MODIFY id VARCHAR(10)",  # a key column: no column version (a non-key one gets one)
        "UPDATE other SET v = 'changed' WHERE id = 1",
    )
    outcome = stack.run({"tables": "acct,other", "mode": "incremental"}, workers=1)
    states = outcome.run["table_states"]
    assert states["acct"]["status"] == "failed"
    assert "column 'id' is NUMBER in Snowflake" in states["acct"]["reason"], states["acct"]
    assert states["other"]["status"] == "published"
    assert_same(env, "other")
    # auto mode copies such a table in full instead
    auto = stack.run({"tables": "acct", "mode": "auto"}, workers=1)
    assert auto.ok and auto.run["table_states"]["acct"]["mode"] == "full"
    assert_same(env, "acct")


def test_a_full_copy_records_a_dropped_column_once_and_the_report_shows_it(env):
    _seed(env)
    stack = env.start_stack()
    assert stack.run({"tables": "acct", "mode": "full"}, workers=1).ok
    env.sql("ALTER TABLE acct DROP COLUMN legacy", "ALTER TABLE acct ADD COLUMN score INT NULL")
    outcome = stack.run({"tables": "acct", "mode": "full"}, workers=1)
    state = outcome.run["table_states"]["acct"]
    assert outcome.ok, state
    # recorded as cdc and incremental runs record it: what, which column, when, which run
    changes = state["schema_changes"]
    assert [(c["change"], c["column"], c["run"]) for c in changes] == [("column dropped", "LEGACY", outcome.run_id)]
    assert changes[0]["at"] and "every row" in changes[0]["detail"], changes
    assert any("'score' added" in n for n in state["schema_notes"]), state  # what evolution did, as text
    assert "LEGACY" in _columns(env, "ACCT")  # kept, NULL in every row after the copy
    assert_same(env, "acct")
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["acct"]
    assert [(c["change"], c["column"], c["run"]) for c in status["schema_changes"]] == [
        ("column dropped", "LEGACY", outcome.run_id)
    ]
    # the next full copy keeps the column and does not record the drop again
    again = stack.run({"tables": "acct", "mode": "full"}, workers=1)
    assert again.ok and not again.run["table_states"]["acct"].get("schema_changes"), again.run["table_states"]
    from aurora_replication.ledger.store import StateStore
    from aurora_replication.ops import report

    html = report.build(StateStore(stack.table_name), outcome.run_id)  # the run report's notes of the table
    assert "schema change: column dropped &#x27;LEGACY&#x27;" in html, html[:2000]


def test_on_column_drop_drop_under_incremental_and_full_runs(env):
    _seed(env)
    # the template's ColumnDropTables (COLUMN_DROP_TABLES) sets it for the table, as its table_options would
    stack = env.start_stack({"COLUMN_DROP_TABLES": "acct"})
    assert stack.run({"tables": "acct", "mode": "full"}, workers=1).ok
    env.sql("ALTER TABLE acct DROP COLUMN legacy", "UPDATE acct SET n = 100 WHERE id = 4")
    outcome = stack.run({"tables": "acct", "mode": "incremental"}, workers=1)
    state = outcome.run["table_states"]["acct"]
    assert outcome.ok, state
    assert [(c["change"], c["column"], c["run"]) for c in state["schema_changes"]] == [
        ("column dropped", "LEGACY", outcome.run_id)
    ]
    assert "LEGACY" not in _columns(env, "ACCT")
    assert_same(env, "acct")
    # a full copy drops one too, and records it
    env.sql("ALTER TABLE acct DROP COLUMN label")
    full = stack.run({"tables": "acct", "mode": "full"}, workers=1)
    state = full.run["table_states"]["acct"]
    assert full.ok and [(c["column"], c["run"]) for c in state["schema_changes"]] == [("LABEL", full.run_id)], state
    assert "LABEL" not in _columns(env, "ACCT")
    assert_same(env, "acct")


def test_a_truncate_under_an_incremental_schedule_is_seen_and_the_table_copied_in_full(env):
    _seed(env)
    stack = env.start_stack()
    assert stack.run({"tables": "acct,other", "mode": "auto"}, workers=1).ok  # first run: full copies
    env.sql("UPDATE acct SET n = 0 WHERE id = 30")
    steady = stack.run({"tables": "acct,other", "mode": "auto"}, workers=1)
    assert steady.ok and steady.run["table_states"]["acct"]["mode"] == "incremental", steady.run["table_states"]
    # TRUNCATE, then fewer rows again from key 1: no watermark shows the 28 rows that went
    env.sql("TRUNCATE TABLE acct", "INSERT INTO acct (id, n, label) VALUES (1, 1, 'again'), (2, 2, 'again')")
    refused = stack.run({"tables": "acct,other", "mode": "incremental"}, workers=1)
    states = refused.run["table_states"]
    assert states["acct"]["status"] == "failed" and "largest key in MySQL fell from 30" in states["acct"]["reason"]
    assert "mode 'full'" in states["acct"]["reason"] and states["other"]["status"] == "published", states
    healed = stack.run({"tables": "acct,other", "mode": "auto"}, workers=1)
    t = healed.run["table_states"]["acct"]
    assert healed.ok and t["mode"] == "full", t
    assert [(c["change"], c["run"]) for c in t["schema_changes"]] == [("rows gone", healed.run_id)], t
    assert "truncated" in t["schema_changes"][0]["detail"] and any("fell from 30" in n for n in t["notes"]), t
    assert assert_same(env, "acct") == 2  # the target emptied of the rows MySQL no longer has
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["acct"]
    assert [c["change"] for c in status["schema_changes"]] == ["rows gone"], status
    # the next runs are incremental again, and say nothing more
    env.sql("INSERT INTO acct (id, n, label) VALUES (3, 3, 'three')")
    after = stack.run({"tables": "acct", "mode": "auto"}, workers=1)
    t = after.run["table_states"]["acct"]
    assert after.ok and t["mode"] == "incremental" and not t.get("schema_changes"), t
    assert assert_same(env, "acct") == 3


def test_a_rename_under_an_incremental_schedule_renames_the_target_and_copies_in_full(env):
    _seed(env)
    stack = env.start_stack()
    assert stack.run({"tables": "acct,other", "mode": "auto"}, workers=1).ok
    env.sql("ALTER TABLE acct RENAME COLUMN label TO title", "UPDATE acct SET title = 'changed' WHERE id = 2")
    refused = stack.run({"tables": "acct,other", "mode": "incremental"}, workers=1)
    t = refused.run["table_states"]["acct"]
    assert t["status"] == "failed" and "'LABEL' went and 'TITLE' came in its place" in t["reason"], t
    healed = stack.run({"tables": "acct", "mode": "auto"}, workers=1)
    t = healed.run["table_states"]["acct"]
    assert healed.ok and t["mode"] == "full", t
    assert [(c["change"], c["column"], c["run"]) for c in t["schema_changes"]] == [
        ("column renamed", "TITLE", healed.run_id)
    ], t
    cols = _columns(env, "ACCT")
    assert "TITLE" in cols and "LABEL" not in cols, cols
    assert_same(env, "acct")
    env.sql("UPDATE acct SET title = 'again' WHERE id = 3")
    after = stack.run({"tables": "acct", "mode": "auto"}, workers=1)
    t = after.run["table_states"]["acct"]
    assert after.ok and t["mode"] == "incremental" and not t.get("schema_changes"), t
    assert_same(env, "acct")


def test_not_null_added_under_an_incremental_schedule(env):
    _seed(env)
    env.sql(
        "UPDATE acct SET label = NULL, updated_at = updated_at WHERE id IN (5, 6)",
        "UPDATE acct SET legacy = NULL, updated_at = updated_at WHERE id = 7",  # its watermark stays old
    )
    # no rolling audit: it would re-read (and so heal) the rows the ALTER rewrote, before the check
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "0"})
    assert stack.run({"tables": "acct,other", "mode": "auto"}, workers=1).ok
    # strict mode (the server's default): the NULLs are set first (their watermark moves), or the ALTER fails
    env.sql("UPDATE acct SET label = '' WHERE label IS NULL", "ALTER TABLE acct MODIFY label VARCHAR(20) NOT NULL")
    second = stack.run({"tables": "acct,other", "mode": "auto"}, workers=1)
    t = second.run["table_states"]["acct"]
    assert second.ok and t["mode"] == "incremental", t
    assert [(c["change"], c["column"], c["run"]) for c in t["schema_changes"]] == [
        ("not null added", "LABEL", second.run_id)
    ], t
    assert_same(env, "acct")
    # a session without strict mode: the ALTER rewrites row 7's NULL ('' here), leaving its watermark as it was
    env.sql("SET SESSION sql_mode = ''", "ALTER TABLE acct MODIFY legacy VARCHAR(10) NOT NULL")
    failed = stack.run({"tables": "acct,other", "mode": "auto"}, workers=1)
    t = failed.run["table_states"]["acct"]
    assert t["status"] == "failed" and "column 'LEGACY' is NOT NULL in MySQL now, but 1 live rows" in t["reason"], t
    assert "mode 'full'" in t["reason"] and failed.run["table_states"]["other"]["status"] == "published"
    full = stack.run({"tables": "acct", "mode": "full"}, workers=1)
    assert full.ok, full.run["table_states"]
    assert_same(env, "acct")
