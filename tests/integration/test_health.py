"""The health check through its handler: direct invoke, Function URL, failing checks, no secrets."""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal

import boto3

from aurora_replication_dev.local.stack import LocalContext


def test_healthy_after_a_run_and_never_shows_a_secret(env):
    env.sql("CREATE TABLE h (id INT PRIMARY KEY, v VARCHAR(5))", "INSERT INTO h VALUES (1, 'a'), (2, 'b')")
    stack = env.start_stack()
    assert stack.run({"tables": "h", "mode": "full"}, workers=1).ok
    result = stack.invoke("HealthFunction", {})
    assert result["healthy"], result
    table = result["checks"]["replication"]["tables"]["h"]
    assert table["status"] == "published" and table["rows"] == 2 and table["lag_seconds"] >= 0
    assert result["checks"]["dead_letter_queue"]["depth"] == 0
    url_event = json.loads(open("events/health-function-url.json").read())
    response = stack.invoke("HealthFunction", url_event)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["healthy"] is True
    assert env.db.password not in json.dumps(result) + response["body"]


def test_unhealthy_names_the_failing_checks(env):
    env.sql("CREATE TABLE h (id INT PRIMARY KEY)")
    stack = env.start_stack()
    boto3.client("sqs").send_message(QueueUrl=stack.dlq_url, MessageBody="{}")
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId="replication/source")["SecretString"])
    secret["port"] = 1  # nothing listens there
    boto3.client("secretsmanager").put_secret_value(SecretId="replication/source", SecretString=json.dumps(secret))
    url_event = json.loads(open("events/health-function-url.json").read())
    response = stack.invoke("HealthFunction", url_event)
    assert response["statusCode"] == 503
    body = json.loads(response["body"])
    assert set(body["failing"]) == {"mysql", "dead_letter_queue"}
    assert "redrive" in body["checks"]["dead_letter_queue"]["detail"]
    assert secret["password"] not in response["body"]


class _NoScan:
    """The state table as the health check sees it, refusing Scan (it must query what it needs)."""

    def __init__(self, table):
        self._table = table

    def scan(self, **kwargs):
        raise AssertionError("the health check scanned the state table")

    def __getattr__(self, name):
        return getattr(self._table, name)


def test_a_quiet_table_just_validated_is_fresh_and_health_never_scans(env):
    """Lag is freshness (the age of the newest source state the target reflects), not the age of the
    newest row: a table whose rows last changed years ago, validated a moment ago, lags by seconds."""
    env.sql(
        "CREATE TABLE quiet (id INT PRIMARY KEY, v VARCHAR(5), updated_at DATETIME NOT NULL)",
        "INSERT INTO quiet VALUES (1, 'a', '2021-03-01 10:00:00'), (2, 'b', '2021-03-02 10:00:00')",
    )
    stack = env.start_stack()
    module = stack.load_module("HealthFunction")
    module.services.state.table = _NoScan(module.services.state.table)
    for mode in ("full", "auto"):  # a full copy, then an incremental run that finds nothing new
        before = time.time()
        assert stack.run({"tables": "quiet", "mode": mode}, workers=1).ok
        result = module.lambda_handler({}, LocalContext("HealthFunction", 30))
        assert result["healthy"], result
        table = result["checks"]["replication"]["tables"]["quiet"]
        assert table["status"] == "published"
        assert 0 <= table["lag_seconds"] <= time.time() - before + 1, table
        as_of = datetime.fromisoformat(table["source_as_of"].replace("Z", "+00:00")).timestamp()
        assert before - 1 <= as_of <= time.time()
        assert table["newest_row_age_seconds"] > 3 * 365 * 24 * 3600  # the newest row is old: not the lag
    assert "stalest quiet" in result["checks"]["replication"]["detail"]


def test_a_failed_run_keeps_the_freshness_of_the_last_validated_one(env):
    env.sql("CREATE TABLE f (id INT PRIMARY KEY, v VARCHAR(5))", "INSERT INTO f VALUES (1, 'a')")
    stack = env.start_stack()
    assert stack.run({"tables": "f", "mode": "full"}, workers=1).ok
    first = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]["f"]
    from aurora_replication.ledger.keys import Held
    from aurora_replication.ledger.store import StateStore

    state = StateStore(stack.table_name)
    later = Held(env.key("f"), "later-run", Decimal(int(time.time()) + 1), until=0, seconds=0)
    state.note_table_finished(later, {"status": "failed", "validation": "mismatch in 1 range(s)"})
    report = stack.invoke("HealthFunction", {})
    table = report["checks"]["replication"]["tables"]["f"]
    assert table["status"] == "failed" and table["last_run"] == "later-run"
    assert table["source_as_of"] == first["source_as_of"] and table["fresh_run"] == first["fresh_run"]
    assert table["lag_seconds"] >= first["lag_seconds"]
    assert "replication" in report["failing"]
