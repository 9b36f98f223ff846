"""The pipeline end to end through the real handlers: MariaDB -> moto SQS/DynamoDB -> Snowflake emulator."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from aurora_replication.errors import BadInputError
from compare import assert_same

SCHEMA = [
    """CREATE TABLE orders (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY, customer VARCHAR(100) NOT NULL, total DECIMAL(12,2) NOT NULL,
        ratio DOUBLE NULL, note TEXT NULL, tags JSON NULL, placed DATE NULL, created DATETIME(6) NOT NULL,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
    """CREATE TABLE `lines` (order_id INT NOT NULL, line_no SMALLINT NOT NULL, sku VARCHAR(20) NOT NULL,
        qty INT NOT NULL, PRIMARY KEY (order_id, line_no))""",
    "CREATE TABLE codes (code VARCHAR(10) NOT NULL PRIMARY KEY, label VARCHAR(50) NULL)",
    "CREATE TABLE events (at DATETIME NOT NULL, what VARCHAR(20) NOT NULL)",
    "CREATE TABLE empty_one (id INT PRIMARY KEY, v VARCHAR(5))",
]


def seed(env) -> None:
    env.sql(*SCHEMA)
    env.sql(
        """INSERT INTO orders (id, customer, total, ratio, note, tags, placed, created, updated_at)
        SELECT seq * seq, CONCAT('cust ', seq, IF(seq % 3 = 0, ' 😀', '')), seq * 1.25, IF(seq % 4 = 0, NULL, seq / 7),
               CASE seq % 5 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a,b "c"\\nnext line' WHEN 3 THEN 'back\\\\slash'
                    ELSE '007' END,
               IF(seq % 2 = 0, JSON_OBJECT('n', seq, 'big', 12345678901234567), NULL),
               IF(seq % 6 = 0, NULL, '2024-02-29'), '2024-01-01 00:00:00.000001' + INTERVAL seq SECOND,
               '2024-03-01' + INTERVAL seq MINUTE
        FROM seq_1_to_137""",
        "INSERT INTO `lines` SELECT 1 + seq DIV 4, seq % 4, CONCAT('SKU', seq), seq FROM seq_1_to_90",
        "INSERT INTO codes VALUES ('a', 'lower'), ('B', 'upper'), ('b2', NULL), ('Z', ''), ('aa', 'x'), ('zz', 'y')",
        "INSERT INTO events VALUES ('2024-01-01 00:00:00', 'dup'), ('2024-01-01 00:00:00', 'dup'), ('2024-01-02', 'x')",
    )


TABLES = ["orders", "lines", "codes", "events", "empty_one"]


def table_states(outcome):
    return outcome.run["table_states"]


def test_full_replication_of_several_tables_row_by_row(env):
    seed(env)
    stack = env.start_stack()
    outcome = stack.run({"tables": "*", "mode": "full", "chunk_rows": 7}, workers=3)
    states = table_states(outcome)
    assert outcome.ok, states
    assert int(states["orders"]["chunk_count"]) == 20  # 137 rows in keyset chunks of 7
    assert int(states["codes"]["chunk_count"]) == 1
    assert int(states["events"]["chunk_count"]) == 1  # no key: one chunk
    assert int(states["empty_one"]["chunk_count"]) == 0
    # the last table to finish marked the run: every table counted once, however many finalisers ran
    assert outcome.run["status"] == "succeeded", outcome.run.get("status")
    assert outcome.run["finished_count"] == len(TABLES)
    # a small table (at most SYNC_COMMIT_MAX_ROWS rows) publishes with one synchronous statement: no
    # asynchronous statement recorded in its ledger
    assert not [k for k in states["orders"] if k.startswith("long_")], states["orders"]
    for table in TABLES:
        assert_same(env, table)
        assert states[table]["validation"] == "ok"
    assert assert_same(env, "events") == 3  # duplicates of a keyless table are kept


def test_incremental_copies_inserts_and_updates(env):
    seed(env)
    stack = env.start_stack()
    first = stack.run({"tables": "orders,lines", "mode": "full", "chunk_rows": 50}, workers=2)
    assert first.ok
    env.sql(
        "UPDATE orders SET total = total + 100, note = 'changed' WHERE id % 7 = 0",
        "INSERT INTO orders (id, customer, total, created) VALUES (99999, 'new one', 1.00, '2025-01-01')",
    )
    second = stack.run({"tables": "orders", "mode": "auto", "chunk_rows": 50}, workers=2)
    state = table_states(second)["orders"]
    assert second.ok, state
    assert state["mode"] == "incremental"
    copied = int(state["rows_copied"])
    assert 20 <= copied < 137, copied  # the changed rows, not the table
    assert_same(env, "orders")


def test_tables_of_more_chunks_than_bound_inline_validate_through_the_attempts_table(env, monkeypatch):
    """Up to INLINE_ATTEMPTS validated pairs are bound into the statements; beyond that they are
    written to the run's attempts table first. Every mode, through that table."""
    from aurora_replication.cost import meter
    from aurora_replication.target.snowflake import sql as snowflake_sql

    monkeypatch.setattr(snowflake_sql, "INLINE_ATTEMPTS", 3)
    statements: list[tuple[str, str]] = []
    monkeypatch.setattr(meter, "_recorder", statements)
    seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    full = stack.run({"tables": "orders", "mode": "full", "chunk_rows": 20}, workers=2)
    assert full.ok, table_states(full)
    assert int(table_states(full)["orders"]["chunk_count"]) == 7 and table_states(full)["orders"]["validation"] == "ok"
    assert_same(env, "orders")
    env.sql(
        "UPDATE orders SET total = total + 1 WHERE id % 5 = 0",
        "DELETE FROM orders WHERE id % 11 = 0",
    )
    incremental = stack.run({"tables": "orders", "mode": "incremental", "chunk_rows": 20}, workers=2)
    assert incremental.ok, table_states(incremental)
    reconcile = stack.run({"tables": "orders", "mode": "reconcile", "chunk_rows": 20}, workers=2)
    assert reconcile.ok, table_states(reconcile)
    assert_same(env, "orders")
    sf = env.snowflake()
    try:
        cur = sf.cursor()
        cur.execute("SHOW TABLES LIKE '_ASR_OK_%'")
        assert cur.fetchall() == []  # each published run dropped its attempts table
    finally:
        sf.close()
    written = [text for _, text in statements if text.startswith('INSERT INTO "_ASR_OK_')]
    assert len(written) == 3, written  # one finaliser's pairs per run: full, incremental, reconcile


def test_incremental_state_persists_between_local_runs(env):
    seed(env)
    env.start_stack().run({"tables": "orders", "mode": "full"}, workers=1)
    env.stack.stop()
    env.sql("UPDATE orders SET customer = 'later' WHERE id = 4")
    stack = env.start_stack()
    outcome = stack.run({"tables": "orders", "mode": "auto"}, workers=1)
    state = table_states(outcome)["orders"]
    assert outcome.ok and state["mode"] == "incremental"
    assert_same(env, "orders")


def _duplicate_queue(stack, copies: int) -> int:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        msgs = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        new = [m for m in msgs if m["Body"] not in bodies]
        if not new:
            break
        bodies.extend(m["Body"] for m in new)
    for body in bodies:
        for _ in range(copies - 1):
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
    return len(bodies)


@pytest.mark.parametrize(
    "mode, idempotency, workers",
    [
        ("full", "true", 3),  # concurrent duplicates: the idempotency utility is the first guard
        ("incremental", "true", 3),
        ("full", "false", 1),  # without it, every step is still safe to repeat
        ("incremental", "false", 1),
    ],
)
def test_every_message_delivered_twice_leaves_target_identical(env, mode, idempotency, workers):
    seed(env)
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": idempotency})
    if mode == "incremental":
        assert stack.run({"tables": "orders", "mode": "full", "chunk_rows": 40}, workers=2).ok
        env.sql("UPDATE orders SET total = total * 2 WHERE id % 3 = 0")
    summary = stack.invoke("SchedulerFunction", {"tables": "orders", "mode": mode, "chunk_rows": 40})
    assert _duplicate_queue(stack, 2) == 4
    outcome = stack.drain(summary["run_id"], workers=workers)
    state = table_states(outcome)["orders"]
    assert outcome.ok, {k: state.get(k) for k in ("status", "reason", "source_rows", "target_rows", "rows_copied")}
    assert_same(env, "orders")


def test_unknown_table_is_rejected_and_nothing_is_written(env):
    seed(env)
    stack = env.start_stack()
    with pytest.raises(Exception, match="unknown table.*'nope'"):
        stack.invoke("SchedulerFunction", {"tables": "orders,nope", "mode": "full"})
    items = boto3.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    assert [i for i in items if not i["pk"]["S"].startswith("idempotency#")] == []
    assert stack.queue_depth(stack.queue_url) == (0, 0)


def test_a_view_named_as_a_table_is_refused_as_a_view_with_the_fix(env):
    """A view is not copied ('*' leaves it out): naming one is refused saying it is a view and what to do,
    not as an "unknown table" the user can see in SHOW TABLES; an unknown name beside it is still named."""
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    seed(env)
    env.sql("CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100")
    stack = env.start_stack()
    view = f"'big_orders' in database '{env.database}' is a view, and views are not copied"
    for request_, prefix in (
        ({"tables": "orders,big_orders", "mode": "full"}, ""),
        (
            {"tables": "orders", "mode": "full", "table_options": {"big_orders": {"exclude": ["total"]}}},
            "table_options name ",
        ),
    ):
        with pytest.raises(BadInputError) as refused:
            stack.invoke("SchedulerFunction", request_)
        assert str(refused.value).startswith(prefix + view), refused.value
        assert "SHOW CREATE VIEW" in str(refused.value)
    with pytest.raises(BadInputError) as refused:
        stack.invoke("SchedulerFunction", {"tables": "nope,big_orders", "mode": "full"})
    assert str(refused.value).startswith(f"unknown table(s) 'nope' in database '{env.database}'; {view}"), refused.value
    load_settings.cache_clear()
    with pytest.raises(BadInputError, match="^" + re.escape(view)):
        validate.validate_tables(Services.from_settings(load_settings()), ["big_orders"])
    items = boto3.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    assert [i for i in items if not i["pk"]["S"].startswith("idempotency#")] == []


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"tables": [], "mode": "full"}, "tables"),
        ({"tables": "orders", "mode": "sideways"}, "mode"),
        ({"tables": "orders", "chunk_rows": 0}, "chunk_rows"),
        ({"tables": "orders`; DROP TABLE x", "mode": "full"}, "unknown table"),
        ({"tables": "orders", "colour": "red"}, "colour"),
        ({"tables": "*,orders"}, "cannot be combined"),
    ],
)
def test_invalid_run_requests_get_clear_errors(env, request_, message):
    seed(env)
    stack = env.start_stack()
    with pytest.raises(Exception, match=message):
        stack.invoke("SchedulerFunction", request_)
    assert stack.queue_depth(stack.queue_url) == (0, 0)


def test_incremental_without_watermark_is_refused(env):
    seed(env)
    stack = env.start_stack()
    with pytest.raises(Exception, match="no watermark column"):
        stack.invoke("SchedulerFunction", {"tables": "codes", "mode": "incremental"})


def test_malformed_message_ends_in_the_dead_letter_queue(env):
    seed(env)
    stack = env.start_stack()
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"kind": "chunk", "run_id": "x"}')
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="not json at all")
    import threading
    import time

    stop = threading.Event()
    threads = stack.drive_workers(1, stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(stack.queue_depth(stack.dlq_url)) < 2:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert sum(stack.queue_depth(stack.dlq_url)) == 2
    assert stack.queue_depth(stack.queue_url) == (0, 0)
    log = stack.log_path.read_text()
    assert "invalid chunk message" in log and "not JSON" in log


def test_second_scheduler_for_a_leased_table_declines_with_reason(env):
    seed(env)
    stack = env.start_stack()
    first = stack.invoke("SchedulerFunction", {"tables": "codes", "mode": "full"})
    second = stack.invoke("SchedulerFunction", {"tables": "codes", "mode": "full"})
    assert first["tables"]["codes"]["status"] == "running"
    assert second["tables"]["codes"]["status"] == "declined"
    assert "leased by run " + first["run_id"] in second["tables"]["codes"]["reason"]


def test_sample_events_run_with_replicate_invoke(env, capsys):
    from aurora_replication_dev import cli

    seed(env)
    env.sql(
        "CREATE TABLE countries (code CHAR(2) NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, "
        "continent ENUM('Africa','Americas','Asia','Europe','Oceania') NOT NULL)",
        "INSERT INTO countries VALUES ('JP', '日本', 'Asia')",
        "CREATE TABLE customers (id INT PRIMARY KEY)",
    )
    base = ["--home", str(env.home), "invoke"]
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main([*base, "scheduler", "events/scheduler.json", *urls]) == 0
    assert cli.main([*base, "scheduler", "events/scheduler-full-orders.json", *urls]) == 0
    assert cli.main([*base, "worker", "events/worker.json", *urls]) == 0
    out = capsys.readouterr().out
    assert '"batchItemFailures": []' in out
    # a malformed message is bad input: refused with one line before the stack starts (the handler's own
    # answer to it, a partial batch failure and the DLQ, is test_malformed_message_ends_in_the_dead_letter_queue)
    assert cli.main([*base, "worker", "events/worker-malformed.json", *urls]) == 2
    assert "error: invalid worker event: Records.0.body: invalid chunk message" in capsys.readouterr().err
    assert cli.main([*base, "health", "events/health.json", *urls]) == 0
    assert '"checks"' in capsys.readouterr().out
    assert cli.main([*base, "health", "events/health-function-url.json", *urls]) == 0
    assert '"statusCode"' in capsys.readouterr().out
    # nothing has failed or reached the DLQ (the malformed message was refused, never queued): healthy
    assert cli.main(["--home", str(env.home), "status", *urls]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^dead_letter_queue\s+yes\s+empty$", out, re.M), out
    assert "HEALTHY" in out and "UNHEALTHY" not in out
    for path in ("events/scheduler.json", "events/worker.json"):
        json.loads(open(path).read())


def test_a_few_changes_to_a_large_table_are_one_chunk_read_through_the_watermark_index(env):
    for table, index in (("indexed", ", KEY ix_updated (updated_at)"), ("unindexed", "")):
        env.sql(
            f"""CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL,
                updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6){index})""",
            f"INSERT INTO {table} SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq MINUTE FROM seq_1_to_3000",
            f"ANALYZE TABLE {table}",
        )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "5"})  # the window's 15 rows go by a staged file
    request = {"tables": "indexed,unindexed", "chunk_rows": 500}
    assert stack.run({**request, "mode": "full"}, workers=2).ok
    for table in ("indexed", "unindexed"):
        env.sql(
            f"UPDATE {table} SET v = 'changed' WHERE id % 300 = 0", f"INSERT INTO {table} (id, v) VALUES (5000, 'new')"
        )
    outcome = stack.run({**request, "mode": "incremental"}, workers=2)
    states = table_states(outcome)
    assert outcome.ok, states
    # through the index: the 11 changed rows (and 4 more in the watermark's 300 s overlap) are one
    # chunk, read without filtering the whole table
    assert int(states["indexed"]["chunk_count"]) == 1
    assert int(states["indexed"]["rows_copied"]) == 15
    assert any("one chunk for the incremental window" in n for n in states["indexed"]["notes"]), states["indexed"]
    # and that chunk finalises its table in its own invocation: one message, no finalise message
    # (and its half of the run's one other message: the scheduler's watchdog, pipeline/scheduler._claim)
    assert outcome.cost["indexed"]["sqs_messages_sent"] == 1 + 1 / 2, outcome.cost["indexed"]
    assert outcome.cost["indexed"]["snowflake_bytes_staged"] > 0
    # without one, the table's statistics are no estimate of the window: chunks by key, as before
    assert int(states["unindexed"]["chunk_count"]) == 7
    assert int(states["unindexed"]["rows_copied"]) == 15
    for table in ("indexed", "unindexed"):
        assert_same(env, table)

    # a window of most of the table is read chunk by chunk again, through the index or not
    env.sql("UPDATE indexed SET v = CONCAT(v, '!') WHERE id > 100")
    outcome = stack.run({"tables": "indexed", "chunk_rows": 500, "mode": "incremental"}, workers=2)
    state = table_states(outcome)["indexed"]
    assert outcome.ok, state
    assert int(state["chunk_count"]) == 7 and int(state["rows_copied"]) == 2901
    assert_same(env, "indexed")


@pytest.mark.parametrize(
    "extract, small_chunk_rows, separate_scans",
    [("server", "0", 0), ("server", "1000", 0), ("python", "0", 6)],
    ids=["server-lines", "small-chunks", "python-values"],
)
def test_a_chunk_is_scanned_once_for_its_rows_and_its_checksum(
    env, monkeypatch, extract, small_chunk_rows, separate_scans
):
    """With server-formatted lines each row's checksum term comes with its line (one scan of the
    chunk; a small chunk's values are read again for its INSERT, its checksum is not); the chunks'
    sums equal MySQL's own checksum of the table and validate against Snowflake. The per-value path
    still takes the checksum in a second query of the same snapshot."""
    from aurora_replication import checksums
    from aurora_replication.ledger.store import StateStore
    from aurora_replication.source import discover as source_discover
    from aurora_replication.source import read as source_read

    seed(env)
    original = source_read.chunk_checksum
    scans: list[object] = []

    def counted(*a, **k):
        scans.append(a[2:])
        return original(*a, **k)

    monkeypatch.setattr(source_read, "chunk_checksum", counted)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": small_chunk_rows, "EXTRACT_FORMAT": extract})
    outcome = stack.run({"tables": "orders", "mode": "full", "chunk_rows": 25}, workers=2)
    state = table_states(outcome)["orders"]
    assert outcome.ok and state["validation"] == "ok", state
    assert int(state["chunk_count"]) == 6
    assert len(scans) == separate_scans
    chunks = StateStore(stack.table_name).get_chunks(outcome.run_id, "orders")
    sums = [(int(c["source_rows"]), str(c["source_checksum"])) for c in chunks.values()]
    plan = source_discover.discover_table(env.mysql, env.database, "orders")
    assert checksums.add_checksums(sums) == source_read.table_checksum(env.mysql, plan, json_text=True)
    assert_same(env, "orders")


def test_a_small_table_reads_its_ledger_item_twice(env, monkeypatch):
    """A table of one small chunk costs two reads of its TABLE item: the plan's (the message names the
    chunk only), whose status the chunk takes, and the finaliser's own, fresh when it starts (a
    duplicate finaliser must see a table another one published). Each read is a request in the
    critical path of a run of many small tables."""
    from aurora_replication.ledger.store import StateStore

    env.sql(
        "CREATE TABLE s1 (id INT PRIMARY KEY, v VARCHAR(5))",
        "CREATE TABLE s2 (id INT PRIMARY KEY, v VARCHAR(5))",
        "CREATE TABLE s3 (id INT PRIMARY KEY, v VARCHAR(5))",
        "INSERT INTO s1 VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO s2 VALUES (1, 'c')",
        "INSERT INTO s3 VALUES (5, 'd'), (6, NULL), (7, '')",
    )
    stack = env.start_stack()
    reads: list[tuple[str, str]] = []
    get_table = StateStore.get_table

    def counted(self, run_id, table):
        reads.append((run_id, table))
        return get_table(self, run_id, table)

    monkeypatch.setattr(StateStore, "get_table", counted)
    bounds_reads: list[str] = []
    get_chunk_bounds = StateStore.get_chunk_bounds
    monkeypatch.setattr(
        StateStore,
        "get_chunk_bounds",
        lambda self, run_id, table, chunk_id: (
            bounds_reads.append(table) or get_chunk_bounds(self, run_id, table, chunk_id)
        ),
    )
    queries: list[str] = []
    query_all = StateStore._query_all
    monkeypatch.setattr(
        StateStore,
        "_query_all",
        lambda self, **kw: queries.append(str(kw["ExpressionAttributeValues"].get(":prefix"))) or query_all(self, **kw),
    )
    writes: list[tuple[str, list[str]]] = []
    record_attempts = StateStore.record_attempts

    def recorded(self, run_id, table, attempts):
        writes.append((table, [str(a["chunk"]) for a in attempts]))
        return record_attempts(self, run_id, table, attempts)

    monkeypatch.setattr(StateStore, "record_attempts", recorded)
    chunk_reads: list[str] = []
    get_chunks = StateStore.get_chunks
    monkeypatch.setattr(
        StateStore,
        "get_chunks",
        lambda self, run_id, table, count=None: chunk_reads.append(table) or get_chunks(self, run_id, table, count),
    )
    outcome = stack.run({"tables": "s1,s2,s3", "mode": "full"}, workers=2)
    assert outcome.ok, table_states(outcome)
    for table in ("s1", "s2", "s3"):
        assert_same(env, table)
    # the scheduler's own reads are of no run's TABLE item yet; the workers read each table twice
    ours = sorted(t for run, t in reads if run == outcome.run_id)
    assert ours == ["s1", "s1", "s2", "s2", "s3", "s3"], reads
    # a table's one chunk covers its whole key space: no page of key ranges is read for it, and the
    # finaliser does not query the table's chunks
    assert bounds_reads == [] and not [q for q in queries if q.startswith("CHUNK#")], (bounds_reads, queries)
    # nor reads it at all: the finaliser that runs in the chunk's invocation takes the entry the chunk wrote
    assert chunk_reads == [], chunk_reads
    for table in ("s1", "s2", "s3"):
        assert table_states(outcome)[table]["validation"] == "ok"
    # the chunk's attempt and that of the finalise it ran inline are one write
    assert sorted(writes) == [("s1", ["0", "final"]), ("s2", ["0", "final"]), ("s3", ["0", "final"])], writes
    attempts = StateStore(stack.table_name, stack.session.resource("dynamodb")).get_attempts(outcome.run_id)
    assert sorted((a["table"], str(a["chunk"])) for a in attempts) == [
        (t, c) for t in ("s1", "s2", "s3") for c in ("0", "final")
    ]
