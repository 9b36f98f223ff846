"""Drift made behind the pipeline's back, as an operator or another tool would make it in Snowflake:
a target dropped, emptied, rows deleted or values edited. A run never reports OK over it: the
whole-target check (``pipeline/target_check.py``) re-copies a table whose row count left the ledger's,
and the rolling audit (``pipeline/audit.py``) finds and heals what a count cannot see. Each test
ends with the target equal to the source value by value, or with the loud failure."""

from __future__ import annotations

import json

import pytest

from audit_clock import await_audit_period
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.store import StateStore
from aurora_replication_dev import cli
from compare import assert_same

ROWS = 2_000


def _seed(env, table: str = "acct", rows: int = ROWS) -> None:
    env.sql(
        f"""CREATE TABLE {table} (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
           KEY by_updated (updated_at))""",
        f"INSERT INTO {table} (id, balance, name, updated_at) SELECT seq, seq * 1.5, CONCAT('n', seq), "
        f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{rows}",
    )


def _snowflake(env, *statements: str) -> None:
    sf = env.snowflake()
    try:
        cur = sf.cursor()
        for s in statements:
            cur.execute(s)
    finally:
        sf.close()


def _target_rows(env, table: str = "ACCT") -> int:
    sf = env.snowflake()
    try:
        return int(sf.cursor().execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
    finally:
        sf.close()


def _run(stack, mode: str = "auto", tables: str = "acct", **extra):
    return stack.run({"tables": tables, "mode": mode, "chunk_rows": 500, **extra}, workers=2, timeout=180)


def _catalog(env, stack, table: str = "acct") -> dict:
    return StateStore(stack.table_name).catalog_entries([env.key(table)]).get(table, {})


def _period_passed(env, stack, seconds: float = 1.0, table: str = "acct") -> None:
    await_audit_period(env, stack, table, seconds)


# no slice of the rolling audit in these runs (a day's period, a large minimum): the count alone decides
NO_AUDIT = {"AUDIT_PERIOD_SECONDS": "86400", "AUDIT_MIN_ROWS": "100000000"}


def test_a_dropped_target_is_copied_again_not_merged_into(env, capsys):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    assert int(_catalog(env, stack)["table_rows"]) == ROWS
    _snowflake(env, 'DROP TABLE "ACCT"')
    env.sql("UPDATE acct SET name = 'changed' WHERE id <= 10")

    healed = _run(stack)
    t = healed.run["table_states"]["acct"]
    assert healed.ok, t
    assert t["mode"] == "full", t  # auto, which would have merged the window into a new empty table
    assert "is missing where the ledger expects 2,000" in t["drift"], t
    assert any("is missing" in n for n in t["notes"]), t["notes"]
    assert assert_same(env, "acct") == ROWS
    cli.print_summary(healed)  # what the operator reads: the drift, said beside the OK of the new copy
    printed = capsys.readouterr().out
    assert "drift: acct: target table 'ACCT' is missing where the ledger expects 2,000" in printed, printed
    assert "copied again in full mode" in printed and ": OK in" in printed

    after = _run(stack)  # the target agrees with the ledger again: back to incremental
    assert after.ok and after.run["table_states"]["acct"]["mode"] == "incremental"
    assert "drift" not in after.run["table_states"]["acct"]
    assert assert_same(env, "acct") == ROWS


def test_an_emptied_or_short_target_is_copied_again(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    _snowflake(env, 'DELETE FROM "ACCT"')  # TRUNCATE, as far as the rows go
    emptied = _run(stack)
    t = emptied.run["table_states"]["acct"]
    assert emptied.ok and t["mode"] == "full" and "has 0 rows where the ledger expects 2,000" in t["drift"], t
    assert assert_same(env, "acct") == ROWS

    _snowflake(env, 'DELETE FROM "ACCT" WHERE "ID" % 100 = 7')  # 1 % of the rows
    short = _run(stack)
    t = short.run["table_states"]["acct"]
    assert short.ok and t["mode"] == "full" and "has 1,980 rows" in t["drift"], t
    assert assert_same(env, "acct") == ROWS


def test_explicit_incremental_over_a_drifted_target_fails_loudly(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    _snowflake(env, 'DELETE FROM "ACCT" WHERE "ID" <= 5')
    env.sql("UPDATE acct SET name = 'moved' WHERE id = 100")
    with pytest.raises(BadInputError) as refused:  # the request's only table: nothing is written
        _run(stack, "incremental")
    assert "has 1,995 rows where the ledger expects 2,000" in str(refused.value), refused.value
    assert "mode 'full'" in str(refused.value)
    assert _target_rows(env) == ROWS - 5  # nothing was merged into it
    assert _run(stack, "full").ok
    assert assert_same(env, "acct") == ROWS


def test_edited_values_are_found_and_healed_by_the_audit(env):
    _seed(env)
    # every run audits the whole table (the period has always passed): the slice is all of it
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1", "AUDIT_MIN_ROWS": "1"})
    assert _run(stack, "full").ok
    verified = float(_catalog(env, stack)["verified_at"])
    _period_passed(env, stack)
    # values edited in place and as many rows deleted as inserted: the count cannot see either
    _snowflake(
        env,
        """UPDATE "ACCT" SET "BALANCE" = -1 WHERE "ID" IN (3, 1500)""",
        """UPDATE "ACCT" SET "NAME" = 'edited' WHERE "ID" = 777""",
        """DELETE FROM "ACCT" WHERE "ID" = 42""",
        """INSERT INTO "ACCT" SELECT 5000, 1, 'stray', '2020-01-01'""",
    )
    env.sql("UPDATE acct SET name = 'window' WHERE id = 9")  # a change the window carries: not drift
    audited = _run(stack)
    t = audited.run["table_states"]["acct"]
    assert audited.ok, t
    assert t["mode"] == "incremental", t
    assert int(t["audit_differences"]) == 4, t  # 3, 1500, 777 edited; 42 missing
    assert int(t["audit_rows"]) == ROWS, t
    assert "the merge put them right" in t["audit"], t
    # a key MySQL does not have is what a row deleted in MySQL looks like to incremental: reconcile's work
    assert _target_rows(env) == ROWS + 1
    assert _run(stack, "reconcile").ok
    assert assert_same(env, "acct") == ROWS
    catalog = _catalog(env, stack)
    assert float(catalog["verified_at"]) > verified  # a whole cycle in one slice
    assert "audit_cursor" not in catalog
    health = stack.invoke("HealthFunction", {})["checks"]["replication"]
    assert health["tables"]["acct"]["verified_age_seconds"] < 120, health["tables"]["acct"]
    assert health["tables"]["acct"]["table_rows"] == ROWS and "unverified" in health, health

    _period_passed(env, stack)
    clean = _run(stack)  # nothing differs now
    t = clean.run["table_states"]["acct"]
    assert clean.ok and int(t["audit_differences"]) == 0, t


def test_the_audit_walks_the_table_in_slices_and_completes_a_cycle(env):
    _seed(env)
    # the period passes between runs, so each run's slice is the whole table, capped at 700 rows
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1", "AUDIT_MAX_ROWS": "700"})
    assert _run(stack, "full").ok
    catalog = _catalog(env, stack)
    verified = float(catalog["verified_at"])
    _snowflake(env, """UPDATE "ACCT" SET "NAME" = 'edited' WHERE "ID" IN (10, 1000, 1500)""")
    found = 0
    cursors = []
    for _ in range(3):
        _period_passed(env, stack)
        outcome = _run(stack)
        t = outcome.run["table_states"]["acct"]
        assert outcome.ok and t["mode"] == "incremental", t
        found += int(t.get("audit_differences", 0))
        cursors.append(_catalog(env, stack).get("audit_cursor"))
    assert found == 3
    assert cursors[0] == json.dumps(["700"]) and cursors[1] == json.dumps(["1400"]) and cursors[2] is None, cursors
    assert float(_catalog(env, stack)["verified_at"]) > verified
    assert assert_same(env, "acct") == ROWS


def test_a_window_of_many_chunks_is_cut_around_the_slice(env):
    _seed(env)
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1", "AUDIT_MAX_ROWS": "600"})
    assert _run(stack, "full").ok
    _period_passed(env, stack)
    _snowflake(env, """UPDATE "ACCT" SET "NAME" = 'edited' WHERE "ID" IN (200, 500)""")
    env.sql("UPDATE acct SET balance = balance + 1 WHERE id > 800 AND id <= 2000")  # a window of several chunks
    outcome = _run(stack)
    t = outcome.run["table_states"]["acct"]
    assert outcome.ok and t["mode"] == "incremental", t
    assert not any("one chunk for the incremental window" in n for n in t["notes"]), t["notes"]  # several
    assert int(t["chunk_count"]) >= 3 and int(t["audit_from"]) >= 1, t  # the window's chunks, then the slice's
    assert int(t["audit_rows"]) == 600 and int(t["audit_differences"]) == 2, t
    assert _catalog(env, stack)["audit_cursor"] == json.dumps(["600"])
    assert assert_same(env, "acct") == ROWS


def test_cdc_target_dropped_takes_a_new_initial_copy(env):
    _seed(env, "items", 300)
    stack = env.start_stack(NO_AUDIT)
    cdc = {"tables": "items", "mode": "cdc"}
    assert stack.run(cdc, workers=2, timeout=180).ok
    env.sql("UPDATE items SET name = 'streamed' WHERE id <= 3")
    assert stack.run(cdc, workers=2, timeout=180).ok
    _snowflake(env, 'DROP TABLE "ITEMS"')
    env.sql("DELETE FROM items WHERE id = 300")
    again = stack.run(cdc, workers=2, timeout=180)
    t = again.run["table_states"]["items"]
    assert again.ok, t
    assert any("a new one: target table 'ITEMS' is missing" in n for n in t["notes"]), t["notes"]
    assert assert_same(env, "items") == 299
    env.sql("UPDATE items SET name = 'after' WHERE id = 5")
    assert stack.run(cdc, workers=2, timeout=180).ok  # streaming again from the new position
    assert assert_same(env, "items") == 299


def test_cdc_audit_finds_and_heals_edited_values(env):
    _seed(env, "items", 300)
    # the period passes between runs: each window audits the whole table (one slice)
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1", "AUDIT_MIN_ROWS": "1"})
    cdc = {"tables": "items", "mode": "cdc"}
    assert stack.run(cdc, workers=2, timeout=180).ok  # the initial copy
    _period_passed(env, stack, table="items")
    _snowflake(env, """UPDATE "ITEMS" SET "NAME" = 'edited', "BALANCE" = -1 WHERE "ID" IN (5, 250)""")
    env.sql("UPDATE items SET name = 'streamed' WHERE id IN (7, 250)")  # changes the window carries
    audited = stack.run(cdc, workers=2, timeout=180)
    t = audited.run["table_states"]["items"]
    assert audited.ok, t
    assert t["mode"] == "cdc" and int(t["audit_rows"]) == 300, t
    # 5 was edited behind the pipeline's back; 250 too, but the window's change to it came first
    assert int(t["audit_differences"]) == 1, t
    assert "the merge put them right" in t["audit"], t
    assert assert_same(env, "items") == 300
    catalog = _catalog(env, stack, "items")
    assert "audit_cursor" not in catalog and catalog.get("verified_run") == audited.run_id, catalog

    env.sql("UPDATE items SET name = 'later' WHERE id = 9")
    _period_passed(env, stack, table="items")
    again = stack.run(cdc, workers=2, timeout=180)
    t = again.run["table_states"]["items"]
    assert again.ok and int(t["audit_differences"]) == 0, t
    assert assert_same(env, "items") == 300
