"""Least privilege and failure semantics, proven by running.

The local stack is the template created as a CloudFormation stack in moto; each handler runs with
its own function's role (assumed at its cold start, as Lambda hands it over) and moto checks every
call against that role's policies. The process's ambient credentials may do nothing here, so a
client made after a cold start, or a call the template does not allow, fails the run.
"""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path

import pytest

from aurora_replication_dev.local.template import Template

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MAX_RECEIVES = 5


def own_statements(stack, function: str) -> list[dict]:
    """The statements the template writes for ``function`` itself (not SAM's policy templates nor
    AWS's managed policies), as IAM holds them: every reference resolved."""
    policies = Template(ROOT / "template.yaml").resource(function)["Policies"]
    iam = stack.session.client("iam")
    role = stack.functions[function].role_arn.rsplit("/", 1)[-1]
    names = set(iam.list_role_policies(RoleName=role)["PolicyNames"])
    statements: list[dict] = []
    for i, policy in enumerate(policies):
        written = "Statement" in policy or "Fn::If" in policy
        if written and f"{function}RolePolicy{i}" in names:
            document = iam.get_role_policy(RoleName=role, PolicyName=f"{function}RolePolicy{i}")["PolicyDocument"]
            document = ast.literal_eval(document) if isinstance(document, str) else document
            statements.extend(document["Statement"])
    return statements


def granted(statements: list[dict]) -> set[tuple[str, str]]:
    pairs = set()
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        pairs |= {(a, r) for a in actions for r in resources}
    return pairs


def test_each_handler_runs_as_its_role_and_a_failed_chunk_is_retried_within_seconds(env):
    env.sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10), updated_at DATETIME(6) NOT NULL)",
        "INSERT INTO t SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_40",
        "CREATE TABLE u (id INT PRIMARY KEY)",
        "INSERT INTO u SELECT seq FROM seq_1_to_5",
    )
    stack = env.start_stack({"REDELIVERY_BASE_SECONDS": "1", "REDELIVERY_MAX_SECONDS": "4"}, ambient="none")
    assert stack.provisioned_by == "cloudformation"
    attempts: dict[str, list[float]] = {"t1": [], "u0": []}
    lock = threading.Lock()

    def fault(step, message=None):
        if step != "extracted":
            return
        key = f"{message.plan.table}{message.chunk_id}"
        if key in attempts:
            with lock:
                attempts[key].append(time.monotonic())
                n = len(attempts[key])
            if key == "u0" or n <= 2:  # t's chunk 1 fails twice, then works; u's chunk 0 never does
                raise RuntimeError(f"simulated failure of {key} (attempt {n})")

    outcome = stack.run(
        {"tables": "t,u", "mode": "full", "chunk_rows": 10}, workers=2, fault=fault, idle_timeout=10, timeout=600
    )
    states = outcome.run["table_states"]
    assert states["t"]["status"] == "published", states
    from compare import assert_same

    assert assert_same(env, "t") == 40
    # the transient failure came back in seconds (backoff from 1 s, at most 4 s), not after the
    # queue's 5400 s visibility timeout, and no failed attempt was a failed invocation
    gaps = [b - a for a, b in zip(attempts["t1"], attempts["t1"][1:], strict=False)]
    assert len(attempts["t1"]) == 3 and max(gaps) < 60, gaps
    assert stack.function_errors.get("WorkerFunction", []) == []
    # the poison chunk was received maxReceiveCount times, then moved to the DLQ
    assert len(attempts["u0"]) == MAX_RECEIVES and outcome.dlq_messages == 1
    assert states["u"].get("dead_lettered") == {"0"}

    # an incremental run: the scheduler reads the target's columns (schema evolution), workers MERGE
    env.sql("UPDATE t SET v = 'changed', updated_at = NOW(6) WHERE id <= 3")
    again = stack.run({"tables": "t", "mode": "incremental"}, workers=2, timeout=600)
    assert again.run["table_states"]["t"]["status"] == "published", again.run["table_states"]
    assert assert_same(env, "t") == 40

    health = stack.invoke("HealthFunction", {})
    dlq = health["checks"]["dead_letter_queue"]
    assert dlq["depth"] == 1 and dlq["tables"] == [f"u (run {outcome.run_id})"], dlq  # the peek worked

    assert stack.denied() == [], stack.denied()  # no call of any handler (nor of a stray client) refused
    for function in ("SchedulerFunction", "WorkerFunction", "HealthFunction"):
        used = stack.used(function)
        assert used, f"{function} made no call under its role"
        unused = granted(own_statements(stack, function)) - used
        assert not unused, f"{function}'s role grants what it never used: {sorted(unused)}"
    chunk_queue, dlq_arn = (
        stack.cloudformation.outputs["ChunkQueueArn"],
        stack.cloudformation.outputs["DeadLetterQueueArn"],
    )
    assert ("sqs:ChangeMessageVisibility", chunk_queue) in stack.used("WorkerFunction")
    assert ("sqs:ChangeMessageVisibility", dlq_arn) in stack.used("HealthFunction")


def test_a_permission_missing_from_the_template_fails_the_run(env, tmp_path):
    """The template as it was: health may receive from the DLQ but not change the visibility of what
    it received, so its DLQ check fails with AccessDenied exactly when the DLQ has messages."""
    broken = tmp_path / "template"
    broken.mkdir()
    for part in ("functions", "layers"):
        (broken / part).symlink_to(ROOT / part)
    text = (ROOT / "template.yaml").read_text()
    grant = "Action: [sqs:ReceiveMessage, sqs:ChangeMessageVisibility]"
    assert grant in text
    (broken / "template.yaml").write_text(text.replace(grant, "Action: [sqs:ReceiveMessage]"))
    env.sql("CREATE TABLE d (id INT PRIMARY KEY)", "INSERT INTO d VALUES (1)")
    stack = env.start_stack(template=broken / "template.yaml")
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody='{"run_id": "r", "plan": {"table": "d"}}')
    health = stack.invoke("HealthFunction", {})
    assert "dead_letter_queue" in health["failing"]
    assert "AccessDenied" in health["checks"]["dead_letter_queue"]["detail"] or "403" in str(health)
    refused = {(d.action, d.resource) for d in stack.denied("HealthFunction")}
    assert ("sqs:ChangeMessageVisibility", stack.cloudformation.outputs["DeadLetterQueueArn"]) in refused


def test_an_rds_managed_secret_with_the_endpoint_from_template_parameters(env):
    """RDS's own secret for a cluster holds only username and password; SourceHost, SourcePort and
    SourceDatabase give the rest, through the functions' environment as the template sets it."""
    env.sql("CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(5))", "INSERT INTO r VALUES (1, 'a'), (2, 'b')")
    secret = {"username": env.db.user, "password": env.db.password}
    parameters = {"SourceHost": "127.0.0.1", "SourcePort": str(env.db.port), "SourceDatabase": env.database}
    stack = env.start_stack(source_secret=secret, parameters=parameters)
    assert stack.functions["WorkerFunction"].env["SOURCE_HOST"] == "127.0.0.1"
    assert os.environ["SOURCE_DBNAME"] == env.database
    outcome = stack.run({"tables": "r", "mode": "full"}, workers=1)
    assert outcome.ok, outcome.run["table_states"]
