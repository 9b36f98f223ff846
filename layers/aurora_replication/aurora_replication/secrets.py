"""Connection settings from Secrets Manager, read through Powertools Parameters with caching.

After an authentication failure the caller re-reads once with ``force=True`` (rotation).
Nothing here is ever logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aws_lambda_powertools.utilities import parameters

from aurora_replication.errors import BadInputError

LOOPBACK = ("127.", "localhost", "::1")


@dataclass(frozen=True)
class MySQLSettings:
    """The source connection. With ``tls`` the server certificate is verified against ``ca_bundle``.

    ``ca_bundle`` is a PEM file of trusted CAs: the ``MYSQL_CA_BUNDLE`` setting when set (the caller
    passes it from ``config.Settings`` or the rotation function's settings), else the RDS global
    bundle packaged in the layer (``aurora_replication/certs/rds-global-bundle.pem``, fetched by
    ``make ca-bundle``); the value ``system`` means the system CA store instead.
    """

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str
    tls: bool
    ca_bundle: str = ""

    PACKAGED_CA_BUNDLE: ClassVar[Path] = Path(__file__).resolve().parent / "certs" / "rds-global-bundle.pem"
    SYSTEM_CA_STORE: ClassVar[str] = "system"

    @classmethod
    def from_secret(cls, s: dict[str, Any], ca_bundle: str = "") -> MySQLSettings:
        missing = [k for k in ("host", "username", "password", "dbname") if not s.get(k)]
        if missing:
            raise BadInputError(f"source secret lacks {', '.join(missing)}; it must have the RDS shape")
        host = str(s["host"])
        raw_tls = s.get("tls", not host.startswith(LOOPBACK))
        tls = raw_tls.strip().lower() not in ("false", "0", "no", "off") if isinstance(raw_tls, str) else bool(raw_tls)
        bundle = ca_bundle.strip() or str(cls.PACKAGED_CA_BUNDLE)
        return cls(
            host, int(s.get("port", 3306)), str(s["username"]), str(s["password"]), str(s["dbname"]), tls, bundle
        )


@dataclass(frozen=True)
class SnowflakeSettings:
    account: str
    user: str
    database: str
    schema: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    @classmethod
    def from_secret(cls, s: dict[str, Any]) -> SnowflakeSettings:
        missing = [k for k in ("account", "user", "database", "schema") if not s.get(k)]
        if missing:
            raise BadInputError(f"target secret lacks {', '.join(missing)}")
        if not s.get("password") and not s.get("private_key"):
            raise BadInputError("target secret needs a password or a private_key")
        return cls(
            account=str(s["account"]),
            user=str(s["user"]),
            database=str(s["database"]),
            schema=str(s["schema"]),
            password=s.get("password"),
            private_key=s.get("private_key"),
            role=s.get("role"),
            warehouse=s.get("warehouse"),
            host=s.get("host"),
            port=int(s["port"]) if s.get("port") else None,
            protocol=s.get("protocol"),
        )


def read_secret(arn: str, max_age: int, force: bool = False) -> dict[str, Any]:
    # AWSCURRENT is Secrets Manager's default; said explicitly because moto (5.2) keeps serving the
    # version a secret was created with after a rotation moved AWSCURRENT with UpdateSecretVersionStage
    value = parameters.get_secret(arn, transform="json", max_age=max_age, force_fetch=force, VersionStage="AWSCURRENT")
    if not isinstance(value, dict):
        raise BadInputError(f"secret {arn} must hold a JSON object")
    return value


def mysql_settings(arn: str, max_age: int, force: bool = False, ca_bundle: str = "") -> MySQLSettings:
    return MySQLSettings.from_secret(read_secret(arn, max_age, force), ca_bundle)


def snowflake_settings(arn: str, max_age: int, force: bool = False) -> SnowflakeSettings:
    return SnowflakeSettings.from_secret(read_secret(arn, max_age, force))
