"""History mode end to end on the local stack: a cdc table's versions through insert, update, update,
delete and re-insert; the same window's batches delivered again; an incremental table over three runs."""

from __future__ import annotations

import pytest

from audit_clock import await_audit_period

HISTORY = {"items": {"history": True}}


def _cdc(stack):
    return stack.run({"tables": "items", "mode": "cdc", "table_options": HISTORY}, workers=2, timeout=180)


def _versions(env, table: str = "ITEMS") -> list[tuple]:
    cur = env.snowflake().cursor()
    cur.execute(
        f'SELECT "ID", "NAME", "_ASR_OP", "_ASR_IS_CURRENT", "_ASR_VALID_TO" IS NULL FROM "{table}" '
        'ORDER BY "ID", "_ASR_POS"'
    )
    return [tuple(r) for r in cur.fetchall()]


def _current(env, table: str = "ITEMS") -> list[tuple]:
    cur = env.snowflake().cursor()
    cur.execute(f'SELECT "ID", "NAME" FROM "{table}_CURRENT" ORDER BY "ID"')
    return [tuple(r) for r in cur.fetchall()]


def test_cdc_history_keeps_every_version_in_binlog_order(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
    )
    stack = env.start_stack()
    first = _cdc(stack)
    assert first.ok, first.run["table_states"]
    assert _versions(env) == [(1, "one", "I", True, True), (2, "two", "I", True, True)]
    env.sql(
        "INSERT INTO items VALUES (3, 'three')",
        "UPDATE items SET name = 'three+' WHERE id = 3",
        "UPDATE items SET name = 'three++' WHERE id = 3",
        "DELETE FROM items WHERE id = 3",
        "INSERT INTO items VALUES (3, 'back')",
        "UPDATE items SET name = 'two+' WHERE id = 2",
        "DELETE FROM items WHERE id = 1",
    )
    second = _cdc(stack)
    assert second.ok, second.run["table_states"]
    assert second.run["table_states"]["items"]["mode"] == "cdc"
    assert _versions(env) == [
        (1, "one", "I", False, False),
        (1, "one", "D", False, False),
        (2, "two", "I", False, False),
        (2, "two+", "U", True, True),
        (3, "three", "I", False, False),
        (3, "three+", "U", False, False),
        (3, "three++", "U", False, False),
        (3, "three++", "D", False, False),
        (3, "back", "I", True, True),
    ]
    assert _current(env) == [(2, "two+"), (3, "back")]
    # a window with nothing new, then one more change: the whole-target check counts what the table holds
    assert _cdc(stack).ok
    env.sql("UPDATE items SET name = 'back+' WHERE id = 3")
    fourth = _cdc(stack)
    assert fourth.ok, fourth.run["table_states"]
    assert _current(env) == [(2, "two+"), (3, "back+")]
    assert len(_versions(env)) == 10


def test_a_truncate_closes_every_live_version_and_the_table_streams_on(env):
    """TRUNCATE of a history table under cdc: the versions before it stay, each key live then gets a delete
    version at its position, the rows inserted after it are new keys' first versions; the table streams on."""
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    stack = env.start_stack()
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET name = 'one+' WHERE id = 1",
        "DELETE FROM items WHERE id = 3",
        "TRUNCATE TABLE items",
        "INSERT INTO items VALUES (1, 'again'), (4, 'four')",
    )
    second = _cdc(stack)
    assert second.ok, second.run["table_states"]
    t = second.run["table_states"]["items"]
    assert t["truncated_at"] and [c["change"] for c in t["schema_changes"]] == ["truncated"], t
    assert _versions(env) == [
        (1, "one", "I", False, False),
        (1, "one+", "U", False, False),
        (1, "one+", "D", False, False),
        (1, "again", "I", True, True),
        (2, "two", "I", False, False),
        (2, "two", "D", False, False),
        (3, "three", "I", False, False),
        (3, "three", "D", False, False),
        (4, "four", "I", True, True),
    ]
    assert _current(env) == [(1, "again"), (4, "four")]
    env.sql("TRUNCATE items", "INSERT INTO items VALUES (2, 'back')")
    third = _cdc(stack)
    assert third.ok, third.run["table_states"]
    assert _current(env) == [(2, "back")]
    assert [v[2] for v in _versions(env) if v[0] == 4] == ["I", "D"]


def test_cdc_history_batches_delivered_twice_and_out_of_order_add_no_version(env):
    import boto3

    env.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))", "INSERT INTO items VALUES (1, 'one')")
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "1"}, visibility_timeout=5)
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET name = 'a' WHERE id = 1",
        "UPDATE items SET name = 'b' WHERE id = 1",
        "DELETE FROM items WHERE id = 1",
        "INSERT INTO items VALUES (1, 'c')",
    )
    sqs = boto3.client("sqs")
    summary = stack.invoke("SchedulerFunction", {"tables": "items", "mode": "cdc", "table_options": HISTORY})
    bodies = []
    while msgs := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in msgs)
        for m in msgs:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
    assert len(bodies) == 4  # one change a batch
    for body in list(reversed(bodies)) * 2:  # every batch twice, the newest first
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    outcome = stack.drain(summary["run_id"], workers=3, timeout=180)
    assert outcome.ok, outcome.run["table_states"]
    assert _versions(env) == [
        (1, "one", "I", False, False),
        (1, "a", "U", False, False),
        (1, "b", "U", False, False),
        (1, "b", "D", False, False),
        (1, "c", "I", True, True),
    ]


def test_incremental_history_over_three_runs(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), "
        "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
        "KEY (updated_at))",
        "INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')",
    )
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1"})  # every run audits the whole table too
    request = {"tables": "items", "mode": "auto", "table_options": HISTORY}
    first = stack.run(request, workers=2, timeout=180)
    assert first.ok, first.run["table_states"]
    env.sql("UPDATE items SET name = 'two+' WHERE id = 2", "INSERT INTO items (id, name) VALUES (3, 'three')")
    await_audit_period(env, stack, "items")
    second = stack.run(request, workers=2, timeout=180)
    assert second.ok, second.run["table_states"]
    assert second.run["table_states"]["items"]["mode"] == "incremental"
    # the rolling audit's slice (the whole table) against the current versions: nothing differs
    assert second.run["table_states"]["items"].get("audit_differences") == 0, second.run["table_states"]["items"]
    env.sql("UPDATE items SET name = 'two++' WHERE id = 2")
    third = stack.run(request, workers=2, timeout=180)
    assert third.ok, third.run["table_states"]
    # the overlap window re-reads unchanged rows: they add no version
    assert _versions(env) == [
        (1, "one", "I", True, True),
        (2, "two", "I", False, False),
        (2, "two+", "U", False, False),
        (2, "two++", "U", True, True),
        (3, "three", "I", True, True),
    ]
    assert _current(env) == [(1, "one"), (2, "two++"), (3, "three")]


def test_a_broken_history_fails_the_table_loudly_and_keeps_its_position(env):
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.cdc import CdcState
    from aurora_replication.ledger.store import StateStore

    env.sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))", "INSERT INTO items VALUES (1, 'one')")
    stack = env.start_stack()
    assert _cdc(stack).ok
    env.sql("UPDATE items SET name = 'a' WHERE id = 1")
    assert _cdc(stack).ok
    # behind the pipeline's back, with the row count unchanged: two versions of key 1 at one position
    cur = env.snowflake().cursor()
    cur.execute('UPDATE "ITEMS" SET "_ASR_POS" = (SELECT MAX("_ASR_POS") FROM "ITEMS") WHERE "NAME" = \'one\'')
    state = CdcState(StateStore(load_settings().state_table))
    before = state.get(env.key("items"))["position_key"]
    env.sql("UPDATE items SET name = 'b' WHERE id = 1")
    third = _cdc(stack)
    t = third.run["table_states"]["items"]
    assert t["status"] == "failed", t
    assert "breaks its rules" in t["reason"] and "versions of one key at one position" in t["reason"], t["reason"]
    assert state.get(env.key("items"))["position_key"] == before


def test_the_rolling_audit_compares_current_versions_and_corrects_with_a_version(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40))",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
    )
    stack = env.start_stack({"AUDIT_PERIOD_SECONDS": "1"})  # every run audits the whole table
    assert _cdc(stack).ok
    env.sql("UPDATE items SET name = 'two+' WHERE id = 2")
    await_audit_period(env, stack, "items")
    second = _cdc(stack)
    t = second.run["table_states"]["items"]
    assert second.ok and t["audit_rows"] == 3 and t["audit_differences"] == 0, t  # closed versions are not drift
    # a current version edited in place behind the pipeline's back (the count stays)
    cur = env.snowflake().cursor()
    cur.execute('UPDATE "ITEMS" SET "NAME" = \'edited\' WHERE "ID" = 3 AND "_ASR_IS_CURRENT"')
    await_audit_period(env, stack, "items")
    third = _cdc(stack)
    t = third.run["table_states"]["items"]
    assert third.ok and t["audit_differences"] == 1, t
    assert _current(env) == [(1, "one"), (2, "two+"), (3, "three")]
    assert _versions(env)[-2:] == [(3, "edited", "I", False, False), (3, "three", "U", True, True)]
    # `replicate validate` compares the source with the current versions (the view), not every version
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["items"])
    assert report["target"] == "ITEMS_CURRENT" and report["result"] == "ok", report


def test_history_mode_and_a_plain_target_refuse_each_other(env):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), "
        "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
        "KEY (updated_at))",
        "INSERT INTO items (id, name) VALUES (1, 'one')",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "items", "mode": "full"}, workers=1).ok  # a plain target
    # history on: a full copy's commit does not write versions into it, an incremental run is refused
    outcome = stack.run({"tables": "items", "table_options": HISTORY, "mode": "full"}, workers=1)
    t = outcome.run["table_states"]["items"]
    assert t["status"] == "failed" and "holds plain rows" in t["reason"], t
    with pytest.raises(Exception, match="holds plain rows"):
        stack.run({"tables": "items", "table_options": HISTORY, "mode": "auto"}, workers=1)
    cur = env.snowflake().cursor()
    cur.execute('SELECT "ID", "NAME" FROM "ITEMS"')
    assert cur.fetchall() == [(1, "one")]
