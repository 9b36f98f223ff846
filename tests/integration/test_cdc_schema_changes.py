"""Schema changes during a cdc stream that do not stop the table: a dropped column, a TRUNCATE."""

from __future__ import annotations

import json

from compare import assert_same

# every run audits the whole table against the target; the handlers write their metrics (EMF) to the log
# every run audits (a slice at least): with AUDIT_MIN_ROWS at its default a run less than the 1 s period after
# the last audit took none, and a fast machine left ``audit_differences`` out of the table's state
STACK_ENV = {"AUDIT_PERIOD_SECONDS": "1", "AUDIT_MIN_ROWS": "1", "POWERTOOLS_METRICS_DISABLED": "false"}


def _cdc(stack, tables: str = "items", **extra):
    return stack.run({"tables": tables, "mode": "cdc", **extra}, workers=2, timeout=180)


def _seed(env, rows: int = 30) -> None:
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), legacy VARCHAR(10), qty INT)",
        f"INSERT INTO items SELECT seq, CONCAT('item ', seq), 'old', seq FROM seq_1_to_{rows}",
    )


def _target(env, sql: str) -> list[tuple]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()


def test_a_dropped_column_is_kept_null_for_new_rows_and_the_table_streams_on(env):
    _seed(env)
    stack = env.start_stack(STACK_ENV)
    first = _cdc(stack)
    assert first.ok, first.run["table_states"]
    env.sql(
        "UPDATE items SET qty = 100 WHERE id = 1",  # before the drop, in the same window
        "ALTER TABLE items DROP COLUMN legacy",
        "UPDATE items SET qty = 200 WHERE id = 2",
        "INSERT INTO items (id, name, qty) VALUES (31, 'new', 31)",
    )
    logged = stack.log_path.stat().st_size if stack.log_path.exists() else 0  # the log holds earlier tests' records
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    assert second.ok, t
    assert t["mode"] == "cdc", t  # streamed on: no new initial copy
    assert t["audit_differences"] == 0, t  # the kept column is not a difference
    changes = t["schema_changes"]
    assert [(c["change"], c["column"]) for c in changes] == [("column dropped", "LEGACY")], changes
    assert changes[0]["run"] == second.run_id and changes[0]["at"]
    assert any("'LEGACY'" in n and "kept" in n for n in t["notes"]), t["notes"]
    assert assert_same(env, "items") == 31
    # the metric, in the scheduler's EMF record, and `replicate status` (the health report)
    with stack.log_path.open() as log:
        log.seek(logged)
        emf = [json.loads(x) for x in log.read().splitlines() if x.startswith("{") and '"_aws"' in x]
    counted = [r["SchemaChanges"] for r in emf if "SchemaChanges" in r]
    # counted once as 1 (the catalog below holds the one record). The local stack runs every handler in one
    # process, where Powertools' metric set is shared: a worker's flush racing the scheduler's can write the
    # same metric into two EMF records, which one invocation per Lambda container cannot
    assert counted and all(x == 1 for v in counted for x in (v if isinstance(v, list) else [v])), counted
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["items"]
    assert [(c["column"], c["run"]) for c in status["schema_changes"]] == [("LEGACY", second.run_id)], status
    rows = _target(env, 'SELECT "ID", "LEGACY", "QTY" FROM "ITEMS" WHERE "ID" IN (1, 2, 3, 31) ORDER BY "ID"')
    assert rows == [(1, "old", 100), (2, "old", 200), (3, "old", 3), (31, None, 31)]
    # the next runs go on streaming: the whole-target check and the audit see no drift
    env.sql("INSERT INTO items (id, name, qty) VALUES (32, 'newer', 32)", "DELETE FROM items WHERE id = 5")
    third = _cdc(stack)
    t = third.run["table_states"]["items"]
    assert third.ok and t["mode"] == "cdc" and t["audit_differences"] == 0, t
    assert "schema_changes" not in t or not t["schema_changes"], t  # recorded once, by the run that saw it
    assert assert_same(env, "items") == 31
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["result"] == "ok", report


def test_truncate_empties_the_target_at_its_position_and_the_table_streams_on(env):
    _seed(env, 20)
    stack = env.start_stack(STACK_ENV)
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET qty = 500 WHERE id = 1",  # before the TRUNCATE, in the same window: emptied with it
        "DELETE FROM items WHERE id = 3",
        "TRUNCATE TABLE items",
        # after it: a key the table held before, and new ones
        "INSERT INTO items (id, name, legacy, qty) VALUES (2, 'again', 'n', 2), (40, 'forty', 'n', 40), "
        "(41, 'forty-one', 'n', 41)",
    )
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "cdc", t  # no re-copy
    assert t["truncated_at"] and t["audit_differences"] == 0, t
    assert [c["change"] for c in t["schema_changes"]] == ["truncated"], t
    assert assert_same(env, "items") == 3
    assert _target(env, 'SELECT "ID", "NAME" FROM "ITEMS" ORDER BY "ID"') == [
        (2, "again"),
        (40, "forty"),
        (41, "forty-one"),
    ]
    # TRUNCATE without TABLE and with the database named, then changes: the next window follows it too
    env.sql(f"TRUNCATE `{env.database}`.items", "INSERT INTO items (id, name, qty) VALUES (7, 'seven', 7)")
    third = _cdc(stack)
    assert third.ok and third.run["table_states"]["items"]["truncated_at"], third.run["table_states"]
    assert assert_same(env, "items") == 1
    fourth = _cdc(stack)  # nothing new: the table streams on, the whole-target check sees no drift
    t = fourth.run["table_states"]["items"]
    assert fourth.ok and t["mode"] == "cdc" and "truncated_at" not in t, t
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["items"]
    assert [c["change"] for c in status["schema_changes"]] == ["truncated", "truncated"], status


def test_truncate_with_mark_deletes_marks_the_rows_before_it(env):
    _seed(env, 10)
    stack = env.start_stack({**STACK_ENV, "RECONCILE_ACTION": "mark"})
    assert _cdc(stack).ok
    env.sql("TRUNCATE TABLE items", "INSERT INTO items (id, name, qty) VALUES (4, 'back', 4), (11, 'eleven', 11)")
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    # the rolling audit runs when it is due (AUDIT_PERIOD_SECONDS, from the catalog's last audit): when this
    # window audited, it found nothing to put right after the TRUNCATE
    assert second.ok and t["truncated_at"] and t.get("audit_differences", 0) == 0, t
    rows = _target(env, 'SELECT "ID", "_ASR_DELETED_AT" IS NULL FROM "ITEMS" ORDER BY "ID"')
    assert [r[0] for r in rows if r[1]] == [4, 11]  # alive: the rows written after the TRUNCATE
    assert [r[0] for r in rows if not r[1]] == [1, 2, 3, 5, 6, 7, 8, 9, 10]  # kept, marked deleted


def test_lossless_widening_streams_on_and_a_key_column_type_change_stops_the_one_table(env):
    _seed(env, 10)
    env.sql("CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO other VALUES (1, 'a')")
    stack = env.start_stack(STACK_ENV)
    assert _cdc(stack, "items,other").ok
    env.sql(
        "UPDATE items SET name = 'before' WHERE id = 1",
        "ALTER TABLE items MODIFY qty BIGINT, MODIFY name VARCHAR(80)",
        "UPDATE items SET qty = 9000000000, name = REPEAT('w', 80) WHERE id = 2",
    )
    widened = _cdc(stack, "items,other")
    t = widened.run["table_states"]["items"]
    assert widened.ok and t["mode"] == "cdc", t
    assert assert_same(env, "items") == 10
    # a drop, then a column added a run later: not mistaken for a rename (the stored schema moved on)
    env.sql("ALTER TABLE items DROP COLUMN legacy", "INSERT INTO items (id, name, qty) VALUES (11, 'x', 1)")
    assert _cdc(stack, "items,other").ok
    env.sql("ALTER TABLE items ADD COLUMN note VARCHAR(10) NULL", "UPDATE items SET note = 'n' WHERE id = 3")
    added = _cdc(stack, "items,other")
    assert added.ok and added.run["table_states"]["items"]["mode"] == "cdc", added.run["table_states"]
    assert assert_same(env, "items") == 11
    # a narrowing of a column: a new column version (tests/integration/test_cdc_column_versions.py)
    env.sql("UPDATE items SET qty = 2 WHERE id = 2", "ALTER TABLE items MODIFY qty SMALLINT")
    versioned = _cdc(stack, "items,other")
    t = versioned.run["table_states"]["items"]
    assert versioned.ok and t["mode"] == "cdc", t
    assert [c["change"] for c in t["schema_changes"]] == ["column version added"], t
    assert t["column_version"].endswith("filled"), t  # 11 rows: one page
    assert assert_same(env, "items", {"qty": "QTY__V2"}) == 11
    # a key column's type change: the rows MySQL rewrote are not in the binlog and no version can hold a
    # key; the table stops, the other goes on
    env.sql(
        "UPDATE items SET qty = 2 WHERE id = 2",
        "ALTER TABLE items MODIFY id SMALLINT",
        "UPDATE other SET v = 'b' WHERE id = 1",
    )
    stopped = _cdc(stack, "items,other")
    states = stopped.run["table_states"]
    reason = states["items"]["reason"]
    assert states["items"]["status"] == "failed" and "\n" not in reason, states["items"]
    assert "column 'id' changed type from int(11) to smallint(6)" in reason and "--resnapshot" in reason, reason
    assert states["other"]["status"] == "published"
    assert_same(env, "other")
    fixed = _cdc(stack, "items", resnapshot=True)
    assert fixed.ok, fixed.run["table_states"]
    env.sql("UPDATE items SET qty = 5 WHERE id = 5")
    assert _cdc(stack, "items").ok
    assert assert_same(env, "items") == 11  # the new copy: QTY of the new type, no versions


def test_on_column_drop_drop_removes_the_column_from_the_target_and_streams_on(env):
    _seed(env, 10)
    stack = env.start_stack(STACK_ENV)
    options = {"table_options": {"items": {"on_column_drop": "drop", "exclude": ["name"]}}}
    assert _cdc(stack, **options).ok
    env.sql("ALTER TABLE items DROP COLUMN legacy", "UPDATE items SET qty = 70 WHERE id = 7")
    second = _cdc(stack, **options)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "cdc" and t["audit_differences"] == 0, t
    assert [(c["change"], c["column"], c["run"]) for c in t["schema_changes"]] == [
        ("column dropped", "LEGACY", second.run_id)
    ], t
    assert "dropped from the target too" in t["schema_changes"][0]["detail"]
    # gone from Snowflake; the excluded column (MySQL still has it) was never taken for a drop
    names = [
        r[0]
        for r in _target(
            env,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = CURRENT_SCHEMA() AND table_name = 'ITEMS'",
        )
    ]
    assert "LEGACY" not in names and "NAME" not in names and "QTY" in names, names
    assert _target(env, 'SELECT "QTY" FROM "ITEMS" WHERE "ID" = 7') == [(70,)]
    env.sql("INSERT INTO items (id, name, qty) VALUES (11, 'x', 11)")
    third = _cdc(stack, **options)
    t = third.run["table_states"]["items"]
    assert third.ok and t["mode"] == "cdc" and not t.get("schema_changes"), t
    assert _target(env, 'SELECT COUNT(*) FROM "ITEMS"') == [(11,)]


def test_not_null_added_streams_on_and_a_rewritten_null_stops_the_table(env):
    _seed(env, 10)
    env.sql("UPDATE items SET qty = NULL WHERE id = 3", "UPDATE items SET name = NULL WHERE id = 6")
    # no rolling audit: it would re-read the rows the ALTER rewrote (its slice is applied before the check)
    stack = env.start_stack({**STACK_ENV, "AUDIT_PERIOD_SECONDS": "0"})
    assert _cdc(stack).ok
    # strict mode (the server's default): the NULLs are set first, or the ALTER fails
    env.sql(
        "UPDATE items SET qty = 0 WHERE qty IS NULL",
        "ALTER TABLE items MODIFY qty INT NOT NULL",
        "UPDATE items SET qty = 77 WHERE id = 4",
    )
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "cdc", t
    assert [(c["change"], c["column"], c["run"]) for c in t["schema_changes"]] == [
        ("not null added", "QTY", second.run_id)
    ], t
    assert any("'QTY' is NOT NULL in MySQL now" in n for n in t["notes"]), t["notes"]
    assert assert_same(env, "items") == 10
    third = _cdc(stack)
    assert third.ok and not third.run["table_states"]["items"].get("schema_changes"), third.run["table_states"]
    # a session without strict mode: the ALTER rewrites a NULL ('' here) that no binlog event carries
    env.sql(
        "SET SESSION sql_mode = ''",
        "UPDATE items SET name = NULL WHERE id = 7",
        "ALTER TABLE items MODIFY name VARCHAR(40) NOT NULL",
    )
    stopped = _cdc(stack)
    t = stopped.run["table_states"]["items"]
    assert t["status"] == "failed" and "column 'NAME' is NOT NULL in MySQL now, but 2 live rows" in t["reason"], t
    assert "--resnapshot" in t["reason"] and "\n" not in t["reason"]
    again = _cdc(stack)  # stopped: the next run says so at once, nothing wrong is written
    assert again.run["table_states"]["items"]["status"] == "failed", again.run["table_states"]
    fixed = _cdc(stack, resnapshot=True)
    assert fixed.ok, fixed.run["table_states"]
    assert assert_same(env, "items") == 10


def test_a_rename_the_binlog_makes_certain_renames_the_target_column_and_streams_on(env):
    _seed(env, 10)
    stack = env.start_stack(STACK_ENV)
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET qty = 100 WHERE id = 1",  # before the rename: its event names the old column
        "ALTER TABLE items RENAME COLUMN qty TO quantity",
        "UPDATE items SET quantity = 200 WHERE id = 2",
        "INSERT INTO items (id, name, legacy, quantity) VALUES (11, 'new', 'n', 11)",
    )
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    assert second.ok and t["mode"] == "cdc" and t["audit_differences"] == 0, t
    assert [(c["change"], c["column"], c["run"]) for c in t["schema_changes"]] == [
        ("column renamed", "QUANTITY", second.run_id)
    ], t
    assert "from 'qty' to 'quantity'" in t["schema_changes"][0]["detail"]
    names = [
        r[0]
        for r in _target(
            env,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = CURRENT_SCHEMA() AND table_name = 'ITEMS'",
        )
    ]
    assert "QUANTITY" in names and "QTY" not in names, names
    assert _target(env, 'SELECT "ID", "QUANTITY" FROM "ITEMS" WHERE "ID" IN (1, 2, 3, 11) ORDER BY "ID"') == [
        (1, 100),
        (2, 200),
        (3, 3),  # no event touched it: its value kept by the rename
        (11, 11),
    ]
    assert assert_same(env, "items") == 11
    # CHANGE with the same definition is a rename too
    env.sql("ALTER TABLE items CHANGE name label VARCHAR(40)", "UPDATE items SET label = 'l' WHERE id = 5")
    third = _cdc(stack)
    t = third.run["table_states"]["items"]
    assert third.ok and [c["change"] for c in t["schema_changes"]] == ["column renamed"], t
    assert assert_same(env, "items") == 11
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["items"]
    assert [c["column"] for c in status["schema_changes"]] == ["QUANTITY", "LABEL"], status
    # a drop and an add at the same place with the same type, but no rename statement: not taken for one.
    # The window read for a rename is not applied; the next run, from the same position, follows a drop
    # (LABEL kept) and an add (TITLE added and filled from MySQL), with no re-snapshot
    env.sql(
        "ALTER TABLE items DROP COLUMN label, ADD COLUMN title VARCHAR(40) AFTER id",
        "UPDATE items SET title = 'tt' WHERE id = 2",
    )
    refuted = _cdc(stack)
    t = refuted.run["table_states"]["items"]
    assert t["status"] == "declined" and "holds no ALTER TABLE ... RENAME COLUMN" in t["reason"], t
    assert "the next run follows it so" in t["reason"], t
    followed = _cdc(stack)
    assert followed.ok, followed.run["table_states"]
    assert followed.run["table_states"]["items"]["mode"] == "cdc"  # streamed on: no new initial copy
    assert assert_same(env, "items") == 11
    assert _target(env, 'SELECT "ID", "TITLE" FROM "ITEMS" WHERE "ID" IN (1, 2) ORDER BY "ID"') == [
        (1, None),
        (2, "tt"),
    ]
