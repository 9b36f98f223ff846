"""Connection settings from Secrets Manager, read through Powertools Parameters with caching.

After an authentication failure the caller re-reads once with ``force=True`` (rotation).
Nothing here is ever logged.

The source secret has the RDS shape. The secret RDS manages for a cluster
(``ManageMasterUserPassword``) holds only ``username`` and ``password``: the endpoint, port and
database then come from the environment (``SOURCE_HOST``, ``SOURCE_PORT``, ``SOURCE_DBNAME``, the
template's ``SourceHost``, ``SourcePort``, ``SourceDatabase``). A secret that has them is used as
it is; a secret and a setting that disagree are an error, never a silent choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aurora_replication.errors import BadInputError

if TYPE_CHECKING:  # Powertools (and boto3 under it) is imported where a secret is read: the settings classes
    # alone are light (the binlog's decoding processes unpickle them, ``source/binlog_parallel.py``)
    from aws_lambda_powertools.utilities import parameters

# the source secret's fields that may come from the environment instead, and where
SOURCE_FALLBACKS = {"host": "SOURCE_HOST", "port": "SOURCE_PORT", "dbname": "SOURCE_DBNAME"}

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
    # the salt of ``salted_sha256`` masks (the secret's optional ``mask_salt``): never logged, never in a plan
    mask_salt: str = field(default="", repr=False)

    PACKAGED_CA_BUNDLE: ClassVar[Path] = Path(__file__).resolve().parent / "certs" / "rds-global-bundle.pem"
    SYSTEM_CA_STORE: ClassVar[str] = "system"

    @classmethod
    def from_secret(
        cls, secret: dict[str, Any], ca_bundle: str = "", fallback: Mapping[str, object] | None = None
    ) -> MySQLSettings:
        """``fallback`` gives ``host``, ``port`` and ``dbname`` where the secret has none (the values
        of SOURCE_HOST, SOURCE_PORT, SOURCE_DBNAME; empty means not set)."""
        s = dict(secret)
        for key, value in (fallback or {}).items():
            if key not in SOURCE_FALLBACKS or value in (None, ""):
                continue
            if s.get(key) not in (None, "") and str(s[key]) != str(value):
                raise BadInputError(
                    f"source secret's {key} {s[key]!r} differs from {SOURCE_FALLBACKS[key]}={value!r}; "
                    "remove one of them (the parameter is for secrets without it, such as RDS-managed ones)"
                )
            s[key] = value
        # an empty password is a MySQL user without one (legitimate on a local server); an absent key is not
        missing = [k for k in ("host", "username", "dbname") if not s.get(k)] + (["password"] * ("password" not in s))
        if missing:
            settable = [f"{SOURCE_FALLBACKS[k]} ({k})" for k in missing if k in SOURCE_FALLBACKS]
            hint = f"; set {', '.join(settable)} (template parameters SourceHost, SourceDatabase)" if settable else ""
            raise BadInputError(
                f"source secret lacks {', '.join(missing)}{hint}; "
                "an RDS-managed secret holds only username and password"
            )
        host = str(s["host"])
        raw_tls = s.get("tls", not host.startswith(LOOPBACK))
        tls = raw_tls.strip().lower() not in ("false", "0", "no", "off") if isinstance(raw_tls, str) else bool(raw_tls)
        bundle = ca_bundle.strip() or str(cls.PACKAGED_CA_BUNDLE)
        return cls(
            host,
            int(s.get("port", 3306)),
            str(s["username"]),
            str(s["password"] or ""),
            str(s["dbname"]),
            tls,
            bundle,
            str(s.get("mask_salt") or ""),
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


def read_secret(
    arn: str, max_age: int, force: bool = False, provider: parameters.SecretsProvider | None = None
) -> dict[str, Any]:
    """The secret's JSON object, cached ``max_age`` seconds by ``provider`` (a handler makes its own at
    cold start, so its client is created with the function's credentials then; without one,
    Powertools' process-wide default provider)."""
    # AWSCURRENT is Secrets Manager's default; said explicitly because moto (5.2) keeps serving the
    # version a secret was created with after a rotation moved AWSCURRENT with UpdateSecretVersionStage
    from aws_lambda_powertools.utilities import parameters

    options: dict[str, Any] = {"max_age": max_age, "force_fetch": force, "VersionStage": "AWSCURRENT"}
    if provider is not None:
        value = provider.get(arn, transform="json", **options)
    else:
        value = parameters.get_secret(arn, transform="json", **options)
    if not isinstance(value, dict):
        raise BadInputError(f"secret {arn} must hold a JSON object")
    return value


def mysql_settings(
    arn: str,
    max_age: int,
    force: bool = False,
    ca_bundle: str = "",
    provider: parameters.SecretsProvider | None = None,
    fallback: Mapping[str, object] | None = None,
) -> MySQLSettings:
    return MySQLSettings.from_secret(read_secret(arn, max_age, force, provider), ca_bundle, fallback)


def snowflake_settings(
    arn: str, max_age: int, force: bool = False, provider: parameters.SecretsProvider | None = None
) -> SnowflakeSettings:
    return SnowflakeSettings.from_secret(read_secret(arn, max_age, force, provider))


def source_fallback(env: Mapping[str, str]) -> dict[str, str]:
    """SOURCE_HOST, SOURCE_PORT and SOURCE_DBNAME of ``env`` as ``from_secret``'s fallback."""
    port = env.get("SOURCE_PORT", "").strip()
    if port and not port.isdigit():
        raise BadInputError(f"SOURCE_PORT={port!r} is not a port number")
    return {key: env.get(var, "").strip() for key, var in SOURCE_FALLBACKS.items()}
