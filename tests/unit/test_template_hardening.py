"""The template's hardening promises: tags, encryption, alarms wired to the topic, safe deployments."""

from __future__ import annotations

from pathlib import Path

from aurora_replication.local.template import Template

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"project", "environment", "team", "cost-centre"}
# CloudFormation types without a Tags property (or tagged only through the stack's tags)
UNTAGGABLE = {"AWS::Serverless::LayerVersion", "AWS::SNS::Subscription", "AWS::CloudWatch::Dashboard"}


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
    assert {"DeadLetterAlarm", "WorkerErrorsAlarm", "WorkerThrottlesAlarm", "OldestChunkMessageAlarm",
            "ReplicationLagAlarm", "StalledRunsAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_worker_and_scheduler_deploy_through_an_alias_that_alarms_roll_back():
    t = _template()
    for function, alarms in (("WorkerFunction", {"WorkerErrorsAlarm", "WorkerThrottlesAlarm"}),
                             ("SchedulerFunction", {"SchedulerErrorsAlarm"})):
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


def test_inline_policies_name_resources_not_wildcards():
    t = _template()
    for name, res in t.doc["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for policy in res["Properties"].get("Policies", []):
            docs = [policy]
            if "Fn::If" in policy:
                docs = [branch for branch in policy["Fn::If"][1:] if isinstance(branch, dict) and "Statement" in branch]
            for doc in docs:
                for statement in doc.get("Statement", []):
                    resources = statement["Resource"]
                    resources = resources if isinstance(resources, list) else [resources]
                    assert "*" not in resources, f"{name}: {statement}"
