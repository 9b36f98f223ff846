"""Secrets Manager rotation: the four steps for the MySQL source and the Snowflake target secrets.

Secrets Manager calls the rotation function four times per rotation with
``{"SecretId", "ClientRequestToken", "Step"}``; the token is the id of the new version, which
Secrets Manager has already staged as ``AWSPENDING`` (without a value):

- ``createSecret``: store the new credentials as the value of that version (``AWSPENDING``);
- ``setSecret``: make the database accept them (a user's password, a Snowflake public key);
- ``testSecret``: log in with them;
- ``finishSecret``: move ``AWSCURRENT`` to the new version (Secrets Manager moves
  ``AWSPREVIOUS`` to the version it came from).

Every step may be retried and is safe to repeat. Which credentials a secret holds, and how they
are changed, is the business of one strategy per kind of secret (``rotation.mysql``,
``rotation.snowflake``); ``rotation.dispatch`` validates the event, keeps the stage bookkeeping
and dispatches; this module holds what they share (the event, the settings, the secret
store). As in AWS's reference rotation functions, a step for a version that is already
``AWSCURRENT`` does nothing, and a token that is not staged ``AWSPENDING`` is refused.
Nothing secret is ever logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aurora_replication.config import parse_environment
from aurora_replication.errors import BadInputError
from aurora_replication.models import describe_validation_error

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = Logger(child=True)

Step = Literal["createSecret", "setSecret", "testSecret", "finishSecret"]
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$")
# characters that never need escaping in a connection URL, a SQL literal or a shell word
PASSWORD_EXCLUDE = "\"#$%&'+,/:;<=>?@[\\]^`{|}~"


class RotationError(RuntimeError):
    """A rotation step that cannot go on; the message names the secret and what to fix."""


class RotationEvent(BaseModel):
    """Secrets Manager's event: fields it may add later (``RotationToken`` came in 2023) are ignored;
    the ones read are strictly typed."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, strict=True)

    secret_id: str = Field(alias="SecretId", pattern=SECRET_ARN.pattern)
    token: str = Field(alias="ClientRequestToken", pattern=r"^[A-Za-z0-9-]{32,64}$")
    step: Step = Field(alias="Step")


def parse_event(event: object) -> RotationEvent:
    if not isinstance(event, dict):
        raise BadInputError(f"rotation event must be a JSON object, got {type(event).__name__}")
    try:
        return RotationEvent.model_validate(event)
    except ValidationError as e:
        raise BadInputError(describe_validation_error("rotation event", e)) from None


class RotationSettings(BaseModel):
    """The rotation function's environment, validated once at cold start."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mysql_strategy: Literal["", "alternating-users", "single-user"] = Field(default="", alias="ROTATION_MYSQL_STRATEGY")
    password_length: int = Field(default=32, alias="ROTATION_PASSWORD_LENGTH", ge=16, le=128)
    unset_previous_key: bool = Field(default=False, alias="ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY")
    # the CAs MySQL TLS trusts, as for the other functions (config.Settings.mysql_ca_bundle)
    mysql_ca_bundle: str = Field(default="", alias="MYSQL_CA_BUNDLE")
    # the source connection fields a MySQL secret may lack (the template's SourceHost, ...): see secrets.py
    source_host: str = Field(default="", alias="SOURCE_HOST")
    source_port: str = Field(default="", alias="SOURCE_PORT", pattern=r"^[0-9]{0,5}$")
    source_dbname: str = Field(default="", alias="SOURCE_DBNAME")

    @property
    def source_fallback(self) -> dict[str, str]:
        return {"host": self.source_host, "port": self.source_port, "dbname": self.source_dbname}


def rotation_settings(env: Mapping[str, str]) -> RotationSettings:
    return parse_environment(RotationSettings, env)


class SecretStore:
    """The Secrets Manager calls rotation needs, over a boto3 ``secretsmanager`` client."""

    def __init__(self, client: SecretsManagerClient) -> None:
        self.client = client

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.client.describe_secret(SecretId=arn))

    def value(self, arn: str, *, stage: str | None = None, version: str | None = None) -> dict[str, Any] | None:
        """The JSON object of one version; None when the version has no value (yet)."""
        kwargs: dict[str, str] = {"SecretId": arn}
        if stage:
            kwargs["VersionStage"] = stage
        if version:
            kwargs["VersionId"] = version
        try:
            resp = self.client.get_secret_value(**kwargs)
        except self.client.exceptions.ResourceNotFoundException:
            return None
        return _json_object(resp.get("SecretString"), arn)

    def put_pending(self, arn: str, token: str, value: dict[str, Any]) -> None:
        self.client.put_secret_value(
            SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"]
        )

    def random_password(self, length: int) -> str:
        resp = self.client.get_random_password(
            PasswordLength=length, ExcludeCharacters=PASSWORD_EXCLUDE, RequireEachIncludedType=True
        )
        return str(resp["RandomPassword"])

    def move_current(self, arn: str, token: str, from_version: str) -> None:
        self.client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=from_version
        )

    def clear_pending(self, arn: str, token: str) -> None:
        """Take ``AWSPENDING`` off the finished version, so the next rotation starts clean."""
        self.client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)


def _json_object(text: object, arn: str) -> dict[str, Any]:
    try:
        value = json.loads(str(text))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise RotationError(f"secret {arn} must hold a JSON object")
    return value


class Strategy(Protocol):
    """How one kind of secret is rotated; each method must be safe to repeat."""

    def create(self, current: dict[str, Any]) -> dict[str, Any]:
        """The value of the new version, from the current one."""
        ...

    def set(self, current: dict[str, Any], pending: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Make the database accept the pending credentials."""
        ...

    def test(self, pending: dict[str, Any]) -> None:
        """Log in with the pending credentials; raise if that fails."""
        ...

    def finish(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """After ``AWSCURRENT`` moved from ``old`` to ``new``."""
        ...


MYSQL_ENGINES = ("mysql", "aurora-mysql", "mariadb", "aurora")


def secret_kind(value: dict[str, Any]) -> Literal["mysql", "snowflake"]:
    if value.get("account"):
        return "snowflake"
    if value.get("username") and (value.get("host") or str(value.get("engine", "")).lower() in MYSQL_ENGINES):
        return "mysql"
    raise RotationError(
        "cannot tell which database the secret is for: a MySQL secret has username and host or engine "
        "(RDS shape), a Snowflake secret has account and user"
    )
