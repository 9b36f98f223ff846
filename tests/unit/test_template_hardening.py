"""The template's hardening promises: tags, encryption, alarms wired to the topic, safe deployments."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aurora_replication_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"project", "environment", "team", "cost-centre"}
# CloudFormation types without a Tags property (or tagged only through the stack's tags)
UNTAGGABLE = {
    "AWS::Serverless::LayerVersion",
    "AWS::SNS::Subscription",
    "AWS::CloudWatch::Dashboard",
    "AWS::Lambda::Permission",
    "AWS::SecretsManager::RotationSchedule",
}


def _template() -> Template:
    return Template(ROOT / "template.yaml")


def test_every_taggable_resource_has_the_cost_allocation_tags():
    t = _template()
    assert TAGS <= set(t.doc["Globals"]["Function"]["Tags"])
    for name, res in t.doc["Resources"].items():
        if res["Type"] in UNTAGGABLE or res["Type"] == "AWS::Serverless::Function":
            continue
        keys = {tag["Key"] for tag in res["Properties"].get("Tags", [])}
        assert TAGS <= keys, f"{name} lacks tags {TAGS - keys}"


def test_queues_table_and_topic_are_encrypted_with_the_cmk_when_given():
    t = _template()
    cmk = {"Fn::If": ["UseCmk", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}
    for name, res in t.doc["Resources"].items():
        if res["Type"] == "AWS::SQS::Queue":
            assert res["Properties"]["KmsMasterKeyId"] == cmk, name
            assert res["Properties"]["SqsManagedSseEnabled"] == {"Fn::If": ["UseCmk", {"Ref": "AWS::NoValue"}, True]}
    sse = t.resource("StateTable")["SSESpecification"]
    assert sse["SSEEnabled"] is True and sse["SSEType"] == "KMS" and sse["KMSMasterKeyId"] == cmk
    topic = t.resource("AlarmTopic")
    assert topic["KmsMasterKeyId"] == {"Fn::If": ["UseCmk", {"Ref": "KmsKeyArn"}, {"Ref": "AlarmTopicKey"}]}


def test_every_alarm_notifies_the_topic():
    t = _template()
    alarms = {n: r for n, r in t.doc["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {
        "DeadLetterAlarm",
        "WorkerErrorsAlarm",
        "WorkerThrottlesAlarm",
        "OldestChunkMessageAlarm",
        "ReplicationLagAlarm",
        "StalledRunsAlarm",
    } <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_worker_and_scheduler_deploy_through_an_alias_that_alarms_roll_back():
    t = _template()
    for function, alarms in (
        ("WorkerFunction", {"WorkerErrorsAlarm", "WorkerThrottlesAlarm"}),
        ("SchedulerFunction", {"SchedulerErrorsAlarm"}),
    ):
        props = t.resource(function)
        assert props["AutoPublishAlias"] == "live"
        pref = props["DeploymentPreference"]
        assert pref["Type"] == {"Ref": "DeploymentType"}
        assert {a["Ref"] for a in pref["Alarms"]} == alarms
        for alarm in alarms:  # the alarms watch the alias that receives the new version's traffic
            dims = {d["Name"]: d["Value"] for d in t.resource(alarm)["Dimensions"]}
            assert dims["Resource"] == {"Fn::Sub": f"${{{function}}}:live"}


def test_every_function_runs_in_the_vpc_when_subnets_are_given():
    t = _template()
    vpc = t.doc["Globals"]["Function"]["VpcConfig"]
    assert vpc["Fn::If"][0] == "UseVpc"
    for name, res in t.doc["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function":
            assert "VpcConfig" not in res["Properties"], f"{name} overrides the VPC configuration"
    assert t.doc["Resources"]["VpcFlowLog"]["Condition"] == "HasVpcId"


# actions without resource-level permissions, where IAM requires Resource "*"
WILDCARD_ONLY_ACTIONS = {"secretsmanager:GetRandomPassword"}


def _statements(policy):
    """Statements of one entry of a function's Policies, through Fn::If at either level."""
    if isinstance(policy, dict) and "Fn::If" in policy:
        for branch in policy["Fn::If"][1:]:
            yield from _statements(branch)
        return
    if not isinstance(policy, dict) or "Statement" not in policy:
        return  # a SAM policy template (DynamoDBCrudPolicy, ...) or AWS::NoValue
    for statement in policy["Statement"]:
        if "Fn::If" in statement:
            yield from (b for b in statement["Fn::If"][1:] if isinstance(b, dict) and "Effect" in b)
        else:
            yield statement


def test_inline_policies_name_resources_not_wildcards():
    t = _template()
    checked = 0
    for name, res in t.doc["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for policy in res["Properties"].get("Policies", []):
            for statement in _statements(policy):
                checked += 1
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if "*" in resources:
                    assert set(actions) <= WILDCARD_ONLY_ACTIONS, f"{name}: {statement}"
    assert checked >= 6  # the secrets and KMS statements of three functions at least


def test_statement_walker_sees_conditional_statements():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "a:B", "Resource": "arn:x"},
            {"Fn::If": ["C", {"Effect": "Allow", "Action": "a:C", "Resource": "*"}, {"Ref": "AWS::NoValue"}]},
        ]
    }
    assert [s["Action"] for s in _statements({"Fn::If": ["C", policy, {"Ref": "AWS::NoValue"}]})] == ["a:B", "a:C"]


def test_schedules_take_generated_names_so_two_stacks_share_an_account_and_region():
    """SAM names an AWS::Scheduler::Schedule after its event's logical id unless OmitName is set; then
    CloudFormation generates a unique name, and a dev and a prod stack in one account and region do
    not collide on "Schedule", "CdcSchedule" and "Metrics"."""
    from aurora_replication_dev.local import cloudformation as cfn

    events = [
        (fn, name, event)
        for fn, res in _template().doc["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
        for name, event in res["Properties"].get("Events", {}).items()
        if event["Type"] == "ScheduleV2"
    ]
    assert len(events) == 3, events
    for fn, name, event in events:
        assert event["Properties"].get("OmitName") is True and "Name" not in event["Properties"], (fn, name)
    schedules = [
        res
        for res in cfn.translate(ROOT / "template.yaml").get("Resources", {}).values()
        if res["Type"] == "AWS::Scheduler::Schedule"
    ]
    assert len(schedules) == 3 and all("Name" not in s["Properties"] for s in schedules), schedules


def test_the_deploy_check_says_when_the_account_cannot_reserve_the_stacks_concurrency():
    """A new account's concurrency limit can be 10: `make deploy` says so before CloudFormation
    fails half way (tools/check_concurrency.py, docs/deploying.md)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_concurrency", ROOT / "tools" / "check_concurrency.py")
    check = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(check)

    stack, params = check.overrides("prod")
    assert stack == "aurora-snowflake-replication-prod"
    reserves = check.wanted(params, check.template_default())
    assert reserves == {"scheduler": 2, "health": 2, "worker": 10}
    assert check.wanted({}, check.template_default())["worker"] == 4  # the template's default
    assert check.problem(1000, 1000, 0, reserves) is None
    assert check.problem(1000, 114, 0, reserves) is None  # exactly 100 left
    low = check.problem(10, 10, 0, reserves)  # a new account
    assert low and "limit is 10" in low and "raise the account's 'Concurrent executions' quota" in low, low
    tight = check.problem(200, 110, 0, reserves)
    assert tight and "lower WorkerReservedConcurrency to 6" in tight, tight
    # an update gives back what the stack holds now before reserving again
    assert check.problem(200, 100, 14, reserves) is None


def _render(value: Any, parameters: dict[str, str], doc: dict[str, Any]) -> Any:
    """CloudFormation's Ref, Sub, If, Not, Equals and Condition, enough for a schedule's Input."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref":
            return parameters.get(arg, doc["Parameters"].get(arg, {}).get("Default"))
        if name == "Fn::Sub":
            return re.sub(r"\$\{(\w+)\}", lambda m: str(_render({"Ref": m.group(1)}, parameters, doc)), arg)
        if name == "Fn::If":
            condition, yes, no = arg
            return _render(yes if _render(doc["Conditions"][condition], parameters, doc) else no, parameters, doc)
        if name == "Fn::Not":
            return not _render(arg[0], parameters, doc)
        if name == "Fn::Equals":
            return _render(arg[0], parameters, doc) == _render(arg[1], parameters, doc)
        if name == "Condition":
            return _render(doc["Conditions"][arg], parameters, doc)
    return value


@pytest.mark.parametrize(
    "parameters",
    [
        {"ScheduleTables": "*", "CdcScheduleTables": "orders, items", "CdcFollowSeconds": "50"},
        {
            "ScheduleTables": "a,b",
            "ScheduleMode": "incremental",
            "ScheduleDatabases": "tenant_*",
            "ScheduleDatabaseMapping": "prefix",
            "CdcScheduleTables": "*",
            "CdcScheduleDatabases": "shop, tenant_?",
            "CdcScheduleDatabaseMapping": "prefix",
        },
        {
            "ScheduleDatabases": "a,b",
            "ScheduleDatabaseMapping": "merge",
            "CdcScheduleTables": "t",
            "CdcScheduleDatabases": "c,d",
        },
    ],
)
def test_each_schedules_input_is_a_run_request_the_scheduler_accepts(parameters):
    """The Input of every scheduled event, as CloudFormation renders it for the parameters, is parsed by
    the scheduler as the run request the parameters describe (databases and mapping included)."""
    from aurora_replication.models import RunRequest, parse_scheduler_event

    doc = _template().doc
    rendered = {
        name: json.loads(_render(event["Properties"]["Input"], parameters, doc))
        for res in doc["Resources"].values()
        if res["Type"] == "AWS::Serverless::Function"
        for name, event in res["Properties"].get("Events", {}).items()
        if event["Type"] == "ScheduleV2" and "Input" in event["Properties"]
    }
    assert {"Schedule", "CdcSchedule"} <= set(rendered)
    for name, prefix in (("Schedule", ""), ("CdcSchedule", "Cdc")):
        request = parse_scheduler_event(rendered[name], "auto")
        assert isinstance(request, RunRequest)
        databases = parameters.get(f"{prefix}ScheduleDatabases", "")
        assert bool(request.databases) == bool(databases), (name, request)
        if databases:
            assert request.database_mapping == parameters.get(f"{prefix}ScheduleDatabaseMapping", "schema")
    cdc = parse_scheduler_event(rendered["CdcSchedule"], "auto")
    assert isinstance(cdc, RunRequest) and cdc.mode == "cdc"
    assert cdc.follow_seconds == int(parameters.get("CdcFollowSeconds", "0"))
