"""The cdc fault tests' table ``acct``: its seed, a round of changes (updates, deletes, inserts, a key
change), the table's stored position and the server's end (tests/fault/test_cdc_faults.py,
test_cdc_follow_faults.py)."""

from __future__ import annotations

ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_BATCH_ROWS": "15"}


def seed(env) -> None:
    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20), balance DECIMAL(12,2), note TEXT NULL)",
        "INSERT INTO acct SELECT seq, CONCAT('o', seq), seq * 10, IF(seq % 2, NULL, 'n') FROM seq_1_to_100",
    )


def change(env, round_: int = 0) -> None:
    base = 1000 * (round_ + 1)
    env.sql(
        f"UPDATE acct SET balance = balance + {round_ + 1}, note = 'r{round_}' WHERE id % 3 = 0",
        f"DELETE FROM acct WHERE id % 7 = {round_ % 7}",
        f"INSERT INTO acct (id, owner, balance) SELECT {base} + seq, 'new', seq FROM seq_1_to_20",
        f"UPDATE acct SET id = {base} + 500 WHERE id = {base} + 1",
    )


def position(env) -> str:
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.cdc import CdcState
    from aurora_replication.ledger.store import StateStore

    return str(CdcState(StateStore(load_settings().state_table)).get(env.key("acct"))["position_key"])


def server_end(env) -> str:
    from aurora_replication.source.binlog import current_position

    conn = env.db.connect(env.database)
    try:
        return current_position(conn).key()
    finally:
        conn.close()
