"""Cost you can see: a run over the local stack records, per table, plausible figures for every
service (Lambda GB-seconds by function, SQS messages and requests, DynamoDB capacity, Snowflake
statements, elapsed time and bytes staged), and every Snowflake statement of the run's work carries
a query tag naming its run, table and step."""

from __future__ import annotations

import json

from aurora_replication.config import Settings
from aurora_replication.cost import estimate as cost
from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.cost import meter
from aurora_replication.ledger.store import StateStore

PRICES = cost.Prices.from_settings(
    Settings.model_validate(
        {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}
    )
)


def test_a_run_records_plausible_cost_figures_per_table(env, monkeypatch):
    env.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO big SELECT seq, CONCAT('value ', seq) FROM seq_1_to_3000",
        "CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO small SELECT seq, 'x' FROM seq_1_to_10",
    )
    statements: list[tuple[str, str]] = []
    meter.record_statements(statements)  # every meter of the run keeps its statements here
    monkeypatch.setattr(meter, "_recorder", statements)  # and stops when the test ends
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "50"})
    outcome = stack.run({"tables": "big,small", "mode": "full", "chunk_rows": 1000}, workers=2)
    assert outcome.ok, outcome.run["table_states"]

    figures = cost_ledger.get_figures(StateStore(stack.table_name).table, outcome.run_id)
    assert figures == outcome.cost and set(figures) == {"big", "small"}
    big, small = figures["big"], figures["small"]
    for f in (big, small):
        # Lambda: the worker's 2048 MB and the scheduler's 1024 MB (template.yaml) times real seconds
        assert 0 < f["lambda_gb_seconds_worker"] < 2 * 600 and 0 < f["lambda_gb_seconds_scheduler"] < 600
        assert f["lambda_requests_worker"] >= 1 and 0 < f["lambda_requests_scheduler"] <= 1
        # a receive and a delete of its own message, and its share of the scheduler's send (the
        # scheduler sends several tables' messages in one batch)
        assert f["sqs_messages_sent"] >= 1 and f["sqs_messages_received"] >= 1 and f["sqs_requests"] > 2
        assert f["dynamodb_read_units"] > 0 and f["dynamodb_write_units"] > 0
        assert f["snowflake_statements"] > 3 and f["snowflake_seconds"] > 0
    # three chunks, a finalise each: at least one message and one receive each, and their sends
    assert big["sqs_messages_received"] >= 4 and big["sqs_messages_sent"] >= 4
    assert big["lambda_requests_worker"] >= 4
    # the small table's one chunk goes by INSERT and finalises in its own invocation: one message (and its
    # half of the run's one other message: the scheduler's watchdog, pipeline/scheduler._claim)
    assert small["sqs_messages_sent"] == 1 + 1 / 2 and small["lambda_requests_worker"] >= 1
    assert big["snowflake_bytes_staged"] > 1000  # 3 staged files (chunks over SMALL_CHUNK_ROWS)
    assert "snowflake_bytes_staged" not in small  # 10 rows go by INSERT
    assert big["dynamodb_write_units"] > small["dynamodb_write_units"]

    for name in ("big", "small"):
        est = cost.estimate(figures[name], PRICES)
        assert all(v > 0 for v in est.by_service.values()), est
        assert est.total < 0.05  # a few seconds of work: cents at most

    # every statement of the run's work names the run, a table of the run and a step
    ours = [(tag, text) for tag, text in statements if tag != meter.APP_TAG]
    assert len(ours) > 20
    for tag, text in statements:
        body = json.loads(tag)
        assert body["run"] == outcome.run_id and body["table"] in ("big", "small") and body["step"], (tag, text)
    steps = {json.loads(tag)["step"] for tag, _ in statements}
    # (validation runs no statement: both sides of each chunk are in the ledger; Snowflake's side is the
    # chunk's "verify" step)
    assert {"chunk", "stage", "copy", "verify", "publish"} <= steps, steps
    # the tags travel with the statements: not one ALTER SESSION SET QUERY_TAG among them (the only
    # ALTER SESSION sets a long statement's own time limit: target/long_statements.start)
    assert not [text for _, text in statements if text.startswith("ALTER SESSION SET QUERY_TAG")]
    assert all("STATEMENT_TIMEOUT_IN_SECONDS" in text for _, text in statements if text.startswith("ALTER SESSION"))
    assert all(json.loads(tag)["run"] == outcome.run_id for tag, _ in statements)


def test_an_incremental_run_that_moved_nothing_is_flagged_everywhere(env, monkeypatch, capsys):
    from aurora_replication.config import load_settings
    from aurora_replication.cost import reconcile as cost_reconcile
    from aurora_replication.ops import report
    from aurora_replication.services import Services
    from aurora_replication_dev import cli

    env.sql(
        "CREATE TABLE quiet (id INT PRIMARY KEY, v VARCHAR(10), "
        "updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
        "INSERT INTO quiet (id, v, updated) SELECT seq, 'v', '2020-01-01 00:00:00' FROM seq_1_to_20",
    )
    stack = env.start_stack({"WATERMARK_OVERLAP_SECONDS": "0"})
    assert stack.run({"tables": "quiet", "mode": "full"}, workers=1).ok
    statements: list[tuple[str, str]] = []
    monkeypatch.setattr(meter, "_recorder", statements)
    second = stack.run({"tables": "quiet", "mode": "auto"}, workers=1)
    state = second.run["table_states"]["quiet"]
    assert second.ok and state["mode"] == "incremental" and int(state["rows_copied"]) == 0, state
    # planning an incremental run looks at the target's columns: tagged with its table and step
    assert any(json.loads(t) == {**json.loads(t), "table": "quiet", "step": "plan"} for t, _ in statements)

    c = cli.table_costs(second)["quiet"]
    assert c["nothing_changed"] and c["estimated_cost"] > 0 and c["figures"]["snowflake_statements"] > 0
    cli.print_summary(second)
    out = capsys.readouterr().out
    assert "est_cost" in out.splitlines()[0] and "nothing changed: quiet moved no rows" in out

    page = report.build(StateStore(stack.table_name), second.run_id)
    assert '<table id="cost">' in page and "nothing changed" in page

    health = stack.invoke("HealthFunction", {})["checks"]["replication"]
    assert health["nothing_changed"] == ["quiet"]
    assert health["tables"]["quiet"]["cost"]["run"] == second.run_id

    # the emulator has no SNOWFLAKE.ACCOUNT_USAGE views: the reconciliation says so and records nothing
    load_settings.cache_clear()
    services = Services.from_settings(load_settings())
    r = cost_reconcile.reconcile(second.run_id, services)
    assert not r.available and r.detail.startswith("not available"), r.detail
    assert "snowflake_credits_attributed" not in cost_ledger.get_figures(services.state.table, second.run_id)["quiet"]
