"""The deploy rehearsal: ``template.yaml`` as CloudFormation receives it, checked, and created in moto.

1. ``translate``: SAM's own translator (``samtranslator``, what ``sam deploy`` and CloudFormation's
   ``AWS::Serverless`` transform run) turns the template into plain CloudFormation, with code
   locations in S3 as ``sam package`` leaves them.
2. ``placement_problems``: what CloudFormation rejects before it creates anything and cfn-lint
   does not look at: functions outside the sections that allow them (``Rules`` take only the rule
   functions and ``Ref``; ``Conditions`` only the condition functions, ``Ref`` to parameters and
   ``Fn::FindInMap``; rule and condition functions are not allowed in resources or outputs), and
   conditions that do not exist.
3. ``resolve``: the template for one set of parameter values, as CloudFormation evaluates it:
   parameter constraints, ``Rules``, ``Conditions``, ``Fn::If`` and ``AWS::NoValue``; then every
   ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` variable and ``DependsOn`` must name something that exists
   (a resource whose condition is false does not).
4. ``create_in_moto``: the resolved template as a stack in moto's CloudFormation. Resource types
   moto cannot create are left out, with whatever depends on them, and listed with the reason; a
   role's ``ManagedPolicyArns`` (which moto's CloudFormation ignores) are given to it afterwards.

The local stack runs its handlers against the resources such a stack made (``local/stack.py``).
"""

from __future__ import annotations

import ast
import io
import json
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aurora_replication_dev.local.template import Template

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARTIFACT_BUCKET = "local-deploy-artifacts"

RULE_FUNCTIONS = frozenset(
    {
        "Fn::And",
        "Fn::Contains",
        "Fn::EachMemberEquals",
        "Fn::EachMemberIn",
        "Fn::Equals",
        "Fn::Not",
        "Fn::Or",
        "Fn::RefAll",
        "Fn::ValueOf",
        "Fn::ValueOfAll",
        "Ref",
    }
)
CONDITION_FUNCTIONS = frozenset({"Fn::And", "Fn::Equals", "Fn::Not", "Fn::Or", "Condition", "Fn::FindInMap", "Ref"})
# only in Rules, or only in Conditions: CloudFormation rejects them in resources and outputs
NOT_IN_RESOURCES = (RULE_FUNCTIONS | CONDITION_FUNCTIONS) - {"Ref", "Fn::FindInMap"}
PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
# types moto's CloudFormation has but cannot create from this template (moto 5.2)
MOTO_CANNOT_CREATE = {"AWS::KMS::Key": "moto fails on a key's Tags ({Key, Value}: it reads TagKey)"}


class RehearsalError(RuntimeError):
    """CloudFormation would reject the template or these parameter values; the message says where."""


# ---- 1. SAM's translation ------------------------------------------------------------------
def translator_available() -> bool:
    try:
        import samtranslator  # noqa: F401
    except ImportError:
        return False
    return True


def translate(template: Path, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of ``template`` (a fresh copy each call)."""
    key = json.dumps(sorted((parameters or {}).items()))
    return _copy(_translate(str(template.resolve()), template.stat().st_mtime_ns, key))


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document (much faster than copy.deepcopy)."""
    copied: dict[str, Any] = json.loads(json.dumps(doc))
    return copied


@lru_cache(maxsize=8)
def _translate(path: str, mtime: int, parameters_json: str) -> dict[str, Any]:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    doc = _copy(Template(Path(path)).doc)
    for name, resource in doc.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        # as `sam package` leaves them: the code of each function and layer in S3
        if resource.get("Type") == "AWS::Serverless::Function":
            props["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{name}.zip"
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{ARTIFACT_BUCKET}/{name}.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    values = dict(json.loads(parameters_json))
    # plain JSON: the translator's own dict and str subclasses are slow to copy
    return _copy(translator.translate(doc, parameter_values=values, get_managed_policy_map=dict))


# ---- 2. functions where CloudFormation allows them -----------------------------------------
def _functions(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(function name, location) of every intrinsic function under ``node``."""
    if isinstance(node, dict):
        if len(node) == 1:
            (key, value), *_ = node.items()
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                yield key, where
        for key, value in node.items():
            yield from _functions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _functions(value, f"{where}/{i}")


def _refs_of(node: Any) -> Iterator[str]:
    """The names ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` point at (``DependsOn`` not included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in re.findall(r"\$\{([^}!][^}]*)\}", text):
                    if name not in variables:
                        yield name.split(".", 1)[0]
                yield from _refs_of(variables)
            else:
                yield from _refs_of(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs_of(value)


def placement_problems(doc: Mapping[str, Any]) -> list[str]:
    """What CloudFormation rejects in the template's shape, whatever the parameter values."""
    problems: list[str] = []
    conditions = doc.get("Conditions", {}) or {}
    parameters = doc.get("Parameters", {}) or {}
    for name, rule in (doc.get("Rules", {}) or {}).items():
        for fn, where in _functions(rule, f"Rules/{name}"):
            if fn not in RULE_FUNCTIONS:
                problems.append(f"{where}: {fn} is not supported in the Rules block (only rule functions and Ref)")
    for name, condition in conditions.items():
        for fn, where in _functions(condition, f"Conditions/{name}"):
            if fn not in CONDITION_FUNCTIONS:
                problems.append(f"{where}: {fn} is not allowed in a condition (condition functions, Ref, FindInMap)")
        for ref in _refs_of(condition):
            if ref not in parameters and ref not in PSEUDO_PARAMETERS:
                problems.append(f"Conditions/{name}: Ref {ref} is not a parameter (a condition cannot Ref a resource)")
        for target in _named_conditions(condition):
            if target not in conditions:
                problems.append(f"Conditions/{name}: condition {target} does not exist")
    for section in ("Resources", "Outputs"):
        for name, body in (doc.get(section, {}) or {}).items():
            if isinstance(body, dict) and body.get("Condition") and body["Condition"] not in conditions:
                problems.append(f"{section}/{name}: Condition {body['Condition']} does not exist")
            for fn, where in _functions(body, f"{section}/{name}"):
                if fn in NOT_IN_RESOURCES:
                    problems.append(f"{where}: {fn} is only allowed in Rules or Conditions, not in {section}")
            for cond, where in _if_conditions(body, f"{section}/{name}"):
                if cond not in conditions:
                    problems.append(f"{where}: Fn::If names condition {cond}, which does not exist")
    return problems


def _named_conditions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Condition" and isinstance(value, str):
                yield value
            else:
                yield from _named_conditions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _named_conditions(value)


def _if_conditions(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Fn::If" and isinstance(value, list) and value:
                yield str(value[0]), where
            yield from _if_conditions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _if_conditions(value, f"{where}/{i}")


# ---- 3. one set of parameter values -------------------------------------------------------
_NO_VALUE = object()


@dataclass
class Resolved:
    """The template as CloudFormation creates it for ``parameters``: conditions applied."""

    doc: dict[str, Any]
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    left_out: list[str] = field(default_factory=list)  # resources whose condition is false


def parameter_values(doc: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """Defaults and given values, checked as CloudFormation checks them (lists split)."""
    declared = doc.get("Parameters", {}) or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RehearsalError(f"parameters {unknown} are not declared in the template")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            raw = str(given[name])
        elif "Default" in spec:
            raw = str(spec["Default"])
        else:
            raise RehearsalError(f"parameter {name} has no default and no value")
        ptype = str(spec.get("Type", "String"))
        if "AllowedValues" in spec and raw not in [str(v) for v in spec["AllowedValues"]]:
            raise RehearsalError(f"parameter {name}={raw!r} is not one of {spec['AllowedValues']}")
        if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), raw):
            raise RehearsalError(f"parameter {name}={raw!r} does not match {spec['AllowedPattern']}")
        if ptype == "Number":
            number = float(raw)
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise RehearsalError(f"parameter {name}={raw} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise RehearsalError(f"parameter {name}={raw} is above MaxValue {spec['MaxValue']}")
        if ptype == "String" and "MinLength" in spec and len(raw) < int(spec["MinLength"]):
            raise RehearsalError(f"parameter {name} is shorter than MinLength {spec['MinLength']}")
        values[name] = raw.split(",") if ptype.startswith("List<") or ptype == "CommaDelimitedList" else raw
    values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"})
    return values


def _evaluate(expr: Any, values: Mapping[str, Any], conditions: dict[str, bool], doc: Mapping[str, Any]) -> Any:
    """Condition and rule functions over parameter values (what CloudFormation evaluates itself)."""
    if not isinstance(expr, dict):
        return expr
    (fn, arg), *_ = expr.items()
    if fn == "Ref":
        return values[arg]
    if fn == "Condition":
        return condition(str(arg), values, conditions, doc)
    if fn == "Fn::Equals":
        return _evaluate(arg[0], values, conditions, doc) == _evaluate(arg[1], values, conditions, doc)
    if fn == "Fn::Not":
        return not _evaluate(arg[0], values, conditions, doc)
    if fn == "Fn::And":
        return all(_evaluate(x, values, conditions, doc) for x in arg)
    if fn == "Fn::Or":
        return any(_evaluate(x, values, conditions, doc) for x in arg)
    if fn == "Fn::Contains":
        return _evaluate(arg[1], values, conditions, doc) in _evaluate(arg[0], values, conditions, doc)
    if fn == "Fn::EachMemberEquals":
        target = _evaluate(arg[1], values, conditions, doc)
        return all(v == target for v in _evaluate(arg[0], values, conditions, doc))
    if fn == "Fn::EachMemberIn":
        allowed = _evaluate(arg[1], values, conditions, doc)
        return all(v in allowed for v in _evaluate(arg[0], values, conditions, doc))
    if fn == "Fn::FindInMap":
        name, top, second = (_evaluate(x, values, conditions, doc) for x in arg)
        return doc["Mappings"][name][top][second]
    raise RehearsalError(f"{fn} needs the AWS account to evaluate; the rehearsal cannot")


def condition(name: str, values: Mapping[str, Any], conditions: dict[str, bool], doc: Mapping[str, Any]) -> bool:
    if name not in conditions:
        conditions[name] = bool(_evaluate(doc["Conditions"][name], values, conditions, doc))
    return conditions[name]


def _apply_ifs(node: Any, conditions: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, if_true, if_false = node["Fn::If"]
            return _apply_ifs(if_true if conditions[name] else if_false, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for key, value in node.items():
            resolved = _apply_ifs(value, conditions)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out
    if isinstance(node, list):
        return [r for r in (_apply_ifs(v, conditions) for v in node) if r is not _NO_VALUE]
    return node


def resolve(doc: Mapping[str, Any], given: Mapping[str, str]) -> Resolved:
    """``doc`` for the parameter values ``given``; raises what CloudFormation would refuse."""
    values = parameter_values(doc, given)
    conditions: dict[str, bool] = {}
    for name in doc.get("Conditions", {}) or {}:
        condition(name, values, conditions, doc)
    for name, rule in (doc.get("Rules", {}) or {}).items():
        applies = "RuleCondition" not in rule or _evaluate(rule["RuleCondition"], values, conditions, doc)
        for assertion in rule.get("Assertions", []) if applies else []:
            if not _evaluate(assertion["Assert"], values, conditions, doc):
                raise RehearsalError(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")
    resolved: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("Conditions", "Rules")}
    resources: dict[str, Any] = {}
    left_out: list[str] = []
    for name, body in (doc.get("Resources", {}) or {}).items():
        if body.get("Condition") and not conditions[body["Condition"]]:
            left_out.append(name)
            continue
        body = _apply_ifs({k: v for k, v in body.items() if k != "Condition"}, conditions)
        resources[name] = body
    resolved["Resources"] = resources
    outputs: dict[str, Any] = {}
    for name, body in (doc.get("Outputs", {}) or {}).items():
        if body.get("Condition") and not conditions[body["Condition"]]:
            continue
        outputs[name] = _apply_ifs({k: v for k, v in body.items() if k != "Condition"}, conditions)
    resolved["Outputs"] = outputs
    known = set(resources) | set(values) | PSEUDO_PARAMETERS
    dangling = []
    for section, items in (("Resources", resources), ("Outputs", outputs)):
        for name, body in items.items():
            depends = body.get("DependsOn", []) if section == "Resources" else []
            for ref in [*_refs_of(body), *([depends] if isinstance(depends, str) else depends)]:
                if ref not in known:
                    dangling.append(f"{section}/{name} -> {ref}")
    if dangling:
        raise RehearsalError(
            "unresolved references for these parameter values (a resource whose condition is false, or one that "
            "does not exist): " + ", ".join(sorted(set(dangling)))
        )
    return Resolved(resolved, values, conditions, left_out)


# ---- 4. a stack in moto --------------------------------------------------------------------
@dataclass
class Stack:
    """What a stack in moto made: outputs, physical ids by logical id, and what moto could not make."""

    name: str
    outputs: dict[str, str]
    physical: dict[str, str]
    not_created: dict[str, str]
    template: dict[str, Any]  # what moto was given
    resolved: dict[str, Any]  # the whole template for these parameters (what CloudFormation would create)
    parameters: dict[str, Any] = field(default_factory=dict)  # every parameter's value, defaults included

    def value(self, node: Any) -> Any:
        """A property's value where it is a literal or a ``Ref`` to a parameter (else None)."""
        if isinstance(node, dict):
            return self.parameters.get(node["Ref"]) if set(node) == {"Ref"} else None
        return node


def moto_supported_types() -> set[str]:
    # importing the backends registers every CloudFormation model moto has
    import moto.backends  # noqa: F401
    from moto.cloudformation.parsing import get_model_map

    return set(get_model_map()) - set(MOTO_CANNOT_CREATE)


def leave_out_unsupported(doc: dict[str, Any], supported: set[str]) -> dict[str, str]:
    """Remove resources moto cannot create and, transitively, whatever refers to them."""
    resources = doc["Resources"]
    reasons = {
        name: MOTO_CANNOT_CREATE.get(body["Type"], f"moto's CloudFormation has no {body['Type']}")
        for name, body in resources.items()
        if body["Type"] not in supported
    }
    changed = True
    while changed:
        changed = False
        for name, body in resources.items():
            if name in reasons:
                continue
            depends = body.get("DependsOn", [])
            needs = (set(_refs_of(body)) | set([depends] if isinstance(depends, str) else depends)) & set(reasons)
            if needs:
                reasons[name] = f"refers to {', '.join(sorted(needs))}, which moto cannot create"
                changed = True
    for name in reasons:
        del resources[name]
    for name, body in list(doc.get("Outputs", {}).items()):
        if set(_refs_of(body)) & set(reasons):
            del doc["Outputs"][name]
    return reasons


def _code_zip(source: Path | None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if source is not None and source.is_dir():
            for f in sorted(source.rglob("*.py")):
                z.write(f, f.relative_to(source))
        else:  # the layer: handlers import it from this checkout, not from the stack
            z.writestr("README", "the local stack imports the layer's package from the checkout")
    return buf.getvalue()


def create_in_moto(session: Any, template: Path, parameters: Mapping[str, str], stack_name: str = "local") -> Stack:
    """Translate, resolve and create the stack in the moto that ``session``'s clients reach."""
    given = dict(parameters)
    translated = translate(template, given)
    problems = placement_problems(translated)
    if problems:
        raise RehearsalError("CloudFormation would reject the template: " + "; ".join(problems))
    resolved = resolve(translated, given)
    doc = _copy(resolved.doc)
    not_created = leave_out_unsupported(doc, moto_supported_types())
    not_created.update({name: "its condition is false for these parameters" for name in resolved.left_out})

    s3 = session.client("s3")
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    sources = Template(template)
    for name, body in doc["Resources"].items():
        code = body.get("Properties", {}).get(
            {"AWS::Lambda::Function": "Code", "AWS::Lambda::LayerVersion": "Content"}.get(body["Type"], "")
        )
        if isinstance(code, dict) and "S3Key" in code:
            function = body["Type"] == "AWS::Lambda::Function" and name in sources.doc["Resources"]
            s3.put_object(
                Bucket=ARTIFACT_BUCKET,
                Key=code["S3Key"],
                Body=_code_zip(sources.function_dir(name) if function else None),
            )

    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(doc),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else str(v)}
            for k, v in resolved.parameters.items()
            if not k.startswith("AWS::")
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    described = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        raise RehearsalError(f"stack {stack_name}: {described['StackStatus']} {described.get('StackStatusReason', '')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    # moto's CloudFormation ignores a table's TimeToLiveSpecification: set it as CloudFormation would
    dynamodb = session.client("dynamodb")
    for name, body in doc["Resources"].items():
        ttl = (
            body.get("Properties", {}).get("TimeToLiveSpecification")
            if body["Type"] == "AWS::DynamoDB::Table"
            else None
        )
        if ttl:
            dynamodb.update_time_to_live(TableName=physical[name], TimeToLiveSpecification=ttl)
    # moto's CloudFormation ignores ManagedPolicyArns: give each role its AWS managed policies'
    # documents; and it stores inline policies as objects, which its IAM checks cannot read: put
    # them again, as the JSON text IAM keeps (resolved by CloudFormation: moto's role policy shows it)
    iam = session.client("iam")
    for name, body in doc["Resources"].items():
        if body["Type"] != "AWS::IAM::Role":
            continue
        for policy_name in iam.list_role_policies(RoleName=physical[name])["PolicyNames"]:
            document = iam.get_role_policy(RoleName=physical[name], PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):  # moto answers with the object's repr
                document = ast.literal_eval(document)
            # SAM's policies leave Version out (IAM then reads 2008-10-17, which differs from 2012-10-17
            # only in policy variables, used nowhere here); moto's PutRolePolicy insists on one
            document.setdefault("Version", "2012-10-17")
            iam.put_role_policy(RoleName=physical[name], PolicyName=policy_name, PolicyDocument=json.dumps(document))
        for arn in body.get("Properties", {}).get("ManagedPolicyArns", []):
            policy = arn.rsplit("/", 1)[-1]
            data = _aws_managed_policies().get(policy)
            if data is None:
                raise RehearsalError(f"{name}: managed policy {arn} is unknown to moto")
            iam.put_role_policy(
                RoleName=physical[name], PolicyName=f"aws-managed-{policy}", PolicyDocument=json.dumps(data["Document"])
            )
    return Stack(stack_name, outputs, physical, not_created, doc, resolved.doc, resolved.parameters)


@lru_cache(maxsize=1)
def _aws_managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data
