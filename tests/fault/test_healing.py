"""Validation that heals: ranges that differ are named and copied again, exactly those, in bounded
rounds; reconcile removes what MySQL deleted; a stalled run resumes without re-copying done chunks."""

from __future__ import annotations

import threading
from collections import Counter

import boto3

from aurora_replication.ledger.store import StateStore
from aurora_replication_dev.local.stack import LocalStack
from compare import assert_same

ROWS = 200
CHUNK = 40  # chunks 0..4 hold ids 1-40, 41-80, 81-120, 121-160, 161-200; chunk 5 is the open end


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        f"INSERT INTO acct (id, balance, name, updated_at) SELECT seq, seq * 1.5, CONCAT('n', seq), "
        f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )


class Recorder:
    """Counts the extractions per (round, chunk); runs ``action`` the first ``times`` a chunk is marked done."""

    def __init__(self, env, chunk: int, statements: list[str], times: int = 1) -> None:
        self.env, self.chunk, self.statements, self.times = env, chunk, statements, times
        self.extracted: Counter[int] = Counter()
        self.lock = threading.Lock()

    def __call__(self, step: str, msg=None) -> None:
        if msg is None or msg.kind != "chunk":
            return
        with self.lock:
            if step == "extracted":
                self.extracted[msg.chunk_id] += 1
            if step == "marked_done" and msg.chunk_id == self.chunk and self.times > 0:
                self.times -= 1
                conn = self.env.db.connect(self.env.database)  # the source changes after the chunk was copied
                with conn.cursor() as cur:
                    for s in self.statements:
                        cur.execute(s)
                conn.close()


def _table(stack: LocalStack, run_id: str) -> dict:
    return StateStore(stack.table_name).get_table(run_id, "acct")


def test_a_source_change_after_a_chunks_snapshot_is_lag_not_a_mismatch(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    rec = Recorder(env, 2, ["UPDATE acct SET balance = -1, name = 'late' WHERE id IN (85, 90)"])
    outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1, fault=rec, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    t = _table(stack, outcome.run_id)
    assert t["heal_round"] == 0 and t["validation"] == "ok"  # chunk 2 matched the snapshot it read
    assert all(n == 1 for n in rec.extracted.values()) and len(rec.extracted) == 6  # nothing copied twice
    conn = env.snowflake()
    assert conn.cursor().execute('SELECT "NAME" FROM "ACCT" WHERE "ID" = 85').fetchone()[0] == "n85"  # lag...
    conn.close()
    assert stack.run({"tables": "acct", "mode": "incremental", "chunk_rows": CHUNK}, workers=1).ok
    assert assert_same(env, "acct") == ROWS  # ...carried by the next incremental run


def test_incremental_leaves_deletes_to_reconcile(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    assert stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1).ok
    env.sql("DELETE FROM acct WHERE id = 130", "UPDATE acct SET name = 'changed' WHERE id = 10")
    rec = Recorder(env, -1, [])
    outcome = stack.run(
        {"tables": "acct", "mode": "incremental", "chunk_rows": CHUNK}, workers=1, fault=rec, timeout=120
    )
    assert outcome.ok, outcome.run["table_states"]
    t = _table(stack, outcome.run_id)
    assert t["heal_round"] == 0 and int(t["merged_rows"]) == int(t["source_rows"]) >= 1
    conn = env.snowflake()
    cur = conn.cursor()
    assert cur.execute('SELECT "NAME" FROM "ACCT" WHERE "ID" = 10').fetchone()[0] == "changed"
    assert cur.execute('SELECT COUNT(*) FROM "ACCT" WHERE "ID" = 130').fetchone()[0] == 1  # not seen by incremental
    conn.close()
    assert stack.run({"tables": "acct", "mode": "reconcile", "chunk_rows": CHUNK}, workers=1, timeout=120).ok
    assert assert_same(env, "acct") == ROWS - 1


class LoadTableCorruption(Recorder):
    """Counts extractions like ``Recorder``, and after each copy of ``chunk`` (``times`` times) changes
    a row of it in the load table behind the pipeline's back."""

    def __call__(self, step: str, msg=None) -> None:
        super().__call__(step, msg)
        if step == "copied" and msg is not None and msg.kind == "chunk" and msg.chunk_id == self.chunk:
            with self.lock:
                if self.times <= 0:
                    return
                self.times -= 1
            conn = self.env.snowflake()
            conn.cursor().execute(
                f'UPDATE "_ASR_FULL_{msg.run_id}_ACCT" SET "BALANCE" = -1 WHERE "ID" = 50 AND "_ASR_CHUNK" = 1'
            )
            conn.close()


def test_healing_is_bounded_and_names_the_ranges(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0", "HEAL_ATTEMPTS": "2"})
    # every copy of chunk 1 is changed in Snowflake after it loads: it can never match its snapshot
    rec = LoadTableCorruption(env, 1, [], times=10)
    outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1, fault=rec, timeout=120)
    assert not outcome.ok
    t = _table(stack, outcome.run_id)
    assert t["status"] == "failed" and t["heal_round"] == 2
    assert "still differ from their own snapshots after 2 re-copies" in t["reason"]
    assert "chunk 1 (('40',) < key <= ('80',))" in t["reason"]
    assert t["differing_chunks"] == [1]
    assert rec.extracted[1] == 3 and rec.extracted[0] == 1  # exactly the differing chunk, twice more


def test_a_healed_chunk_is_copied_again_and_nothing_else(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    rec = LoadTableCorruption(env, 1, [], times=1)
    outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1, fault=rec, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    t = _table(stack, outcome.run_id)
    assert t["heal_round"] == 1 and '"chunk": 1' in t["last_mismatch"]
    assert rec.extracted[1] == 2 and all(n == 1 for c, n in rec.extracted.items() if c != 1)
    assert assert_same(env, "acct") == ROWS


def test_reconcile_deletes_rows_gone_from_mysql(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    assert stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1).ok
    env.sql("DELETE FROM acct WHERE id IN (3, 77, 150, 199)")
    outcome = stack.run({"tables": "acct", "mode": "reconcile", "chunk_rows": CHUNK}, workers=2, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    t = _table(stack, outcome.run_id)
    assert t["reconciled_rows"] == 4 and t["validation"] == "ok" and t["keys_missing_in_target"] == 0
    assert assert_same(env, "acct") == ROWS - 4


def test_reconcile_can_mark_instead_of_delete(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0", "RECONCILE_ACTION": "mark"})
    assert stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1).ok
    env.sql("DELETE FROM acct WHERE id IN (5, 6)")
    outcome = stack.run({"tables": "acct", "mode": "reconcile", "chunk_rows": CHUNK}, workers=1, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    cur = env.snowflake().cursor()
    cur.execute('SELECT "ID" FROM "ACCT" WHERE "_ASR_DELETED_AT" IS NOT NULL ORDER BY 1')
    assert [int(r[0]) for r in cur.fetchall()] == [5, 6]
    cur.execute('SELECT COUNT(*) FROM "ACCT"')
    assert cur.fetchone()[0] == ROWS
    # the row comes back in MySQL: the next reconcile clears its mark
    env.sql("INSERT INTO acct (id, balance, name, updated_at) VALUES (5, 7.5, 'n5', '2024-01-01 00:00:05')")
    assert stack.run({"tables": "acct", "mode": "reconcile", "chunk_rows": CHUNK}, workers=1, timeout=120).ok
    cur.execute('SELECT "ID" FROM "ACCT" WHERE "_ASR_DELETED_AT" IS NOT NULL')
    assert [int(r[0]) for r in cur.fetchall()] == [6]


def test_stalled_run_is_reported_and_resumes_without_recopying_done_chunks(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    summary = stack.invoke("SchedulerFunction", {"tables": "acct", "mode": "full", "chunk_rows": CHUNK})
    run_id = summary["run_id"]
    sqs = boto3.client("sqs")
    lost = None
    while lost is None:  # a message lost for good (a purge, an expiry): the run cannot finish by itself
        for m in sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            if lost is None and '"chunk_id":2,' in m["Body"]:
                lost = m
                sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=stack.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
    first = Recorder(env, -1, [])
    outcome = stack.drain(run_id, workers=2, fault=first, idle_timeout=2, timeout=120)
    assert not outcome.ok and outcome.run["table_states"]["acct"]["status"] == "running"
    assert 2 not in first.extracted and len(first.extracted) == 5

    # the health check names it once it has been idle longer than STALL_SECONDS
    from aurora_replication.config import load_settings
    from aurora_replication.ops import health
    from aurora_replication.services import Services

    report = health.report(Services.from_settings(load_settings()), stall_seconds=0)
    stalled = report["checks"]["replication"]["stalled_runs"]
    assert [(x["run_id"], x["table"], x["chunks_done"], x["chunks"]) for x in stalled] == [(run_id, "acct", 5, 6)]
    assert not report["healthy"] and "resume" in report["checks"]["replication"]["detail"]

    again = Recorder(env, -1, [])
    outcome = stack.run({"resume_run": run_id}, workers=2, fault=again, timeout=120)
    assert outcome.ok, outcome.run["table_states"]
    assert dict(again.extracted) == {2: 1}  # only the missing chunk was copied
    assert assert_same(env, "acct") == ROWS


def test_a_one_chunk_table_whose_finalise_fails_in_the_chunks_invocation_is_finalised_by_its_message(env, monkeypatch):
    from aurora_replication.pipeline import chunk_job
    from aurora_replication.pipeline import finalise as finaliser

    _seed(env)
    copies: list[int] = []
    real_copy, real_finalise = chunk_job.copy_chunk, finaliser.finalise

    def copy_chunk(msg, services, **kwargs):  # kwargs: the TABLE item the invocation read already
        copies.append(msg.chunk_id)
        return real_copy(msg, services, **kwargs)

    def finalise_failing_once(msg, services, **kwargs):
        if not getattr(finalise_failing_once, "failed", False):
            finalise_failing_once.failed = True  # type: ignore[attr-defined]
            raise RuntimeError("Snowflake went away in the middle of the finalise")
        return real_finalise(msg, services, **kwargs)

    monkeypatch.setattr(chunk_job, "copy_chunk", copy_chunk)
    monkeypatch.setattr(finaliser, "finalise", finalise_failing_once)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})  # the one chunk goes by a staged file
    outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": ROWS * 2}, workers=1)
    state = outcome.run["table_states"]["acct"]
    assert outcome.ok, state
    assert int(state["chunk_count"]) == 1 and copies == [0]  # copied once: the failed finalise did not re-copy it
    # the chunk, then the finalise that took over (and the run's one other message: the scheduler's watchdog,
    # pipeline/scheduler._claim)
    assert outcome.cost["acct"]["sqs_messages_sent"] == 2 + 1
    assert_same(env, "acct")


def test_a_one_chunk_table_copied_slowly_leaves_its_finalise_to_the_message(env, monkeypatch):
    from aurora_replication.pipeline import chunk_job

    _seed(env)
    monkeypatch.setattr(chunk_job, "INLINE_FINALISE_AFTER_SECONDS", 0.0)  # every copy is "slow"
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": ROWS * 2}, workers=1)
    assert outcome.ok, outcome.run["table_states"]["acct"]
    assert outcome.cost["acct"]["sqs_messages_sent"] == 2 + 1  # the chunk, its finalise message, the watchdog
    assert_same(env, "acct")
