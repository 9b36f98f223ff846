"""A column version filling during a cdc stream, under faults: the reader killed after it staged the
window's pages (before the window was defined), then the run resumed; and a worker killed after it wrote
a page into the target (before the window committed and moved the cursor), its finalise redelivered. The
fill goes on from where the committed cursor is and the table converges to MySQL's values."""

from __future__ import annotations

import threading

import pytest

from compare import assert_same

ENV = {"IDEMPOTENCY_ENABLED": "false", "CDC_FILL_PAGE_ROWS": "10", "CDC_FILL_ROWS": "20"}


def _versions(env) -> dict:
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.cdc import CdcState
    from aurora_replication.services import Services

    services = Services.from_settings(load_settings())
    return (CdcState(services.state).get(services.endpoints.scope().key("acct")) or {}).get("column_versions") or {}


@pytest.mark.parametrize("where", ["reader", "worker"])
def test_killed_while_a_column_version_fills_then_converges(env, where):
    from aurora_replication_dev.local.stack import LocalContext

    env.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, owner VARCHAR(20), balance INT)",
        "INSERT INTO acct SELECT seq, CONCAT('o', seq), seq FROM seq_1_to_50",
    )
    stack = env.start_stack(ENV, visibility_timeout=5)
    assert stack.run({"tables": "acct", "mode": "cdc"}, workers=1).ok
    env.sql(
        "UPDATE acct SET balance = 100 + id WHERE id <= 12",  # before the ALTER: INT images
        "ALTER TABLE acct MODIFY balance VARCHAR(12)",
        "UPDATE acct SET balance = 'five hundred' WHERE id = 20",
        "DELETE FROM acct WHERE id = 7",
    )
    if where == "reader":

        def die(name: str, message=None) -> None:
            if name == "cdc_fill_staged":
                raise SystemExit("simulated reader death after staging the fill's pages")

        scheduler = stack.load_module("SchedulerFunction")
        scheduler.services.hooks.fault = die
        with pytest.raises(SystemExit):
            scheduler.lambda_handler({"tables": "acct", "mode": "cdc", "run_id": "dead-filler"}, LocalContext("s", 300))
        assert _versions(env)["balance"]["cursor"] is None  # nothing committed
        outcome = stack.run({"resume_run": "dead-filler"}, workers=2, timeout=180)
    else:
        crashed: set[str] = set()

        def fault(name: str, message=None) -> None:
            if name == "cdc_fill_applied" and not crashed:
                crashed.add(threading.current_thread().name)
                raise SystemExit("simulated worker death after a page was written")

        outcome = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, fault=fault, timeout=180)
        assert crashed
    assert outcome.ok, outcome.run["table_states"]
    env.sql("UPDATE acct SET balance = 'late' WHERE id = 45")  # a row not filled yet, changed meanwhile
    for _ in range(5):  # 49 rows, 20 per window
        run = stack.run({"tables": "acct", "mode": "cdc"}, workers=2, timeout=180)
        assert run.ok, run.run["table_states"]
        if _versions(env)["balance"]["filled"]:
            break
    assert _versions(env)["balance"]["filled"]
    assert assert_same(env, "acct", {"balance": "BALANCE__V2"}) == 49
    status = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["acct"]
    assert [(c["change"], c["column"]) for c in status["schema_changes"]] == [("column version added", "BALANCE__V2")]
