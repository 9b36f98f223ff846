"""The health check through its handler: direct invoke, Function URL, failing checks, no secrets."""

from __future__ import annotations

import json

import boto3


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
