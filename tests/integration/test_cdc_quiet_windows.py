"""A cdc window in which a table did not change costs Snowflake nothing for that table: its finalise
runs no statement (no login, no warehouse time for the tombstone prune), the target's count noted by
its last commit stands, and rows changed in the target behind the pipeline's back during such
windows are still found by the next run's check."""

from __future__ import annotations

import json

from aurora_replication.cost import meter
from aurora_replication.ledger.store import StateStore
from aurora_replication.pipeline.modes.cdc.mode import QUIET_WINDOW
from compare import assert_same


def _cdc(stack, tables: str = "busy,quiet"):
    out = stack.run({"tables": tables, "mode": "cdc"}, workers=2, timeout=180)
    assert out.ok, out.run["table_states"]
    return out


def _worker_statements(statements: list[tuple[str, str]], table: str) -> list[tuple[str, str]]:
    """The statements a worker ran for ``table`` (the scheduler's planning and window read are others)."""
    out = []
    for tag, text in statements:
        if tag == meter.APP_TAG:
            continue
        body = json.loads(tag)
        if body["table"] == table and body["step"] not in ("plan", "read"):
            out.append((body["step"], text))
    return out


def test_a_quiet_table_costs_its_window_no_snowflake_statement_and_drift_is_still_found(env, monkeypatch):
    env.sql(
        "CREATE TABLE busy (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO busy SELECT seq, CONCAT('b', seq) FROM seq_1_to_50",
        "CREATE TABLE quiet (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO quiet SELECT seq, CONCAT('q', seq) FROM seq_1_to_40",
    )
    stack = env.start_stack()
    _cdc(stack)  # the initial copies
    env.sql("DELETE FROM quiet WHERE id = 3", "UPDATE busy SET v = 'x' WHERE id < 5")
    _cdc(stack)  # both changed: a tombstone for quiet
    statements: list[tuple[str, str]] = []
    meter.record_statements(statements)
    monkeypatch.setattr(meter, "_recorder", statements)

    env.sql("UPDATE busy SET v = 'y' WHERE id < 9")
    out = _cdc(stack)  # only busy changed
    assert out.run["table_states"]["quiet"]["status"] == "published"
    assert out.run["table_states"]["quiet"]["validation"] == QUIET_WINDOW
    assert _worker_statements(statements, "quiet") == []
    busy = {step for step, _ in _worker_statements(statements, "busy")}
    assert {"copy", "merge", "finalise"} <= busy, busy  # a changed table's window is applied as before
    # the count its last commit noted stands (39 rows): a quiet window does not forget it
    catalog = StateStore(stack.table_name).catalog_entries([env.key("quiet")])
    assert int(catalog["quiet"]["table_rows"]) == 39
    assert_same(env, "busy") and assert_same(env, "quiet")

    # rows deleted in Snowflake behind the pipeline's back, then quiet windows: the next run finds it
    sf = env.snowflake()
    sf.cursor().execute(f'DELETE FROM ANALYTICS.{env.schema}."QUIET" WHERE "ID" < 10')
    sf.close()
    healed = _cdc(stack, "quiet")
    assert healed.run["table_states"]["quiet"]["mode"] == "full", healed.run["table_states"]  # a new initial copy
    assert assert_same(env, "quiet") == 39
    again = _cdc(stack, "quiet")  # and streaming again
    assert again.run["table_states"]["quiet"]["mode"] == "cdc"
