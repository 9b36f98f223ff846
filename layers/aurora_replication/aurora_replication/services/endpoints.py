"""The two endpoints' settings, read from their secrets, and where the message in hand reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aws_lambda_powertools.utilities.parameters import SecretsProvider

from aurora_replication import secrets
from aurora_replication.config import Settings
from aurora_replication.ledger.keys import Scope
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target


@dataclass
class Endpoints:
    """The source's and the target's settings from their secrets (read through ``secrets_provider`` and cached;
    None: Powertools' process-wide default provider), the scope they make, and the place of the message in
    hand (``locate``): the MySQL database and the Snowflake schema of its table's plan; None: the secrets' own."""

    settings: Settings
    secrets_provider: SecretsProvider | None = None
    source_database: str | None = None
    target_schema: str | None = None

    def locate(self, source_database: str | None, target_schema: str | None) -> None:
        """Make the connections handed out from now on read ``source_database`` (MySQL's default
        database: every source statement names its tables unqualified) and write ``target_schema`` (the
        Snowflake session's schema: every target statement too); None: the secrets' own. A run of a
        request naming several databases (``pipeline/databases.py``) records them in each table's plan."""
        self.source_database = source_database
        self.target_schema = target_schema

    def mysql_settings(self, force: bool = False) -> secrets.MySQLSettings:
        s = self.settings
        return secrets.mysql_settings(
            s.source_secret_arn,
            s.secret_max_age_seconds,
            force,
            s.mysql_ca_bundle,
            provider=self.secrets_provider,
            fallback=s.source_fallback,
        )

    def located_mysql_settings(self, force: bool = False) -> secrets.MySQLSettings:
        """``mysql_settings`` with the database of the message in hand (``locate``): what a connection
        opened elsewhere (an extract part's helper process) reads."""
        settings = self.mysql_settings(force)
        return replace(settings, dbname=self.source_database) if self.source_database else settings

    def snowflake_settings(self, force: bool = False) -> secrets.SnowflakeSettings:
        s = self.settings
        return secrets.snowflake_settings(s.target_secret_arn, s.secret_max_age_seconds, force, self.secrets_provider)

    def scope(self) -> Scope:
        """Where this stack's tables come from and go to, from the two secrets and the naming rule: what
        every table-level state key holds (``ledger.keys.TableKey``). A run records the scope it is planned in."""
        target = self.snowflake_settings()
        return Scope.of(self.mysql_settings().dbname, target.database, target.schema, self.settings.identifier_case)

    def describe(self, error: Exception) -> Exception:
        """``endpoint_error`` for an error of either driver (an EndpointError, or the error itself)."""
        module = type(error).__module__
        if module.startswith("pymysql"):
            return self.endpoint_error(error, "source")
        if module.startswith("snowflake.connector"):
            return self.endpoint_error(error, "target")
        return error

    def endpoint_error(self, error: Exception, side: str) -> Exception:
        """A failure of the source or target as an EndpointError a person can act on (host, port, user,
        database and what to check; never the password), or the error itself when it is not one of those."""
        try:
            if side == "source":
                described = source_connect.describe_failure(error, self.mysql_settings())
            else:
                described = target.describe_failure(error, self.snowflake_settings())
        except Exception:  # noqa: BLE001 - the settings themselves failed: the original error says more
            return error
        return described or error
