"""A binlog decoding process dies in a cdc run (``source/binlog_parallel.py``): the scheduler's invocation fails
naming the segment and the fix, nothing of the window is applied, the positions stay, and the next run
applies every change exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_replication.source import binlog_parallel
from aurora_replication.source.binlog import BinlogUnavailableError
from compare import assert_same

NO_AUDIT = {"AUDIT_PERIOD_SECONDS": "86400", "AUDIT_MIN_ROWS": "100000000"}


def test_a_dead_decoding_process_fails_the_window_and_the_next_run_applies_it_once(env, monkeypatch):
    env.sql(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
        "INSERT INTO items SELECT seq, CONCAT('i', seq), seq FROM seq_1_to_200",
    )
    stack = env.start_stack({**NO_AUDIT, "CDC_DECODE_PROCESSES": "2", "CDC_DECODE_MIN_BYTES": "1"})
    assert stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120).ok
    env.sql(
        "UPDATE items SET qty = qty + 1000 WHERE id <= 100",
        "DELETE FROM items WHERE id > 180",
        "INSERT INTO items SELECT seq, 'new', 0 FROM seq_1001_to_1050",
        "UPDATE items SET qty = -1 WHERE id > 1040",
    )
    started = binlog_parallel._start
    killed: list[Any] = []

    def dies(args: tuple[Any, ...]) -> Any:
        process = started(args)
        process.kill()
        killed.append(process)
        return process

    monkeypatch.setattr(binlog_parallel, "_start", dies)
    # the scheduler's invocation fails (the run's tables are failed with the reason before it raises)
    with pytest.raises(BinlogUnavailableError, match=r"segment 1 .* ended without it .* reads it again"):
        stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120)
    assert killed
    monkeypatch.setattr(binlog_parallel, "_start", started)
    again = stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120)
    t = again.run["table_states"]["items"]
    assert again.ok and t["mode"] == "cdc" and t["upserts"] == 150 and t["deletes"] == 20, t
    assert assert_same(env, "items") == 230
