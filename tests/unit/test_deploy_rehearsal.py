"""The deploy rehearsal: the template after SAM's transform, checked for what CloudFormation rejects
(and cfn-lint does not), resolved for real parameter sets, and created as a stack in moto."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from aurora_replication_dev.local import cloudformation as cfn

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
REQUIRED = {"SourceSecretArn": SECRET.format("source"), "TargetSecretArn": SECRET.format("target")}
EVERYTHING_ON = {
    **REQUIRED,
    "VpcSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "VpcSecurityGroupIds": "sg-0a1b2c3d",
    "VpcId": "vpc-0a1b2c3d",
    "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "AlarmEmail": "oncall@example.com",
    "RotateSourceSecret": "true",
    "RotateTargetSecret": "true",
    "SourceMasterSecretArn": SECRET.format("master"),
    "TargetAdminSecretArn": SECRET.format("admin"),
    "SourceHost": "cluster.cluster-abc.us-east-1.rds.amazonaws.com",
    "SourcePort": "3306",
    "SourceDatabase": "shop",
    "DeploymentType": "Canary10Percent5Minutes",
}


@pytest.fixture(scope="module", autouse=True)
def translator() -> None:
    if not cfn.translator_available():
        pytest.fail("aws-sam-translator is missing: `.venv/bin/pip install aws-sam-translator` (a dev dependency)")


@pytest.mark.parametrize("parameters", [REQUIRED, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_the_transformed_template_is_one_cloudformation_accepts(parameters):
    doc = cfn.translate(TEMPLATE, parameters)
    assert "Transform" not in doc and not any(
        r["Type"].startswith("AWS::Serverless") for r in doc["Resources"].values()
    )
    assert cfn.placement_problems(doc) == []
    resolved = cfn.resolve(doc, parameters)  # constraints, rules, conditions and every reference
    if parameters is EVERYTHING_ON:
        assert "RotationFunction" in resolved.doc["Resources"] and "VpcFlowLog" in resolved.doc["Resources"]
        vpc = resolved.doc["Resources"]["WorkerFunction"]["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] == {"Fn::Split": [",", {"Ref": "VpcSubnetIds"}]}
    else:
        assert "RotationFunction" in resolved.left_out
        assert "VpcConfig" not in resolved.doc["Resources"]["WorkerFunction"]["Properties"]


def test_functions_cloudformation_rejects_are_found_where_cfn_lint_does_not_look():
    doc = {
        "Parameters": {"Subnets": {"Type": "CommaDelimitedList", "Default": ""}, "Env": {"Type": "String"}},
        # what made `sam deploy` fail: "Following functions are not supported in the Rules block"
        "Rules": {"R": {"RuleCondition": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Subnets"}]}, ""]}]}}},
        "Conditions": {
            "Joined": {"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Subnets"}]}, ""]},
            "OnResource": {"Fn::Equals": [{"Ref": "Queue"}, ""]},
            "Missing": {"Fn::Not": [{"Condition": "NoSuchCondition"}]},
        },
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Condition": "Undeclared",
                "Properties": {"DelaySeconds": {"Fn::If": ["Nope", 1, 2]}, "Tags": [{"Fn::Equals": ["a", "b"]}]},
            }
        },
        "Outputs": {"O": {"Value": {"Fn::Contains": [["a"], "a"]}}},
    }
    problems = "\n".join(cfn.placement_problems(doc))
    assert "Rules/R/RuleCondition/Fn::Not/0/Fn::Equals/0: Fn::Join is not supported in the Rules block" in problems
    assert "Conditions/Joined/Fn::Equals/0: Fn::Join is not allowed in a condition" in problems
    assert "Conditions/OnResource: Ref Queue is not a parameter" in problems
    assert "Conditions/Missing: condition NoSuchCondition does not exist" in problems
    assert "Resources/Queue: Condition Undeclared does not exist" in problems
    assert "Fn::If names condition Nope, which does not exist" in problems
    assert "Resources/Queue/Properties/Tags/0: Fn::Equals is only allowed in Rules or Conditions" in problems
    assert "Outputs/O/Value: Fn::Contains is only allowed in Rules or Conditions" in problems


def test_the_source_template_itself_passes_the_placement_check():
    from aurora_replication_dev.local.template import Template

    assert cfn.placement_problems(Template(TEMPLATE).doc) == []


def test_rules_and_parameter_constraints_are_evaluated_as_cloudformation_does():
    doc = cfn.translate(TEMPLATE, EVERYTHING_ON)
    with pytest.raises(cfn.RehearsalError, match="VpcSecurityGroupIds must be set when VpcSubnetIds is set"):
        cfn.resolve(doc, {**EVERYTHING_ON, "VpcSecurityGroupIds": ""})
    with pytest.raises(cfn.RehearsalError, match="VpcSubnetIds=.* does not match"):
        cfn.resolve(doc, {**EVERYTHING_ON, "VpcSubnetIds": "subnet-0a1b2c3d, subnet-4e5f6a7b"})
    with pytest.raises(cfn.RehearsalError, match="SourcePort"):
        cfn.resolve(doc, {**EVERYTHING_ON, "SourcePort": "mysql"})
    with pytest.raises(cfn.RehearsalError, match="not declared"):
        cfn.resolve(doc, {**REQUIRED, "NoSuchParameter": "x"})


def test_a_reference_to_a_resource_whose_condition_is_false_is_refused():
    doc = {
        "Parameters": {"On": {"Type": "String", "Default": "false"}},
        "Conditions": {"IsOn": {"Fn::Equals": [{"Ref": "On"}, "true"]}},
        "Resources": {
            "Dlq": {"Type": "AWS::SQS::Queue", "Condition": "IsOn"},
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"RedrivePolicy": {"dlq": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
            },
        },
        "Outputs": {"DlqUrl": {"Value": {"Ref": "Dlq"}}},
    }
    with pytest.raises(cfn.RehearsalError, match=r"Outputs/DlqUrl -> Dlq, Resources/Queue -> Dlq"):
        cfn.resolve(doc, {})
    assert set(cfn.resolve(doc, {"On": "true"}).doc["Resources"]) == {"Dlq", "Queue"}


def test_the_stack_is_created_in_moto_with_what_the_handlers_need():
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        sm = session.client("secretsmanager")
        arns = {k: sm.create_secret(Name=k, SecretString="{}")["ARN"] for k in REQUIRED}
        stack = cfn.create_in_moto(session, TEMPLATE, arns)
        sqs = session.client("sqs")
        attrs = sqs.get_queue_attributes(QueueUrl=stack.outputs["ChunkQueueUrl"], AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        assert attrs["VisibilityTimeout"] == "5400"
        assert redrive["deadLetterTargetArn"] == stack.outputs["DeadLetterQueueArn"]
        worker = session.client("lambda").get_function_configuration(FunctionName=stack.outputs["WorkerFunctionName"])
        env = worker["Environment"]["Variables"]
        assert env["CHUNK_QUEUE_URL"] == stack.outputs["ChunkQueueUrl"]
        assert env["STATE_TABLE"] == stack.outputs["StateTableName"]
        assert int(env["MAX_RECEIVE_COUNT"]) == redrive["maxReceiveCount"]  # the worker knows its last receive
        assert env["SF_OCSP_RESPONSE_CACHE_DIR"].startswith("/tmp/")
        # what moto cannot make is named, not silently missing
        assert stack.not_created["WorkerFunctionAliaslive"] == "moto's CloudFormation has no AWS::Lambda::Alias"
        assert "WorkerFunctionAliaslive" in stack.not_created["WorkerFunctionChunks"]
        assert stack.not_created["RotationFunction"] == "its condition is false for these parameters"
        # the roles carry SAM's managed policies as moto's copies of the AWS documents
        role = worker["Role"].rsplit("/", 1)[-1]
        names = session.client("iam").list_role_policies(RoleName=role)["PolicyNames"]
        assert "aws-managed-AWSLambdaSQSQueueExecutionRole" in names
