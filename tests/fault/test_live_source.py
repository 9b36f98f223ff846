"""Exact on a live source: runs succeed while a writer changes the table, the target converges
once it stops, and corruption in Snowflake is still caught while the source moves.

The writer (``tests/writer.py``) sends about 40 writes a second to the test's own MariaDB on
loopback, updates across the key range and inserts past the last key (the open-ended chunk), and
stops by itself after at most a few minutes.
"""

from __future__ import annotations

import threading

from aurora_replication.ledger.store import StateStore
from compare import assert_same
from writer import Writer

ROWS = 400
CHUNK = 40  # chunks 0..9 hold ids 1-400 at planning time; chunk 10 is the open end


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        f"INSERT INTO acct (id, balance, name, updated_at) SELECT seq, seq * 1.5, CONCAT('n', seq), "
        f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )


def _table(stack, run_id: str) -> dict:
    return StateStore(stack.table_name).get_table(run_id, "acct")


def _run(stack, writer: Writer, request: dict, workers: int = 2, fault=None) -> dict:
    before = writer.writes
    outcome = stack.run({"tables": "acct", "chunk_rows": CHUNK, **request}, workers=workers, fault=fault, timeout=300)
    t = _table(stack, outcome.run_id)
    assert outcome.ok, {k: t.get(k) for k in ("status", "reason", "validation", "differing_chunks", "last_mismatch")}
    assert writer.writes > before, "the source was not written to during the run"
    return t


def test_full_then_incremental_runs_succeed_while_the_source_is_written_and_converge(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    with Writer(env) as writer:
        writer.wait_for(20)
        full = _run(stack, writer, {"mode": "full"})
        # writes after a chunk's snapshot are lag, not a mismatch: nothing was copied twice
        assert full["heal_round"] == 0 and full["validation"] == "ok"
        assert full["compared"] == "each chunk against its own snapshot"
        assert float(full["source_as_of"]) > 0 and float(full["snapshot_spread_seconds"]) >= 0
        for _ in range(2):
            inc = _run(stack, writer, {"mode": "incremental"})
            assert inc["mode"] == "incremental" and inc["heal_round"] == 0 and inc["validation"] == "ok"
    assert not writer.errors, writer.errors
    assert writer.done["insert"] > 0 and writer.done["update"] > 0
    last = stack.run({"tables": "acct", "mode": "incremental", "chunk_rows": CHUNK}, workers=2, timeout=300)
    assert last.ok, _table(stack, last.run_id)
    assert assert_same(env, "acct") == ROWS + writer.done["insert"]
    last_run = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": env.key("acct").pk}, "sk": {"S": "LAST_RUN"}}
    )["Item"]
    assert last_run["status"]["S"] == "published" and float(last_run["source_as_of"]["N"]) > 0


def test_deletes_on_a_live_table_are_reconciled_without_losing_new_rows(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    with Writer(env, deletes=True, seed=5) as writer:
        writer.wait_for(20)
        _run(stack, writer, {"mode": "full"})
        _run(stack, writer, {"mode": "incremental"})
        deleted_before = writer.done["delete"]
        rec = _run(stack, writer, {"mode": "reconcile"})
        # it removes only rows deleted in MySQL (rows inserted since are kept: they are in its snapshots)
        assert rec["validation"] == "ok" and int(rec["reconciled_rows"]) <= writer.done["delete"]
        assert deleted_before == 0 or int(rec["reconciled_rows"]) > 0
        _run(stack, writer, {"mode": "incremental"})
    assert writer.done["delete"] > 0
    for request in ({"mode": "incremental"}, {"mode": "reconcile"}):
        outcome = stack.run({"tables": "acct", "chunk_rows": CHUNK, **request}, workers=2, timeout=300)
        assert outcome.ok, _table(stack, outcome.run_id)
    t = _table(stack, outcome.run_id)
    assert int(t["keys_missing_in_target"]) == 0  # once writes stop, nothing is left to carry
    assert assert_same(env, "acct") == ROWS + writer.done["insert"] - writer.done["delete"]


# ---- corruption in Snowflake is still caught while the source moves --------------------------


class Corrupt:
    """At the ``copied`` step of chunk ``chunk``, changes that chunk's rows in the load table behind
    the pipeline's back (``times`` times), as a broken load or a hand edit would."""

    def __init__(self, env, chunk: int, statement: str, times: int = 1) -> None:
        self.env, self.chunk, self.statement, self.times = env, chunk, statement, times
        self.lock = threading.Lock()
        self.done = 0
        self.affected = 0

    def __call__(self, step: str, msg=None) -> None:
        if step != "copied" or msg is None or msg.kind != "chunk" or msg.chunk_id != self.chunk:
            return
        with self.lock:
            if self.done >= self.times:
                return
            self.done += 1
        prefix = {"full": "_ASR_FULL_", "incremental": "_ASR_INC_"}[msg.plan.mode]
        conn = self.env.snowflake()
        try:
            cur = conn.cursor()
            cur.execute(self.statement.format(load=f'"{prefix}{msg.run_id}_ACCT"'), (self.chunk,))
            self.affected += max(cur.rowcount or 0, 0)
        finally:
            conn.close()


CHANGED_ROW = (
    'UPDATE {load} SET "BALANCE" = "BALANCE" + 1 WHERE "_ASR_CHUNK" = %s AND "ID" = '
    '(SELECT MIN("ID") FROM {load} WHERE "_ASR_CHUNK" = 3)'
)
LOST_CHUNK = 'DELETE FROM {load} WHERE "_ASR_CHUNK" = %s'
TRUNCATED = (
    'UPDATE {load} SET "NAME" = SUBSTR("NAME", 1, 1) WHERE "_ASR_CHUNK" = %s AND "ID" = '
    '(SELECT MAX("ID") FROM {load} WHERE "_ASR_CHUNK" = 3)'
)


def test_planted_corruption_is_caught_and_healed_on_a_live_table(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    with Writer(env) as writer:
        writer.wait_for(10)
        for statement in (CHANGED_ROW, LOST_CHUNK, TRUNCATED):
            corrupt = Corrupt(env, 3, statement)
            outcome = stack.run(
                {"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=2, fault=corrupt, timeout=300
            )
            t = _table(stack, outcome.run_id)
            assert corrupt.done == 1
            assert outcome.ok, t
            assert t["heal_round"] == 1 and '"chunk": 3' in t["last_mismatch"], statement  # found and copied again
            assert "('120',) < key <= ('160',)" in t["last_mismatch"]  # named by its key range
        corrupt = Corrupt(env, 3, CHANGED_ROW)
        outcome = stack.run(
            {"tables": "acct", "mode": "incremental", "chunk_rows": CHUNK}, workers=2, fault=corrupt, timeout=300
        )
        t = _table(stack, outcome.run_id)
        # an incremental chunk has rows to corrupt only if the writer changed one in its range (within
        # the watermark overlap): then its scratch rows differ from its snapshot and it is copied again
        assert outcome.ok, t
        assert t["heal_round"] == (1 if corrupt.affected else 0), (corrupt.affected, t.get("last_mismatch"))
    stack.run({"tables": "acct", "mode": "incremental", "chunk_rows": CHUNK}, workers=2, timeout=300)
    assert assert_same(env, "acct") == ROWS + writer.done["insert"]


def test_corruption_that_persists_fails_the_table_naming_chunk_and_range(env):
    _seed(env)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0", "HEAL_ATTEMPTS": "2"})
    before = stack.run({"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=1, timeout=300)
    assert before.ok
    with Writer(env) as writer:
        writer.wait_for(10)
        corrupt = Corrupt(env, 2, LOST_CHUNK, times=10)  # every copy of chunk 2 loses its rows
        outcome = stack.run(
            {"tables": "acct", "mode": "full", "chunk_rows": CHUNK}, workers=2, fault=corrupt, timeout=300
        )
    t = _table(stack, outcome.run_id)
    assert not outcome.ok and t["status"] == "failed" and t["heal_round"] == 2
    assert corrupt.done == 3  # the first copy and two re-copies
    assert t["differing_chunks"] == [2]
    assert "chunk 2 (('80',) < key <= ('120',))" in t["reason"] and "0 rows" in t["reason"]
    # the published target was left as it was: the failed run did not publish
    conn = env.snowflake()
    assert conn.cursor().execute('SELECT COUNT(*) FROM "ACCT"').fetchone()[0] == ROWS
    conn.close()
