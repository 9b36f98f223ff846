"""Rotation: the four steps against real MariaDB and moto's Secrets Manager; Snowflake with a fake.

moto cannot run the rotation Lambda itself (that needs Docker), so each test starts a rotation
with ``rotate_secret`` naming a function moto does not have: moto stages the new version as
AWSPENDING without a value (as Secrets Manager does) before it fails to find the function.
The steps are then invoked one by one through the handler in ``functions/rotation/app.py``.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from aurora_replication import secrets
from aurora_replication.errors import BadInputError
from aurora_replication.rotation import snowflake as sf
from aurora_replication.rotation.base import RotationError, RotationSettings, SecretStore
from aurora_replication.rotation.dispatch import Rotation
from aurora_replication.rotation.mysql import LoginFailed
from aurora_replication.secrets import MySQLSettings, SnowflakeSettings
from aurora_replication.source import connect as source_connect

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
NO_SUCH_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:not-in-moto"


# ---- helpers -----------------------------------------------------------------------------
def stages(sm: Any, arn: str) -> dict[str, list[str]]:
    versions = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return {v: sorted(s) for v, s in versions.items() if s}


def start_rotation(sm: Any, arn: str) -> str:
    token = str(uuid.uuid4())
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.rotate_secret(
            SecretId=arn,
            ClientRequestToken=token,
            RotationLambdaARN=NO_SUCH_FUNCTION,
            RotationRules={"AutomaticallyAfterDays": 30},
        )
    assert stages(sm, arn)[token] == ["AWSPENDING"]
    return token


def event(arn: str, token: str, step: str) -> dict[str, str]:
    return {"SecretId": arn, "ClientRequestToken": token, "Step": step}


def value(sm: Any, arn: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    return dict(json.loads(sm.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]))


def can_login(secret: dict[str, Any]) -> bool:
    try:
        conn = source_connect.connect(MySQLSettings.from_secret(secret))
    except pymysql.err.OperationalError as e:
        assert e.args[0] in source_connect.AUTH_ERRORS
        return False
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM rotated")
        assert cur.fetchall() == (("2",),)  # the grants came along
    conn.close()
    return True


class MySQLWorld:
    """A replication user with grants on the test database, its admin, their secrets, the handler."""

    def __init__(self, env: Any, masterarn: bool = True) -> None:
        self.env = env
        n = env.database.rsplit("_", 1)[-1]
        self.base, self.admin = f"app{n}", f"adm{n}"
        # the admin, and the user to rotate (both hosts: an anonymous ''@localhost would shadow '%')
        root = self.root()
        with root.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute("CREATE USER %s@%s IDENTIFIED BY 'admin-pw'", (self.admin, host))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (self.admin, host))
                cur.execute("CREATE USER %s@%s IDENTIFIED BY 'first-pw'", (self.base, host))
                cur.execute(f"GRANT SELECT, INSERT ON `{env.database}`.* TO %s@%s", (self.base, host))
        root.close()
        env.sql("CREATE TABLE rotated (id INT PRIMARY KEY)", "INSERT INTO rotated VALUES (1), (2)")
        self.stack = env.start_stack()
        self.sm = boto3.client("secretsmanager")
        common = {"engine": "mysql", "host": "127.0.0.1", "port": env.db.port, "dbname": env.database}
        master = self.sm.create_secret(
            Name=f"rot/{self.admin}",
            SecretString=json.dumps({**common, "username": self.admin, "password": "admin-pw"}),
        )["ARN"]
        first = {
            **common,
            "username": self.base,
            "password": "first-pw",
            **({"masterarn": master} if masterarn else {}),
        }
        self.arn = self.sm.create_secret(Name=f"rot/{self.base}", SecretString=json.dumps(first))["ARN"]
        self.first_version = next(iter(stages(self.sm, self.arn)))

    def root(self) -> pymysql.Connection:
        """The fixture's replicator has no GRANT OPTION nor CREATE USER: root, over the socket."""
        return pymysql.connect(unix_socket=str(self.env.db.base / "mysqld.sock"), user="root", autocommit=True)

    def step(self, token: str, step: str) -> dict[str, str]:
        return dict(self.stack.invoke("RotationFunction", event(self.arn, token, step)))

    def rotate(self) -> str:
        token = start_rotation(self.sm, self.arn)
        for step in STEPS:
            self.step(token, step)
        return token


# ---- MySQL, alternating users ------------------------------------------------------------
def test_alternating_users_rotate_and_the_user_of_two_rotations_ago_loses_its_password(env):
    w = MySQLWorld(env)
    first = value(w.sm, w.arn)
    stale = secrets.mysql_settings(w.arn, 3600)  # a worker's cached copy (Powertools cache)
    assert stale.username == w.base and can_login(first)

    token1 = start_rotation(w.sm, w.arn)
    assert w.step(token1, "createSecret")["result"] == "created"
    pending = value(w.sm, w.arn, "AWSPENDING")
    assert w.step(token1, "createSecret")["result"] == "already created"  # a retried step keeps the value
    assert value(w.sm, w.arn, "AWSPENDING") == pending
    assert pending["username"] == f"{w.base}_clone" and pending["password"] != "first-pw"
    assert len(pending["password"]) == 32 and not re.search(r"['\"\\/@:%?#&]", pending["password"])
    assert pending["masterarn"] == first["masterarn"]
    assert not can_login(pending)
    for _ in range(2):  # setSecret twice: the second finds the clone working and does nothing
        w.step(token1, "setSecret")
    assert can_login(pending) and can_login(first)  # both users work during the rotation
    w.step(token1, "testSecret")
    assert stages(w.sm, w.arn) == {w.first_version: ["AWSCURRENT"], token1: ["AWSPENDING"]}
    w.step(token1, "finishSecret")
    assert stages(w.sm, w.arn) == {w.first_version: ["AWSPREVIOUS"], token1: ["AWSCURRENT"]}
    assert w.step(token1, "finishSecret")["result"] == "already current"  # idempotent
    assert value(w.sm, w.arn) == pending
    assert can_login(first)  # workers holding the previous user keep working

    token2 = w.rotate()
    second = value(w.sm, w.arn)
    assert second["username"] == w.base and second["password"] not in ("first-pw", pending["password"])
    assert stages(w.sm, w.arn) == {token1: ["AWSPREVIOUS"], token2: ["AWSCURRENT"]}
    assert not can_login(first)  # the user of two rotations ago has a new password
    assert can_login(second) and can_login(pending)

    # the worker with the stale cached secret fails to log in, re-reads once and recovers
    calls: list[bool] = []

    def settings(force: bool) -> MySQLSettings:
        calls.append(force)
        return secrets.mysql_settings(w.arn, 3600, force)

    conn = source_connect.connect_with_rotation(settings)
    assert calls == [False, True]
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone()[0].startswith(f"{w.base}@")
    conn.close()

    token3 = w.rotate()
    assert value(w.sm, w.arn)["username"] == f"{w.base}_clone"
    assert not can_login(pending) and can_login(second)
    assert stages(w.sm, w.arn) == {token2: ["AWSPREVIOUS"], token3: ["AWSCURRENT"]}


def test_a_user_whose_privileges_come_through_a_default_role_keeps_them_after_rotation(env):
    """The clone gets the role and the role as its default, so it logs in with the role active
    (MariaDB lists the default role in SHOW GRANTS; MySQL 8 in mysql.default_roles, see the unit test)."""
    w = MySQLWorld(env)
    role = f"reader_{w.base}"
    root = w.root()
    with root.cursor() as cur:
        cur.execute(f"CREATE ROLE `{role}`")
        cur.execute(f"GRANT SELECT ON `{env.database}`.* TO `{role}`")
        for host in ("%", "localhost"):  # who may grant a role: its admins (here the master user)
            cur.execute(f"GRANT `{role}` TO %s@%s WITH ADMIN OPTION", (w.admin, host))
        for host in ("%", "localhost"):
            cur.execute(f"REVOKE SELECT, INSERT ON `{env.database}`.* FROM %s@%s", (w.base, host))
            cur.execute(f"GRANT `{role}` TO %s@%s", (w.base, host))
            cur.execute(f"SET DEFAULT ROLE `{role}` FOR %s@%s", (w.base, host))
    root.close()
    first = value(w.sm, w.arn)
    assert can_login(first)  # through the default role only
    w.rotate()
    clone = value(w.sm, w.arn)
    assert clone["username"] == f"{w.base}_clone"
    assert can_login(clone)  # SELECT works: the role is active at login
    conn = source_connect.connect(MySQLSettings.from_secret(clone))
    with conn.cursor() as cur:
        cur.execute("SELECT CURRENT_ROLE()")
        assert cur.fetchone()[0] == role
    conn.close()


def test_failing_test_step_leaves_awscurrent_untouched(env):
    w = MySQLWorld(env)
    first = value(w.sm, w.arn)
    token = start_rotation(w.sm, w.arn)
    w.step(token, "createSecret")
    w.step(token, "setSecret")
    pending = value(w.sm, w.arn, "AWSPENDING")
    root = w.root()
    with root.cursor() as cur:
        for host in ("%", "localhost"):
            cur.execute("ALTER USER %s@%s IDENTIFIED BY 'changed-behind-our-back'", (pending["username"], host))
    root.close()
    with pytest.raises(LoginFailed, match=pending["username"]):
        w.step(token, "testSecret")
    assert stages(w.sm, w.arn) == {w.first_version: ["AWSCURRENT"], token: ["AWSPENDING"]}
    assert value(w.sm, w.arn) == first and can_login(first)
    # Secrets Manager retries the rotation: setSecret sets the password again, and it completes
    for step in ("setSecret", "testSecret", "finishSecret"):
        w.step(token, step)
    assert value(w.sm, w.arn) == pending and can_login(pending)


def test_steps_refuse_events_that_are_not_a_rotation_in_progress(env):
    w = MySQLWorld(env)
    stray = str(uuid.uuid4())
    with pytest.raises(RotationError, match="does not have rotation enabled"):
        w.step(stray, "createSecret")
    token = w.rotate()
    with pytest.raises(RotationError, match="has no stage"):
        w.step(stray, "setSecret")
    with pytest.raises(RotationError, match="not staged AWSPENDING"):
        w.step(w.first_version, "setSecret")  # AWSPREVIOUS now
    assert w.step(token, "setSecret")["result"] == "already current"
    with pytest.raises(BadInputError, match="SecretId"):  # a name, not an ARN
        w.stack.invoke("RotationFunction", event("rot/x", token, "createSecret"))


# ---- MySQL, single user ------------------------------------------------------------------
def test_single_user_changes_its_own_password(env):
    w = MySQLWorld(env, masterarn=False)
    first = value(w.sm, w.arn)
    token = start_rotation(w.sm, w.arn)
    w.step(token, "createSecret")
    pending = value(w.sm, w.arn, "AWSPENDING")
    assert pending["username"] == w.base and pending["password"] != first["password"]
    w.step(token, "setSecret")
    assert can_login(pending) and not can_login(first)  # one user: the old password stops at once
    assert w.step(token, "setSecret")["result"] == "set"  # retried: logs in with the pending password
    w.step(token, "testSecret")
    w.step(token, "finishSecret")
    assert value(w.sm, w.arn) == pending
    assert stages(w.sm, w.arn) == {w.first_version: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    w.rotate()  # a second rotation starts from the new password
    assert can_login(value(w.sm, w.arn)) and not can_login(pending)


# ---- Snowflake, with a fake that checks keys and passwords like Snowflake --------------------
class FakeSnowflake:
    """One Snowflake user's two public-key slots and password, and an admin; records statements."""

    def __init__(self, user: str, public_key: str | None = None, password: str | None = None) -> None:
        self.user = user
        self.slots: dict[int, str | None] = {1: public_key, 2: None}
        self.password = password
        self.statements: list[tuple[str, str]] = []

    def can_login(self, secret: dict[str, Any]) -> bool:
        try:
            self.connect(SnowflakeSettings.from_secret(secret)).close()
            return True
        except PermissionError:
            return False

    def connect(self, settings: SnowflakeSettings) -> FakeSnowflake.Session:
        if settings.user == "SECADMIN":
            if settings.password != "admin-pw":
                raise PermissionError("admin password")
        elif settings.user.upper() != self.user:
            raise PermissionError("no such user")
        elif settings.private_key:
            if sf.public_key_of(settings.private_key) not in self.slots.values():
                raise PermissionError("JWT token is invalid")
        elif settings.password != self.password:
            raise PermissionError("Incorrect username or password")
        return FakeSnowflake.Session(self, settings.user.upper())

    class Session:
        def __init__(self, db: FakeSnowflake, user: str) -> None:
            self.db, self.login = db, user

        def execute(self, sql: str) -> list[tuple[Any, ...]]:
            self.db.statements.append((self.login, sql))
            if sql == "SELECT 1":
                return [(1,)]
            target = f'ALTER USER "{self.db.user.upper()}" '
            assert sql.startswith(target), sql
            if m := re.fullmatch(r"SET RSA_PUBLIC_KEY(_2)? = '([A-Za-z0-9+/=]+)'", sql[len(target) :]):
                self.db.slots[2 if m.group(1) else 1] = m.group(2)
            elif m := re.fullmatch(r"UNSET RSA_PUBLIC_KEY(_2)?", sql[len(target) :]):
                self.db.slots[2 if m.group(1) else 1] = None
            elif m := re.fullmatch(r"SET PASSWORD = '([^']+)'", sql[len(target) :]):
                self.db.password = m.group(1)
            else:
                raise AssertionError(sql)
            return []

        def close(self) -> None:
            pass


SNOWFLAKE = {
    "account": "myorg-acct",
    "user": "replicator",
    "database": "ANALYTICS",
    "schema": "REPLICA",
    "role": "REPLICATION",
    "warehouse": "LOAD_WH",
}


@pytest.fixture
def moto_sm(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager")


def snowflake_world(sm: Any, fake_secret: dict[str, Any], unset: bool = False) -> tuple[str, Rotation]:
    admin = sm.create_secret(
        Name="rot/sf-admin",
        SecretString=json.dumps({"user": "SECADMIN", "password": "admin-pw", "role": "SECURITYADMIN"}),
    )["ARN"]
    arn = sm.create_secret(Name="rot/sf", SecretString=json.dumps({**fake_secret, "adminarn": admin}))["ARN"]
    return arn, Rotation(SecretStore(sm), RotationSettings(ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY=unset))


def sf_rotate(sm: Any, rotation: Rotation, arn: str, steps: tuple[str, ...] = STEPS) -> str:
    token = start_rotation(sm, arn)
    for step in steps:
        rotation.handle(event(arn, token, step))
    return token


def test_snowflake_key_pair_alternates_slots_and_keeps_the_current_key_working(moto_sm):
    sm = moto_sm
    pem0, pub0 = sf.new_key_pair()
    db = FakeSnowflake("REPLICATOR", public_key=pub0)
    arn, rotation = snowflake_world(sm, {**SNOWFLAKE, "private_key": pem0})
    rotation.snowflake_connect = db.connect
    first = value(sm, arn)

    token1 = sf_rotate(sm, rotation, arn, STEPS[:1])
    pending = value(sm, arn, "AWSPENDING")
    assert pending["public_key_slot"] == 2 and pending["private_key"] != pem0
    assert pending["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    pub1 = sf.public_key_of(pending["private_key"])
    assert pending["public_key_fingerprint"] == sf.fingerprint(pub1)
    assert not db.can_login(pending)
    for step in STEPS[1:3]:
        rotation.handle(event(arn, token1, step))
    assert db.statements[0] == ("SECADMIN", f"ALTER USER \"REPLICATOR\" SET RSA_PUBLIC_KEY_2 = '{pub1}'")
    assert db.statements[-1] == ("REPLICATOR", "SELECT 1")  # testSecret logs in with the new key
    assert db.can_login(first) and db.can_login(pending)
    assert stages(sm, arn)[token1] == ["AWSPENDING"]
    rotation.handle(event(arn, token1, "finishSecret"))
    assert value(sm, arn) == pending
    assert stages(sm, arn)[token1] == ["AWSCURRENT"]
    assert db.can_login(first)  # the previous key stays in its slot until the next rotation

    token2 = sf_rotate(sm, rotation, arn)
    second = value(sm, arn)
    assert second["public_key_slot"] == 1
    assert db.slots == {1: sf.public_key_of(second["private_key"]), 2: pub1}
    assert not db.can_login(first) and db.can_login(pending) and db.can_login(second)
    assert stages(sm, arn) == {token1: ["AWSPREVIOUS"], token2: ["AWSCURRENT"]}
    assert [s for _, s in db.statements if s.startswith("ALTER")][1].startswith(
        'ALTER USER "REPLICATOR" SET RSA_PUBLIC_KEY = '
    )
    assert value(sm, arn, "AWSPREVIOUS") == pending


def test_snowflake_old_slot_unset_at_finish_when_asked(moto_sm):
    pem0, pub0 = sf.new_key_pair()
    db = FakeSnowflake("REPLICATOR", public_key=pub0)
    arn, rotation = snowflake_world(moto_sm, {**SNOWFLAKE, "private_key": pem0}, unset=True)
    rotation.snowflake_connect = db.connect
    first = value(moto_sm, arn)
    sf_rotate(moto_sm, rotation, arn)
    assert db.statements[-1] == ("SECADMIN", 'ALTER USER "REPLICATOR" UNSET RSA_PUBLIC_KEY')
    assert db.slots[1] is None and not db.can_login(first) and db.can_login(value(moto_sm, arn))


def test_snowflake_failing_test_step_leaves_awscurrent_untouched(moto_sm):
    pem0, pub0 = sf.new_key_pair()
    db = FakeSnowflake("REPLICATOR", public_key=pub0)
    arn, rotation = snowflake_world(moto_sm, {**SNOWFLAKE, "private_key": pem0})
    rotation.snowflake_connect = db.connect
    token = start_rotation(moto_sm, arn)
    for step in STEPS[:2]:
        rotation.handle(event(arn, token, step))
    db.slots[2] = None  # someone unset the new key between setSecret and testSecret
    with pytest.raises(PermissionError, match="JWT"):
        rotation.handle(event(arn, token, "testSecret"))
    assert stages(moto_sm, arn)[token] == ["AWSPENDING"]
    assert value(moto_sm, arn)["private_key"] == pem0


def test_snowflake_password_fallback_as_the_user_itself(moto_sm):
    db = FakeSnowflake("REPLICATOR", password="first-pw")
    arn = moto_sm.create_secret(Name="rot/sf-pw", SecretString=json.dumps({**SNOWFLAKE, "password": "first-pw"}))["ARN"]
    rotation = Rotation(SecretStore(moto_sm), RotationSettings(), snowflake_connect=db.connect)
    first = value(moto_sm, arn)
    token = sf_rotate(moto_sm, rotation, arn, STEPS[:2])
    pending = value(moto_sm, arn, "AWSPENDING")
    assert "private_key" not in pending and pending["password"] != "first-pw"
    assert db.statements == [("REPLICATOR", f"ALTER USER \"REPLICATOR\" SET PASSWORD = '{pending['password']}'")]
    rotation.handle(event(arn, token, "setSecret"))  # retried: the new password works, nothing is set again
    assert len(db.statements) == 1
    for step in STEPS[2:]:
        rotation.handle(event(arn, token, step))
    assert value(moto_sm, arn) == pending and db.can_login(pending) and not db.can_login(first)


def test_snowflake_test_step_logs_in_to_the_emulator_with_the_generated_key(env):
    """The emulator does not check keys, but the real connector must load the PEM and sign with it."""
    pem, _ = sf.new_key_pair()
    pending = {
        "account": "emulator",
        "user": "fake",
        "database": "ANALYTICS",
        "schema": env.schema,
        "host": "127.0.0.1",
        "port": env.sf.port,
        "protocol": "http",
        "private_key": pem,
    }
    strategy = sf.strategy(pending, SecretStore(None), RotationSettings(), None)
    assert isinstance(strategy, sf.KeyPair)
    strategy.test(pending)  # raises if the connector cannot use the key
    broken = {**pending, "private_key": pem.replace("PRIVATE KEY", "PUBLIC KEY")}
    with pytest.raises(ValueError):
        strategy.test(broken)
