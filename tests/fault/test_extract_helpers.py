"""Chunks read in parts (EXTRACT_PROCESSES > 1) when things go wrong: a helper process that dies in
the middle of a part fails the attempt with nothing left behind, and the retry copies every row once;
a source written to while its chunks are read in parts still validates, each part against its own
read view, and converges."""

from __future__ import annotations

import os
import signal

import pytest

from aurora_replication.ledger.store import StateStore
from aurora_replication.pipeline import extract_parts
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import connect as source_connect
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from compare import assert_same
from writer import Writer


def _kill_helpers_once(monkeypatch) -> list[int]:
    """The worker's own part first kills every helper it just sent a part to (once): a helper that
    dies, out of memory or killed, in the middle of its part."""
    killed: list[int] = []
    real = extract_parts.read_part

    def read_part(conn, job):
        if not killed:
            for h in list(extract_parts._busy):
                os.kill(h.proc.pid, signal.SIGKILL)
                killed.append(h.proc.pid)
        return real(conn, job)

    monkeypatch.setattr(extract_parts, "read_part", read_part)
    return killed


def test_a_helper_that_dies_fails_the_attempt_and_leaves_no_part_file(env, tmp_path, monkeypatch):
    env.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, note VARCHAR(20))",
        "INSERT INTO t SELECT seq, CONCAT('n', seq) FROM seq_1_to_3000",
        "ANALYZE TABLE t",
    )
    settings = MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)
    plan = source_discover.discover_table(env.mysql, env.database, "t")
    from aurora_replication.models import ChunkMessage

    msg = ChunkMessage(run_id="r1", chunk_id=0, chunk_count=1, plan=plan)
    killed = _kill_helpers_once(monkeypatch)
    conn = source_connect.connect(settings)
    local = str(tmp_path / "data-A1.csv.gz")
    try:
        with pytest.raises(extract_parts.HelperDiedError, match="ended in the middle of a part"):
            with source_read.snapshot(conn):
                extract_parts.read_in_parts(conn, lambda _: settings, plan, msg, "A1", local, 3, 100, True)
        assert len(killed) == 2
        assert not os.listdir(tmp_path)  # no part file of the failed attempt is left
        assert not extract_parts._busy and all(h.alive() for h in extract_parts._idle)
        # the next attempt starts new helpers and reads every row
        with source_read.snapshot(conn):
            parts = extract_parts.read_in_parts(conn, lambda _: settings, plan, msg, "A2", local, 3, 100, True)
        assert (
            parts is not None
            and parts.rows == 3000
            and parts.source == source_read.chunk_checksum(conn, plan, None, None)
        )
    finally:
        conn.close()
        extract_parts.close_helpers()


def test_a_run_whose_helpers_die_retries_the_chunk_and_copies_every_row_once(env, monkeypatch):
    env.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v DOUBLE, note TEXT)",
        "INSERT INTO t SELECT seq, seq / 7, CONCAT('n', seq) FROM seq_1_to_4000",
        "ANALYZE TABLE t",
    )
    killed = _kill_helpers_once(monkeypatch)
    stack = env.start_stack({"EXTRACT_PROCESSES": "3", "EXTRACT_PART_MIN_ROWS": "100", "SMALL_CHUNK_ROWS": "0"})
    outcome = stack.run({"tables": "t", "mode": "full", "chunk_rows": 4000}, workers=1, timeout=300)
    assert killed and outcome.ok
    t = StateStore(stack.table_name).get_table(outcome.run_id, "t")
    assert t["validation"] == "ok" and int(t["target_rows"]) == 4000
    assert assert_same(env, "t") == 4000


def test_a_live_source_read_in_parts_validates_and_converges(env):
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO acct (id, balance, name, updated_at) SELECT seq, seq * 1.5, CONCAT('n', seq), "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_2000",
        "ANALYZE TABLE acct",
    )
    stack = env.start_stack({"EXTRACT_PROCESSES": "3", "EXTRACT_PART_MIN_ROWS": "50", "SMALL_CHUNK_ROWS": "0"})
    with Writer(env) as writer:
        writer.wait_for(20)
        before = writer.writes
        outcome = stack.run({"tables": "acct", "mode": "full", "chunk_rows": 700}, workers=2, timeout=300)
        t = StateStore(stack.table_name).get_table(outcome.run_id, "acct")
        assert outcome.ok and t["heal_round"] == 0 and t["validation"] == "ok", t
        assert writer.writes > before, "the source was not written to during the run"
    assert not writer.errors, writer.errors
    assert stack.run({"tables": "acct", "mode": "incremental", "chunk_rows": 700}, workers=2, timeout=300).ok
    assert assert_same(env, "acct") == 2000 + writer.done["insert"]
