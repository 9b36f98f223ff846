"""Reads ``template.yaml`` so the local stack builds the same queues, table and settings."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: the attribute names SQS accepts
    from mypy_boto3_sqs.literals import QueueAttributeNameType


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    # as CloudFormation reads the short forms: !Ref and !Condition keep their names, the rest are Fn::
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int) -> str:
    """The template as JSON text, parsed once per version of the file (pure-Python YAML is slow)."""
    return json.dumps(yaml.load(Path(path).read_text(), Loader=_CfnLoader))  # noqa: S506 - safe loader subclass


class Template:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.doc: dict[str, Any] = json.loads(_parse(str(path.resolve()), path.stat().st_mtime_ns))

    def resource(self, name: str) -> dict[str, Any]:
        return dict(self.doc["Resources"][name].get("Properties", {}))

    def resolve(self, value: Any, parameters: dict[str, str] | None = None) -> Any:
        """Literals as they are; ``!Ref Parameter`` to its value in ``parameters``, else its default;
        anything else None."""
        if isinstance(value, dict) and set(value) == {"Ref"}:
            if parameters and value["Ref"] in parameters:
                return parameters[value["Ref"]]
            param = self.doc.get("Parameters", {}).get(value["Ref"])
            return None if param is None else param.get("Default")
        if isinstance(value, dict):
            return None
        return value

    def queue_attributes(
        self, name: str, parameters: dict[str, str] | None = None
    ) -> dict[QueueAttributeNameType, str]:
        props = self.resource(name)
        attrs: dict[QueueAttributeNameType, str] = {}
        key: QueueAttributeNameType
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in props:
                attrs[key] = str(self.resolve(props[key], parameters))
        return attrs

    def max_receive_count(self, queue: str) -> int:
        return int(self.resource(queue)["RedrivePolicy"]["maxReceiveCount"])

    def dead_letter_queue_of(self, queue: str) -> str:
        target = self.resource(queue)["RedrivePolicy"]["deadLetterTargetArn"]
        return str(target["Fn::GetAtt"][0])

    def table_definition(self, name: str) -> dict[str, Any]:
        props = self.resource(name)
        return {
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": "PAY_PER_REQUEST",
        }

    def sqs_event(self, function: str) -> dict[str, Any]:
        for event in self.resource(function).get("Events", {}).values():
            if event.get("Type") == "SQS":
                return dict(event["Properties"])
        raise KeyError(f"{function} has no SQS event in {self.path}")

    def function_timeout(self, function: str, parameters: dict[str, str] | None = None) -> int:
        props = self.resource(function)
        glob = self.doc.get("Globals", {}).get("Function", {})
        return int(self.resolve(props.get("Timeout", glob.get("Timeout", 3)), parameters))

    def function_memory(self, function: str) -> int:
        """The function's MemorySize in MB (the Lambda default, 128, when neither it nor Globals sets one)."""
        props = self.resource(function)
        glob = self.doc.get("Globals", {}).get("Function", {})
        return int(self.resolve(props.get("MemorySize", glob.get("MemorySize", 128))))

    def function_dir(self, function: str) -> Path:
        return self.path.parent / str(self.resource(function)["CodeUri"])

    def literal_environment(self) -> dict[str, str]:
        env = self.doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        return {k: str(v) for k, v in env.items() if not isinstance(v, dict)}
