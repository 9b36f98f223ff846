"""Cost you can see: the arithmetic from recorded figures, the metering of each service, the query
tag of every statement, and the Snowflake reconciliation's SQL and parsing (docs/cost.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import snowflake.connector
import sqlglot
from botocore.exceptions import ClientError
from fake_dynamodb import FakeTable
from test_target_client import RecordingConnection

from aurora_replication.config import Settings, settings_from
from aurora_replication.cost import estimate as cost
from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.cost import meter
from aurora_replication.cost import reconcile as cost_reconcile
from aurora_replication.cost import settle as metering
from aurora_replication.ops import health_metrics
from aurora_replication.services.queue import sqs_requests
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import cost_sql, tagging
from aurora_replication_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}
PRICES = cost.Prices(
    lambda_gb_second=0.0000166667,
    lambda_million_requests=0.20,
    sqs_million_requests=0.40,
    dynamodb_million_reads=0.125,
    dynamodb_million_writes=0.625,
    snowflake_credit=3.0,
    warehouse_credits_per_hour=1.0,
)
# one table's figures as a run of 3 chunks and a finalise recorded them
RECORDED = {
    "lambda_gb_seconds_worker": 24.0,  # 12 s of a 2048 MB worker
    "lambda_requests_worker": 4.0,
    "lambda_gb_seconds_scheduler": 1.5,
    "lambda_requests_scheduler": 0.5,
    "sqs_messages_sent": 4.0,
    "sqs_messages_received": 4.0,
    "sqs_requests": 9.0,
    "dynamodb_read_units": 12.5,
    "dynamodb_write_units": 20.0,
    "snowflake_statements": 30.0,
    "snowflake_seconds": 36.0,
    "snowflake_bytes_staged": 123456.0,
}


# ---- arithmetic ------------------------------------------------------------------------------------


def test_the_estimate_of_recorded_figures_is_figures_times_prices():
    est = cost.estimate(RECORDED, PRICES)
    assert est.by_service["Lambda"] == pytest.approx(25.5 * 0.0000166667 + 4.5 * 0.20 / 1e6)
    assert est.by_service["SQS"] == pytest.approx(9 * 0.40 / 1e6)
    assert est.by_service["DynamoDB"] == pytest.approx(12.5 * 0.125 / 1e6 + 20 * 0.625 / 1e6)
    # 36 s on an X-Small (1 credit per hour) at $3 a credit
    assert est.snowflake_credits == pytest.approx(0.01) and est.snowflake_basis == "elapsed"
    assert est.by_service["Snowflake"] == pytest.approx(0.03)
    assert est.total == pytest.approx(sum(est.by_service.values()))
    assert cost.lambda_gb_seconds(RECORDED) == {"scheduler": 1.5, "worker": 24.0}


def test_attributed_credits_replace_the_elapsed_estimate_and_the_warehouse_size_scales_it():
    reconciled = {**RECORDED, "snowflake_credits_attributed": 0.002, "reconciled_from": cost_sql.ATTRIBUTION_VIEW}
    est = cost.estimate(reconciled, PRICES)
    assert est.snowflake_basis == "attributed" and est.by_service["Snowflake"] == pytest.approx(0.006)
    medium = cost.Prices.from_settings(settings_from({**REQUIRED, "SNOWFLAKE_WAREHOUSE_SIZE": "MEDIUM"}))
    assert medium.warehouse_credits_per_hour == 4
    assert cost.estimate(RECORDED, medium).snowflake_credits == pytest.approx(0.04)


def test_prices_come_from_named_settings_with_documented_defaults():
    env = {"PRICE_SNOWFLAKE_CREDIT": "2.5", "PRICE_LAMBDA_GB_SECOND": "0.0000133334"}
    p = cost.Prices.from_environ(env)
    assert p.snowflake_credit == 2.5 and p.lambda_gb_second == 0.0000133334 and p.sqs_million_requests == 0.40
    with pytest.raises(Exception, match="PRICE_SQS_MILLION_REQUESTS"):
        cost.Prices.from_environ({"PRICE_SQS_MILLION_REQUESTS": "-1"})


def test_the_templates_price_parameters_match_the_settings_defaults():
    t = Template(ROOT / "template.yaml")
    env = t.doc["Globals"]["Function"]["Environment"]["Variables"]
    params = t.doc["Parameters"]
    for name in cost.PRICE_FIELDS:
        info = Settings.model_fields[name]
        default = params[env[str(info.alias)]["Ref"]]["Default"]
        if isinstance(info.default, float):
            assert math.isclose(float(default), info.default), name
        else:
            assert default == info.default, name
    assert params["SnowflakeWarehouseSize"]["AllowedValues"] == list(cost.CREDITS_PER_HOUR)


def test_the_dashboard_shows_estimated_cost_per_table_and_service():
    t = Template(ROOT / "template.yaml")
    dashboard = next(r for r in t.doc["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0]
    assert 'Service,service,table} MetricName=\\"EstimatedCost\\"' in body
    assert "NothingChangedRuns" in body


def test_nothing_changed_is_an_incremental_or_cdc_run_that_moved_no_rows_and_cost_something():
    assert cost.nothing_changed("incremental", 0, 0.0001)
    assert cost.nothing_changed("cdc", None, 0.0001)
    assert not cost.nothing_changed("incremental", 5, 0.0001)
    assert not cost.nothing_changed("full", 0, 0.0001)  # a full copy of an empty table is not idle
    assert not cost.nothing_changed("incremental", 0, 0.0)
    run = {
        "table_states": {"a": {"mode": "incremental", "rows_copied": 0}, "b": {"mode": "incremental", "rows_copied": 3}}
    }
    costs = cost.run_costs(run, {"a": RECORDED, "b": RECORDED}, PRICES)
    assert costs["a"]["nothing_changed"] and not costs["b"]["nothing_changed"]
    assert costs["a"]["estimated_cost"] == pytest.approx(cost.estimate(RECORDED, PRICES).total, abs=1e-8)


def test_money_shows_a_small_runs_cost():
    assert cost.money(0.0000423) == "$0.0000423"
    assert cost.money(0.0123) == "$0.0123"
    assert cost.money(12.5) == "$12.50"
    assert cost.money(0) == "$0"


def test_estimated_cost_metrics_carry_table_and_service_dimensions():
    gauges = cost.cost_gauges({"orders": RECORDED}, PRICES)
    assert {g.dimensions["Service"] for g in gauges} == set(cost.SERVICES)
    assert all(g.name == "EstimatedCost" and g.dimensions["table"] == "orders" for g in gauges)
    assert sum(g.value for g in gauges) == pytest.approx(cost.estimate(RECORDED, PRICES).total)
    report = {"checks": {"replication": {"tables": {"a": {"cost": {"nothing_changed": True}}, "b": {"cost": {}}}}}}
    idle = [g for g in health_metrics.gauges(report) if g.name == "NothingChangedRuns"]
    assert [(g.dimensions, g.value) for g in idle] == [({"table": "a"}, 1.0)]


# ---- attribution of an invocation ----------------------------------------------------------------


def test_an_invocations_gb_seconds_are_shared_by_the_time_each_unit_took():
    assert metering.shares(10.0, [1.0, 3.0]) == [2.5, 7.5]
    assert metering.shares(1.0, [1.0, 3.0]) == [1.0, 3.0]  # never less than each unit took
    assert metering.shares(4.0, [0.0, 0.0]) == [2.0, 2.0]
    a = meter.Meter("worker", "r1", "orders", "chunk")
    a.add("dynamodb_write_units", 3)
    a.add("snowflake_seconds", 2.0)
    b = meter.Meter("worker", "r1", "items", "finalise")
    b.add("dynamodb_read_units", 1.5)
    orphan = meter.Meter("worker")  # a message that did not parse: nowhere to put it
    orphan.add("dynamodb_read_units", 1)
    out = metering.attribute([a, b, orphan], [3.0, 1.0, 0.0], 4.0, 2048, "worker", sqs_requests=2.0, received=3)
    orders, items = out["r1"]["orders"], out["r1"]["items"]
    assert orders["lambda_gb_seconds_worker"] == pytest.approx(6.0)  # 3 s x 2 GB
    assert items["lambda_gb_seconds_worker"] == pytest.approx(2.0)
    assert orders["lambda_requests_worker"] == pytest.approx(1 / 3) and orders["sqs_requests"] == pytest.approx(2 / 3)
    assert orders["sqs_messages_received"] == pytest.approx(1.0)
    assert orders["dynamodb_write_units"] == 3 + metering.LEDGER_WRITE_UNITS  # and the cost item's own write
    assert items["dynamodb_read_units"] == 1.5 and orders["snowflake_seconds"] == 2.0
    assert set(out) == {"r1"}


def test_a_schedulers_unattributed_figures_are_spread_over_its_tables():
    with meter.metered("scheduler") as live:
        meter.set_run("r2")
        meter.add("dynamodb_write_units", 4)  # the run item, before any table
        meter.focus("a", "plan")
        meter.add("sqs_messages_sent", 2)
        assert meter.current_tag() == meter.query_tag("r2", "a", "plan")
        meter.focus(None)
        assert json.loads(meter.current_tag() or "")["table"] == "*"
    out = metering.attribute([live], [1.0], 1.0, 1024, "scheduler", tables={0: ["a", "b"]})
    assert out["r2"]["a"]["dynamodb_write_units"] == 2 + 1 and out["r2"]["b"]["dynamodb_write_units"] == 2 + 1
    assert out["r2"]["a"]["sqs_messages_sent"] == 2 and "sqs_messages_sent" not in out["r2"]["b"]
    assert out["r2"]["a"]["lambda_gb_seconds_scheduler"] == pytest.approx(0.5)


def test_cost_items_add_up_across_units_and_duplicates_and_reconciliation_sets():
    table = FakeTable("t")
    cost_ledger.add_figures(table, "r1", "orders", {"sqs_requests": 1.0, "snowflake_seconds": 0.5})
    cost_ledger.add_figures(table, "r1", "orders", {"sqs_requests": 2.0})  # a redelivered duplicate: it was paid
    cost_ledger.set_reconciled(table, "r1", "orders", 0.25, cost_sql.ATTRIBUTION_VIEW)
    cost_ledger.set_reconciled(table, "r1", "orders", 0.5, cost_sql.ATTRIBUTION_VIEW)  # a later, fuller reading
    got = cost_ledger.get_figures(table, "r1")["orders"]
    assert got["sqs_requests"] == 3 and got["snowflake_seconds"] == 0.5
    assert got["snowflake_credits_attributed"] == 0.5 and got["reconciled_from"] == cost_sql.ATTRIBUTION_VIEW


# ---- measuring each service ----------------------------------------------------------------------


class CapacityTable:
    """A boto3 Table stand-in that answers with ConsumedCapacity, as DynamoDB does when asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("get_item", kw))
        return {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}} if "ReturnConsumedCapacity" in kw else {}

    def update_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("update_item", kw))
        if kw.get("ConditionExpression") == "fails":
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, "UpdateItem")
        return {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}

    def batch_writer(self) -> str:
        return "writer"


def test_state_calls_ask_for_their_consumed_capacity_only_while_metered():
    raw = CapacityTable()
    t = meter.MeteredTable(raw)
    t.get_item(Key={"pk": "x"})
    assert "ReturnConsumedCapacity" not in raw.calls[-1][1]  # no meter, no change to the call
    assert t.batch_writer() == "writer"
    with meter.metered("worker", "r1", "orders") as m:
        t.get_item(Key={"pk": "x"})
        t.update_item(Key={"pk": "x"})
        with pytest.raises(ClientError):
            t.update_item(Key={"pk": "x"}, ConditionExpression="fails")
    assert raw.calls[-1][1]["ReturnConsumedCapacity"] == "TOTAL"
    assert m.by_table["orders"] == {"dynamodb_read_units": 0.5, "dynamodb_write_units": 2.0}


def test_an_sqs_batch_is_billed_per_64_kb_of_payload():
    assert sqs_requests(["x" * 100] * 10) == 1
    assert sqs_requests(["x" * 40_000, "y" * 40_000]) == 2
    assert sqs_requests([""]) == 1


def test_every_statement_of_a_run_carries_a_tag_naming_run_table_and_step():
    conn = RecordingConnection()
    recorded: list[tuple[str, str]] = []
    meter.record_statements(recorded)
    try:
        with meter.metered("worker") as m:
            meter.set_unit("20261201T000000Z-abc123", "orders", "chunk")
            target.execute(conn, "SELECT 1")
            with meter.scope(step="copy"):
                target.execute(conn, "COPY INTO x")
                target.execute(conn, "COPY INTO y")
            target.execute(conn, "SELECT 2")
    finally:
        meter.record_statements(None)
    target.execute(conn, "SELECT 3")  # outside the run's work: the application's tag
    sent = [s for s, _ in conn.statements]
    # each statement carries its own tag to Snowflake: no ALTER SESSION round trips at all
    assert sent == ["SELECT 1", "COPY INTO x", "COPY INTO y", "SELECT 2", "SELECT 3"]
    tags = [p["QUERY_TAG"] for p in conn.statement_params if p]
    assert len(tags) == 5 and tags[-1] == "aurora-snowflake-replication"
    assert [json.loads(t)["step"] for t in tags[:-1]] == ["chunk", "copy", "copy", "chunk"]
    assert [t for t, _ in recorded] == tags[:-1]  # what the meter records is what was sent
    for tag, text in recorded:
        body = json.loads(tag)
        assert body["run"] == "20261201T000000Z-abc123" and body["table"] == "orders" and body["step"], text
    assert m.by_table["orders"]["snowflake_statements"] == 4
    assert m.by_table["orders"]["snowflake_seconds"] >= 0


def test_the_query_tag_of_any_table_name_fits_snowflakes_limit_and_travels_unchanged():
    nasty = "o'rders\\%_\"\n𝄞" + "x" * 3000
    tag = meter.query_tag("r1", nasty, "copy")
    assert len(tag) <= meter.TAG_LIMIT and json.loads(tag)["run"] == "r1" and json.loads(tag)["step"] == "copy"
    conn = RecordingConnection()
    with meter.metered("worker", "r1", nasty, "copy"):
        target.execute(conn, "SELECT 1")
    assert conn.statement_params == [{"QUERY_TAG": tag}]  # a statement parameter: no SQL literal to escape


def test_the_emulator_accepts_a_string_query_tag_and_nothing_more(monkeypatch):
    from fakesnow import transforms

    from aurora_replication_dev.local import snowflake_emulator

    monkeypatch.setattr(transforms, "alter_session", transforms.alter_session)
    snowflake_emulator._patch_query_tag()
    ok = sqlglot.parse_one(
        "ALTER SESSION SET QUERY_TAG = " + cost_sql.string_literal(meter.query_tag("r", "t", "s")), read="snowflake"
    )
    assert transforms.alter_session(ok) is transforms.SUCCESS_NOP
    with pytest.raises(NotImplementedError):
        transforms.alter_session(sqlglot.parse_one("ALTER SESSION SET QUERY_TAG = 5", read="snowflake"))
    with pytest.raises(NotImplementedError):
        transforms.alter_session(sqlglot.parse_one("ALTER SESSION SET TIMEZONE = 'UTC'", read="snowflake"))


def test_steps_name_the_step_in_scope():
    from aurora_replication.pipeline.steps import Steps

    tracer = SimpleNamespace(provider=SimpleNamespace(in_subsegment=lambda name: _Null()))
    with meter.metered("worker", "r1", "orders", "chunk"):
        with Steps(tracer)("stage"):
            assert json.loads(meter.current_tag() or "")["step"] == "stage"
        assert json.loads(meter.current_tag() or "")["step"] == "chunk"


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


# ---- the Snowflake reconciliation ------------------------------------------------------------------


def test_the_reconciliation_sql_reads_the_usage_views_by_bound_run_id():
    for statement in (cost_sql.attributed_credits(), cost_sql.history_seconds()):
        parsed = sqlglot.parse_one(statement.replace("%s", "NULL"), read="snowflake")
        assert parsed is not None and statement.count("%s") == 2
        assert "TRY_PARSE_JSON(query_tag):run::VARCHAR = %s" in statement
    assert cost_sql.ATTRIBUTION_VIEW in cost_sql.attributed_credits()
    assert "credits_attributed_compute" in cost_sql.attributed_credits()
    assert cost_sql.HISTORY_VIEW in cost_sql.history_seconds() and "execution_time" in cost_sql.history_seconds()


def test_the_reconciliations_rows_become_credits_per_table():
    assert cost.credits_from_attribution([("orders", 10, 0.004), ("items", 2, None), (None, 1, 9.0)]) == {
        "orders": 0.004,
        "items": 0.0,
    }
    # 1,800 s on a Small (2 credits/h) and 360 s on an X-Small (1 credit/h)
    rows = [("orders", "Small", 30, 1800.0), ("orders", "X-Small", 3, 360), ("x", "Unknown", 1, 5)]
    assert cost.credits_from_history(rows) == pytest.approx({"orders": 1.1})


class _Services:
    def __init__(self, run: dict[str, Any]) -> None:
        self.table = FakeTable("t")
        self.state = SimpleNamespace(get_run=lambda run_id: run, table=self.table)


def _failing(errno: int = 2003) -> Any:
    class Conn(RecordingConnection):
        def cursor(self) -> Any:
            cur = super().cursor()

            def execute(statement: str, params: Any = None, **kwargs: Any) -> None:
                if "ACCOUNT_USAGE" in statement:
                    raise snowflake.connector.errors.ProgrammingError(
                        msg="does not exist or not authorized", errno=errno
                    )

            cur.execute = execute
            return cur

    return Conn()


def test_without_the_usage_views_the_reconciliation_says_not_available():
    services = _Services({"sk": "RUN", "created_at": 1_800_000_000})
    r = cost_reconcile.reconcile("r1", services, conn=_failing())  # type: ignore[arg-type]
    assert not r.available and r.detail.startswith("not available") and "QUERY_ATTRIBUTION_HISTORY" in r.detail
    assert cost_ledger.get_figures(services.table, "r1") == {}


def test_the_reconciliation_records_attributed_credits_and_falls_back_to_query_history():
    services = _Services({"sk": "RUN", "created_at": 1_800_000_000})
    conn = RecordingConnection({cost_sql.attributed_credits(): [("orders", 12, 0.0042)]})
    r = cost_reconcile.reconcile("r1", services, conn=conn)  # type: ignore[arg-type]
    assert r.available and r.credits == {"orders": 0.0042} and r.source == cost_sql.ATTRIBUTION_VIEW
    statement, params = conn.statements[-1]
    assert "QUERY_ATTRIBUTION_HISTORY" in statement and params == (1_800_000_000 - 3600, "r1")
    assert cost_ledger.get_figures(services.table, "r1")["orders"]["snowflake_credits_attributed"] == 0.0042

    lagging = RecordingConnection({cost_sql.history_seconds(): [("orders", "X-Small", 12, 36.0)]})
    r = cost_reconcile.reconcile("r1", services, conn=lagging)  # type: ignore[arg-type]
    assert r.source == cost_sql.HISTORY_VIEW and r.credits == pytest.approx({"orders": 0.01})

    nothing = cost_reconcile.reconcile("r1", services, conn=RecordingConnection())  # type: ignore[arg-type]
    assert not nothing.available and nothing.detail.startswith("not yet available")
    assert tagging  # the module every statement passes through


def test_statements_inside_an_explicit_transaction_carry_their_tags_and_nothing_else_runs_there():
    conn = RecordingConnection()
    with meter.metered("worker", "r1", "orders", "reconcile"):
        t = target.Target(conn, "STAGE")  # type: ignore[arg-type]
        with t.transaction():
            with meter.scope(step="other"):
                target.execute(conn, "UPDATE x SET a = 1")
        target.execute(conn, "SELECT 1")
    sent = [s for s, _ in conn.statements]
    assert sent == ["BEGIN", "UPDATE x SET a = 1", "COMMIT", "SELECT 1"]  # no ALTER SESSION in it
    steps = [json.loads(p["QUERY_TAG"])["step"] for p in conn.statement_params if p]
    assert steps == ["reconcile", "other", "reconcile", "reconcile"]


def test_estimated_cost_is_one_emf_record_per_table_and_service(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "aurora-snowflake-replication")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    cost.publish(cost.cost_gauges({"orders": {"sqs_requests": 3.0}}, PRICES), namespace="AuroraSnowflakeReplication")
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["table", "Service", "service"]]
    assert line["table"] == "orders" and line["Service"] == "SQS" and line["EstimatedCost"] == [pytest.approx(1.2e-6)]
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    cost.publish(cost.cost_gauges({"orders": {"sqs_requests": 3.0}}, PRICES))
    assert capsys.readouterr().out == ""
