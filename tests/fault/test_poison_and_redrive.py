"""A chunk that fails every time ends in the DLQ, the rest completes, and redrive finishes the run."""

from __future__ import annotations

import pytest

from aurora_replication.ops.redrive import redrive
from aurora_replication_dev import cli


@pytest.mark.parametrize("idempotency", ["false", "true"], ids=["idempotency-off", "idempotency-on"])
def test_poison_chunk_goes_to_dlq_then_redrive_finishes_the_run(env, idempotency):
    """With idempotency on, each failed receive deletes its record (the guarded call raised), so the
    redriven message does the work instead of being refused or answered."""
    env.sql(
        "CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO p SELECT seq, CONCAT('v', seq) FROM seq_1_to_40",
        "CREATE TABLE q (id INT PRIMARY KEY)",
        "INSERT INTO q VALUES (1), (2)",
    )
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": idempotency, "REDELIVERY_BASE_SECONDS": "0"})
    broken = {"on": True}

    def poison(step, message=None):
        if broken["on"] and step == "extracted" and message.plan.table == "p" and message.chunk_id == 2:
            raise RuntimeError("simulated: chunk 2 of p cannot be loaded")

    first = stack.run({"tables": "p,q", "mode": "full", "chunk_rows": 10}, workers=2, fault=poison, idle_timeout=2)
    states = first.run["table_states"]
    assert first.dlq_messages == 1 and not first.ok
    assert states["q"]["status"] == "published"  # the rest of the run completed
    assert states["p"]["status"] == "running" and states["p"]["done_count"] == int(states["p"]["chunk_count"]) - 1
    health = stack.invoke("HealthFunction", {})
    assert "dead_letter_queue" in health["failing"]
    assert health["checks"]["dead_letter_queue"]["tables"] == [f"p (run {first.run_id})"]

    broken["on"] = False  # the cause is fixed
    moved = redrive(stack.sqs, stack.dlq_url, stack.queue_url)
    assert moved["moved"] == 1 and moved["run_ids"] == [first.run_id]
    finished = stack.drain(first.run_id, workers=1)
    assert finished.ok, finished.run["table_states"]
    from compare import assert_same

    assert assert_same(env, "p") == 40


def test_dead_letters_persist_locally_and_replicate_redrive_finishes(env, capsys):
    env.sql("CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO p SELECT seq, 'x' FROM seq_1_to_30")
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "false", "REDELIVERY_BASE_SECONDS": "0"})

    def poison(step, message=None):
        if step == "extracted" and message.chunk_id == 0:
            raise RuntimeError("simulated poison")

    first = stack.run({"tables": "p", "mode": "full", "chunk_rows": 10}, workers=1, fault=poison, idle_timeout=2)
    assert first.dlq_messages == 1
    stack.stop()
    env.stack = None
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main(["--home", str(env.home), "redrive", *urls, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 message(s) moved back" in out and "OK" in out


def test_transient_mysql_error_is_retried_in_place(env):
    import pymysql

    env.sql("CREATE TABLE r (id INT PRIMARY KEY)", "INSERT INTO r SELECT seq FROM seq_1_to_20")
    stack = env.start_stack({"RETRY_BASE_SECONDS": "0.05"})
    failures = {"left": 2}

    def lose_connection(step, message=None):
        if step == "extracted" and failures["left"]:
            failures["left"] -= 1
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")

    outcome = stack.run({"tables": "r", "mode": "full"}, workers=1, fault=lose_connection)
    assert outcome.ok and failures["left"] == 0
    assert outcome.dlq_messages == 0
    assert "transient OperationalError, retrying" in stack.log_path.read_text()


def test_non_transient_error_is_not_retried_in_place():
    from aurora_replication.errors import BadInputError
    from aurora_replication.retry import call_with_retries, is_transient

    calls = {"n": 0}

    def bad():
        calls["n"] += 1
        raise BadInputError("no")

    with pytest.raises(BadInputError):
        call_with_retries(bad, 5, 0.01, 0.01, "test")
    assert calls["n"] == 1 and not is_transient(ValueError("x"))


def test_replicate_validate_reports_equal_and_diverged_tables(env, capsys):
    env.sql(
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(5))",
        "INSERT INTO a VALUES (1, 'x'), (2, 'y')",
        "CREATE TABLE b (id INT PRIMARY KEY)",
        "INSERT INTO b VALUES (1)",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "a,b", "mode": "full"}, workers=1).ok
    stack.stop()
    env.stack = None
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main(["--home", str(env.home), "validate", *urls]) == 0
    assert capsys.readouterr().out.count(" ok") == 2
    env.sql("UPDATE a SET v = 'z' WHERE id = 2", "INSERT INTO b VALUES (2)")
    assert cli.main(["--home", str(env.home), "validate", *urls]) == 1
    out = capsys.readouterr().out
    assert "checksum differs" in out and "count differs" in out
    assert "a: differs in -inf < key <= +inf" in out  # one range: the tables are smaller than a chunk
    assert "b: differs in -inf < key <= +inf" in out
    # and the rows and columns that differ are named, with both values
    assert "a: row (id=2) column 'v': value differs: MySQL 'z', Snowflake 'y'" in out
    assert "b: row (id=2): missing in Snowflake" in out
    assert cli.main(["--home", str(env.home), "validate", "--tables", "nope", *urls]) == 2


def test_a_dead_lettered_chunk_fails_its_table_in_the_ledger_until_redrive(env):
    from aurora_replication.ledger.store import StateStore

    env.sql("CREATE TABLE d (id INT PRIMARY KEY)", "INSERT INTO d SELECT seq FROM seq_1_to_30")
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "false", "REDELIVERY_BASE_SECONDS": "0"})
    broken = {"on": True}

    def poison(step, message=None):
        if broken["on"] and step == "extracted" and message.chunk_id == 1:
            raise RuntimeError("simulated: chunk 1 cannot be loaded")

    first = stack.run({"tables": "d", "mode": "full", "chunk_rows": 10}, workers=1, fault=poison, idle_timeout=2)
    t = StateStore(stack.table_name).get_table(first.run_id, "d")
    assert t["dead_lettered"] == {"1"}
    assert "chunk 1 moved to the dead-letter queue after 5 receives: RuntimeError: simulated" in t["last_error"]
    from aurora_replication_dev.cli import summary_rows

    assert summary_rows(first)[0]["status"] == "failed (chunks in the DLQ)"
    health = stack.invoke("HealthFunction", {})
    replication = health["checks"]["replication"]
    assert not replication["ok"] and replication["dead_lettered"] == [f"d (run {first.run_id}, chunk 1 in the DLQ)"]

    broken["on"] = False
    redrive(stack.sqs, stack.dlq_url, stack.queue_url)
    assert stack.drain(first.run_id, workers=1).ok
    t = StateStore(stack.table_name).get_table(first.run_id, "d")
    assert not t.get("dead_lettered") and t["status"] == "published"
