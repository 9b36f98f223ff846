"""The rotation function's dispatch: validate the event, keep the stage bookkeeping, and run the
step with the strategy for the kind of secret (``rotation.mysql`` or ``rotation.snowflake``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.rotation import mysql as rotation_mysql
from aurora_replication.rotation import snowflake as rotation_snowflake
from aurora_replication.rotation.base import (
    RotationError,
    RotationSettings,
    SecretStore,
    Strategy,
    parse_event,
    secret_kind,
)

logger = Logger(child=True)


@dataclass
class Rotation:
    """Runs one step of one rotation event; the strategies come from ``strategy_for``."""

    store: SecretStore
    settings: RotationSettings
    mysql_connect: Any = None
    snowflake_connect: Any = None

    def strategy_for(self, current: dict[str, Any]) -> Strategy:
        if secret_kind(current) == "mysql":
            return rotation_mysql.strategy(current, self.store, self.settings, self.mysql_connect)
        return rotation_snowflake.strategy(current, self.store, self.settings, self.snowflake_connect)

    def handle(self, raw_event: object) -> dict[str, str]:
        event = parse_event(raw_event)
        arn, token, step = event.secret_id, event.token, event.step
        meta = self.store.describe(arn)
        if not meta.get("RotationEnabled", False):
            raise RotationError(f"secret {arn} does not have rotation enabled; enable it (a rotation schedule) first")
        versions: dict[str, list[str]] = meta.get("VersionIdsToStages", {})
        if token not in versions:
            raise RotationError(f"version {token} of secret {arn} has no stage; it is not part of a rotation")
        if "AWSCURRENT" in versions[token]:
            if step == "finishSecret" and "AWSPENDING" in versions[token]:
                self.store.clear_pending(arn, token)
            logger.info("rotation: version already AWSCURRENT, nothing to do", extra={"step": step})
            return {"step": step, "result": "already current"}
        if "AWSPENDING" not in versions[token]:
            raise RotationError(f"version {token} of secret {arn} is not staged AWSPENDING; it cannot be rotated to")
        current_version = next((v for v, stages in versions.items() if "AWSCURRENT" in stages), None)
        if current_version is None:
            raise RotationError(f"secret {arn} has no AWSCURRENT version")
        current = self.store.value(arn, stage="AWSCURRENT")
        if current is None:
            raise RotationError(f"secret {arn} has no value staged AWSCURRENT")
        strategy = self.strategy_for(current)

        if step == "createSecret":
            if self.store.value(arn, version=token, stage="AWSPENDING") is not None:
                logger.info("rotation: pending version already has a value", extra={"step": step})
                return {"step": step, "result": "already created"}
            self.store.put_pending(arn, token, strategy.create(current))
            logger.info("rotation: pending version created", extra={"step": step})
            return {"step": step, "result": "created"}

        pending = self.store.value(arn, version=token, stage="AWSPENDING")
        if pending is None:
            raise RotationError(f"version {token} of secret {arn} has no value; createSecret must run first")
        if step == "setSecret":
            previous = self.store.value(arn, stage="AWSPREVIOUS") if _has_stage(versions, "AWSPREVIOUS") else None
            strategy.set(current, pending, previous)
            logger.info("rotation: pending credentials set in the database", extra={"step": step})
            return {"step": step, "result": "set"}
        if step == "testSecret":
            strategy.test(pending)
            logger.info("rotation: pending credentials work", extra={"step": step})
            return {"step": step, "result": "tested"}
        self.store.move_current(arn, token, current_version)
        self.store.clear_pending(arn, token)
        strategy.finish(current, pending)
        logger.info("rotation: AWSCURRENT moved to the new version", extra={"step": step})
        return {"step": step, "result": "finished"}


def _has_stage(versions: dict[str, list[str]], stage: str) -> bool:
    return any(stage in stages for stages in versions.values())
