"""The sample events in events/ run through `replicate invoke`, as `sam local invoke -e` would."""

from __future__ import annotations

import json
from pathlib import Path

from aurora_replication_dev import cli

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_rotation_create_secret_sample_runs_against_the_local_secret(env, capsys):
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main(["--home", str(env.home), "invoke", "rotation", str(EVENTS / "rotation-create.json"), *urls]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :]) == {"step": "createSecret", "result": "created"}
    assert env.db.password not in out  # neither the current nor the new password is printed


def test_health_sample_events_run(env, capsys):
    urls = ["--source", env.source_url, "--target", env.target_url]
    # a direct invoke answers with the report; a Function URL request with an HTTP response around it
    for name, answer in (("health.json", '"checks"'), ("health-function-url.json", '"statusCode"')):
        code = cli.main(["--home", str(env.home), "invoke", "health", str(EVENTS / name), *urls])
        out = capsys.readouterr().out
        assert code == 0, out
        assert answer in out, out


def test_history_sample_keeps_every_version_of_orders(env):
    """events/scheduler-history.json: cdc with orders in history mode, customers as plain rows."""
    env.sql(
        "CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20) NOT NULL)",
        "INSERT INTO orders VALUES (1, 'new'), (2, 'new')",
        "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO customers VALUES (1, 'ada')",
    )
    request = json.loads((EVENTS / "scheduler-history.json").read_text())
    stack = env.start_stack()
    first = stack.run(request, workers=2, timeout=180)
    assert first.ok and first.run_id == "sample-history", first.run["table_states"]
    env.sql("UPDATE orders SET status = 'paid' WHERE id = 1", "DELETE FROM orders WHERE id = 2")
    second = stack.run({k: v for k, v in request.items() if k != "run_id"}, workers=2, timeout=180)
    assert second.ok, second.run["table_states"]
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute('SELECT "ID", "STATUS", "_ASR_OP", "_ASR_IS_CURRENT" FROM "ORDERS" ORDER BY "ID", "_ASR_POS"')
        assert [tuple(r) for r in cur.fetchall()] == [
            (1, "new", "I", False),
            (1, "paid", "U", True),
            (2, "new", "I", False),
            (2, "new", "D", False),
        ]
        cur.execute('SELECT "ID", "STATUS" FROM "ORDERS_CURRENT"')
        assert [tuple(r) for r in cur.fetchall()] == [(1, "paid")]
        cur.execute('SELECT "ID", "NAME" FROM "CUSTOMERS"')  # the other table: plain rows
        assert [tuple(r) for r in cur.fetchall()] == [(1, "ada")]
    finally:
        conn.close()
