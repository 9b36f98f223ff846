"""Following the binlog under a fault: the scheduler dies while reading its second window, after the first
window's run committed. Nothing is lost or applied twice: the first window's position stays committed,
the dead window's run is resumed, and a new following invocation ends at the server's end, equal."""

from __future__ import annotations

import threading

import pytest

from cdc_acct import ENV
from cdc_acct import change as _change
from cdc_acct import position as _position
from cdc_acct import seed as _seed
from cdc_acct import server_end as _server_end
from compare import assert_same


def test_reader_killed_in_its_second_window_while_following(env):
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.store import StateStore
    from aurora_replication_dev.local.stack import LocalContext

    _seed(env)
    stack = env.start_stack({**ENV, "CDC_FOLLOW_PAUSE_SECONDS": "0.2"}, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    before = _position(env)
    _change(env, 0)
    reads: list[str] = []

    def fault(name: str, message=None) -> None:
        if name != "cdc_window_read":
            return
        reads.append(name)
        if len(reads) == 1:
            _change(env, 1)  # written while the first window is applied: the follow reads a second one
        elif len(reads) == 2:
            raise SystemExit("simulated reader death in the second window")

    scheduler = stack.load_module("SchedulerFunction")
    scheduler.services.hooks.fault = fault
    stop = threading.Event()
    workers = stack.drive_workers(2, stop)
    try:
        with pytest.raises(SystemExit):
            scheduler.lambda_handler(
                {"tables": "acct", "mode": "cdc", "follow_seconds": 60}, LocalContext("SchedulerFunction", 300)
            )
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=30)
    assert len(reads) == 2
    first = _position(env)
    assert first > before  # the first window was applied and committed before the second began
    dead = StateStore(load_settings().state_table).lease_holder(env.key("acct"))
    assert dead, "the dead window's run holds the table"
    stack.drain(dead, workers=2, timeout=60, idle_timeout=3)  # what it sent is applied
    assert _position(env) == first  # never ahead of what was applied
    resumed = stack.run({"resume_run": dead}, workers=2, timeout=180)
    assert resumed.ok, resumed.run["table_states"]
    _change(env, 2)
    after = stack.run({"tables": "acct", "mode": "cdc", "follow_seconds": 2}, workers=2, timeout=180)
    assert after.ok, after.run["table_states"]
    assert _position(env) == _server_end(env)
    assert_same(env, "acct")
