"""cdc over two source databases in one request, under faults: workers killed while applying batches, and
the reader killed mid-window (after the window is read, after one database's batch was sent) then each
database's run resumed. Each database's table ends equal to its own in MySQL, and each table's stored
position is the server's end once a later window has run: never ahead of what was applied, never lost."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "15"}
TABLE = "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20), balance DECIMAL(12,2), note TEXT NULL)"


def _databases(env: Any) -> list[str]:
    names = []
    for i, suffix in enumerate(("f1", "f2")):
        name = f"{env.database}_{suffix}"
        env.sql(
            f"CREATE DATABASE `{name}`",
            f"USE `{name}`",
            TABLE,
            f"INSERT INTO acct SELECT seq, CONCAT('{suffix}', seq), seq * {10 + i}, NULL FROM seq_1_to_{60 + 20 * i}",
        )
        names.append(name)
    env.sql(f"USE `{env.database}`")
    return names


def _change(env: Any, names: list[str], round_: int) -> None:
    base = 1000 * (round_ + 1)
    for i, name in enumerate(names):
        env.sql(
            f"UPDATE `{name}`.acct SET balance = balance + {round_ + i + 1}, note = 'r{round_}' WHERE id % 3 = {i}",
            f"DELETE FROM `{name}`.acct WHERE id % 7 = {(round_ + i) % 7}",
            f"INSERT INTO `{name}`.acct (id, owner, balance) SELECT {base} + seq, 'new{i}', seq FROM seq_1_to_{20 + i}",
            f"UPDATE `{name}`.acct SET id = {base} + 500 WHERE id = {base} + 1",
        )


def _request(env: Any, **extra: Any) -> dict[str, Any]:
    return {"tables": "acct", "mode": "cdc", "databases": [f"{env.database}_f*"], "database_mapping": "prefix", **extra}


def _position(env: Any, database: str) -> str:
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.cdc import CdcState
    from aurora_replication.ledger.keys import Scope
    from aurora_replication.ledger.store import StateStore

    scope = replace(Scope.of(database, "ANALYTICS", env.schema, "upper"), table_prefix=f"{database}__")
    return str(CdcState(StateStore(load_settings().state_table)).get(scope.key("acct"))["position_key"])


def _server_end(env: Any) -> str:
    from aurora_replication.source.binlog import current_position

    conn = env.db.connect(env.database)
    try:
        return current_position(conn).key()
    finally:
        conn.close()


def _equal(env: Any, names: list[str]) -> None:
    for name in names:
        conn = env.db.connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id, owner, balance, note FROM acct ORDER BY id")
                mysql = [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()
        sf = env.snowflake()
        try:
            cur = sf.cursor()
            table = f"{name}__acct".upper()
            cur.execute(f'SELECT "ID", "OWNER", "BALANCE", "NOTE" FROM "{env.schema}"."{table}" ORDER BY "ID"')
            snowflake = [tuple(r) for r in cur.fetchall()]
        finally:
            sf.close()
        assert snowflake == mysql, name


@pytest.mark.parametrize("step", ["merged", "committed"])
def test_workers_killed_while_applying_two_databases_windows(env, step: str) -> None:
    names = _databases(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run(_request(env), workers=1, timeout=180).ok
    _change(env, names, 0)
    end = _server_end(env)
    crashed: set[str] = set()

    def fault(name: str, message: Any = None) -> None:
        key = threading.current_thread().name
        if name == step and key not in crashed and len(crashed) < 2:
            crashed.add(key)
            raise SystemExit(f"simulated worker death at {name}")

    outcome = stack.run(_request(env), workers=2, fault=fault, timeout=180)
    assert crashed
    assert outcome.ok, {d: r.run.get("table_states") for d, r in outcome.runs.items()}
    assert all(int(r.run["table_states"]["acct"]["chunk_count"]) > 1 for r in outcome.runs.values())
    assert [_position(env, n) for n in names] == [end, end]
    _equal(env, names)


@pytest.mark.parametrize("step, nth", [("cdc_window_read", 1), ("cdc_batch_sent", 2)])
def test_reader_killed_mid_window_of_two_databases_then_resumed(env, step: str, nth: int) -> None:
    from aurora_replication_dev.local.stack import LocalContext

    names = _databases(env)
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run(_request(env), workers=1, timeout=180).ok
    before = [_position(env, n) for n in names]
    _change(env, names, 0)
    seen: list[str] = []

    def fault(name: str, message: Any = None) -> None:
        if name == step:
            seen.append(name)
            if len(seen) == nth:
                raise SystemExit(f"simulated reader death at {name}")

    scheduler = stack.load_module("SchedulerFunction")
    scheduler.services.hooks.fault = fault
    with pytest.raises(SystemExit):
        scheduler.lambda_handler(_request(env, run_id="dead-reader"), LocalContext("s", 300))
    scheduler.services.hooks.fault = lambda *a, **k: None
    children = [f"dead-reader-{n}" for n in names]
    for child in children:  # what was sent is applied; no position moves ahead of it
        stack.drain(child, workers=2, timeout=60, idle_timeout=3)
    assert [_position(env, n) for n in names] == before
    for child in children:
        resumed = stack.run({"resume_run": child}, workers=2, timeout=180)
        assert resumed.ok, resumed.run["table_states"]
    assert all(_position(env, n) > b for n, b in zip(names, before, strict=True))
    _equal(env, names)
    _change(env, names, 1)
    after = stack.run(_request(env), workers=2, timeout=180)
    assert after.ok, {d: r.run.get("table_states") for d, r in after.runs.items()}
    end = _server_end(env)
    assert [_position(env, n) for n in names] == [end, end]
    _equal(env, names)
