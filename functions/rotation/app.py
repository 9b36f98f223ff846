"""Rotation Lambda: Secrets Manager's createSecret, setSecret, testSecret and finishSecret steps."""

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from aurora_replication.rotation.base import SecretStore, rotation_settings
from aurora_replication.rotation.dispatch import Rotation

logger = Logger()
tracer = Tracer()
rotation = Rotation(SecretStore(boto3.client("secretsmanager")), rotation_settings(dict(os.environ)))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    logger.append_keys(secret_id=event.get("SecretId"), step=event.get("Step"))
    return rotation.handle(event)
