"""Rotation statements as text: quoting, grant copying, rejection of hostile names and keys, slots."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pymysql.converters
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aurora_replication.errors import BadInputError
from aurora_replication.rotation import mysql as my
from aurora_replication.rotation import snowflake as sf
from aurora_replication.rotation.base import PASSWORD_EXCLUDE, RotationError, parse_event, secret_kind
from aurora_replication_dev.local.template import Template

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:replication/source-AbCdEf"
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "3f9c1a52-7e4b-4b8e-9d35-1c2a7f0e6b11"


def rendered(stmt: tuple[str, tuple[object, ...]]) -> str:
    """The text pymysql sends: parameters escaped as string literals."""
    sql, params = stmt
    return sql % tuple(pymysql.converters.escape_item(p, "utf8mb4") for p in params)


# ---- events ------------------------------------------------------------------------------
def test_event_is_validated():
    event = parse_event({"SecretId": ARN, "ClientRequestToken": TOKEN, "Step": "setSecret", "RotationToken": "x"})
    assert (event.secret_id, event.token, event.step) == (ARN, TOKEN, "setSecret")


@pytest.mark.parametrize(
    "event, fragment",
    [
        ([], "JSON object"),
        ({"ClientRequestToken": TOKEN, "Step": "createSecret"}, "SecretId"),
        ({"SecretId": "replication/source", "ClientRequestToken": TOKEN, "Step": "createSecret"}, "SecretId"),
        ({"SecretId": ARN, "ClientRequestToken": "short", "Step": "createSecret"}, "ClientRequestToken"),
        ({"SecretId": ARN, "ClientRequestToken": TOKEN + "'; --", "Step": "createSecret"}, "ClientRequestToken"),
        ({"SecretId": ARN, "ClientRequestToken": TOKEN, "Step": "dropSecret"}, "Step"),
    ],
)
def test_bad_events_name_the_field(event, fragment):
    with pytest.raises(BadInputError, match=fragment):
        parse_event(event)


def test_secret_kind_by_shape():
    assert secret_kind({"engine": "mysql", "host": "h", "username": "u"}) == "mysql"
    assert secret_kind({"account": "a", "user": "u"}) == "snowflake"
    with pytest.raises(RotationError, match="cannot tell"):
        secret_kind({"user": "u"})


def test_generated_passwords_exclude_characters_that_break_urls_and_sql():
    for c in "'\"\\/@:%?#&":
        assert c in PASSWORD_EXCLUDE


# ---- MySQL -------------------------------------------------------------------------------
def test_alternate_user_toggles():
    assert my.alternate_user("replicator") == "replicator_clone"
    assert my.alternate_user("replicator_clone") == "replicator"
    assert my.alternate_user("_clone") == "_clone_clone"
    with pytest.raises(RotationError, match="control character"):
        my.alternate_user("bad\nname")


def test_account_names_and_passwords_are_bound_literals():
    hostile = "x'@'%' IDENTIFIED BY 'p'; DROP USER root; -- "
    assert rendered(my.create_user_sql(hostile, "%", "pw")) == (
        "CREATE USER IF NOT EXISTS 'x\\'@\\'%\\' IDENTIFIED BY \\'p\\'; DROP USER root; -- '@'%' IDENTIFIED BY 'pw'"
    )
    assert rendered(my.set_password_sql("app_clone", "10.0.%", "s3cr!t")) == (
        "ALTER USER 'app_clone'@'10.0.%' IDENTIFIED BY 's3cr!t'"
    )
    assert rendered(my.set_own_password_sql("a'b", "8.0.39")) == "ALTER USER CURRENT_USER() IDENTIFIED BY 'a\\'b'"
    assert rendered(my.set_own_password_sql("a'b", "10.11.6-MariaDB-0+deb12u1")) == "SET PASSWORD = PASSWORD('a\\'b')"
    assert rendered(my.show_grants_sql("app", "%")) == "SHOW GRANTS FOR 'app'@'%'"
    assert rendered(my.account_hosts_sql("app")) == "SELECT Host FROM mysql.user WHERE User = 'app' ORDER BY Host"


@pytest.mark.parametrize(
    "line, expected",
    [
        # MariaDB: backticks, password hash after the account (dropped)
        ("GRANT SELECT, SHOW VIEW ON `shop`.* TO `app`@`%`", "GRANT SELECT, SHOW VIEW ON `shop`.* TO 'app_clone'@'%'"),
        ("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*A4B6157319038724E3560894F7F932C8886EBFCF'", None),
        ("GRANT RELOAD ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*A4B6'", "GRANT RELOAD ON *.* TO 'app_clone'@'%'"),
        # MySQL 5.7: single quotes; grant option kept
        (
            "GRANT SELECT ON `shop`.`orders` TO 'app'@'%' WITH GRANT OPTION",
            "GRANT SELECT ON `shop`.`orders` TO 'app_clone'@'%' WITH GRANT OPTION",
        ),
        # a database name with % and the word TO inside quotes
        ("GRANT SELECT ON `my%db TO x`.* TO `app`@`%`", "GRANT SELECT ON `my%db TO x`.* TO 'app_clone'@'%'"),
        # column privileges
        (
            "GRANT SELECT (`id`, `name`) ON `shop`.`t` TO `app`@`%`",
            "GRANT SELECT (`id`, `name`) ON `shop`.`t` TO 'app_clone'@'%'",
        ),
        # roles (MySQL 8 and MariaDB) and MariaDB's default role line
        ("GRANT `reader`@`%` TO `app`@`%`", "GRANT `reader`@`%` TO 'app_clone'@'%'"),
        ("GRANT `reader` TO `app`@`%` WITH ADMIN OPTION", "GRANT `reader` TO 'app_clone'@'%' WITH ADMIN OPTION"),
        ("SET DEFAULT ROLE `reader` FOR `app`@`%`", "SET DEFAULT ROLE `reader` FOR 'app_clone'@'%'"),
    ],
)
def test_grants_are_copied_to_the_clone(line, expected):
    stmt = my.copy_grant_sql(line, "app", "%", "app_clone", "%")
    assert (rendered(stmt) if stmt else None) == expected


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("GRANT SELECT ON shop.* TO `app`@`%`; DROP USER `root`@`%`", "another account"),
        ("GRANT SELECT ON shop.*; DROP DATABASE shop; GRANT SELECT ON x.* TO `app`@`%`", "separator or a comment"),
        ("GRANT SELECT ON shop.* /* x */ TO `app`@`%`", "separator or a comment"),
        ("GRANT SELECT ON `shop.* TO `app`@`%`", "unterminated quote"),
        ("GRANT SELECT ON `shop`.* TO `admin`@`%`", "another account"),
        ("REVOKE SELECT ON `shop`.* FROM `app`@`%`", "unexpected SHOW GRANTS line"),
        ("GRANT SELECT ON `shop`.*", "has no TO"),
    ],
)
def test_unexpected_grant_lines_are_refused(line, fragment):
    with pytest.raises(RotationError, match=fragment):
        my.copy_grant_sql(line, "app", "%", "app_clone", "%")


# ---- Snowflake ---------------------------------------------------------------------------
def _public_key(key_size: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_user_names_are_quoted_as_snowflake_resolves_them():
    assert sf.user_ident("replicator") == '"REPLICATOR"'
    assert sf.user_ident("Svc$Loader_1") == '"SVC$LOADER_1"'
    assert sf.user_ident("svc.loader@corp") == '"svc.loader@corp"'
    assert sf.user_ident('x" SET DISABLED = TRUE; --') == '"x"" SET DISABLED = TRUE; --"'
    with pytest.raises(RotationError, match="control character"):
        sf.user_ident("bad\x00user")


def test_public_key_goes_into_the_named_slot_as_a_literal():
    key = _public_key()
    assert sf.set_public_key_sql("replicator", 2, key) == f"ALTER USER \"REPLICATOR\" SET RSA_PUBLIC_KEY_2 = '{key}'"
    assert sf.set_public_key_sql("replicator", 1, key) == f"ALTER USER \"REPLICATOR\" SET RSA_PUBLIC_KEY = '{key}'"
    assert sf.unset_public_key_sql("replicator", 2) == 'ALTER USER "REPLICATOR" UNSET RSA_PUBLIC_KEY_2'
    with pytest.raises(RotationError, match="1 or 2"):
        sf.set_public_key_sql("replicator", 3, key)


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("MIIB'; ALTER USER admin SET PASSWORD = 'x'; --", "base64"),
        ("MIIB\nIjAN", "base64"),
        (base64.b64encode(b"not a key at all").decode(), "not a DER public key"),
    ],
)
def test_hostile_or_broken_keys_are_refused(key, fragment):
    with pytest.raises(RotationError, match=fragment):
        sf.set_public_key_sql("replicator", 2, key)


def test_weak_and_non_rsa_keys_are_refused():
    with pytest.raises(RotationError, match="2048"):
        sf.validate_public_key(_public_key(1024))
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = ec_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(RotationError, match="RSA"):
        sf.validate_public_key(base64.b64encode(der).decode())


def test_password_literal_is_checked():
    assert sf.set_password_sql("replicator", "Abc123!()*-_.xyz") == (
        "ALTER USER \"REPLICATOR\" SET PASSWORD = 'Abc123!()*-_.xyz'"
    )
    for bad in ("short", "has'quote-long", "back\\slash-long", "new\nline-long"):
        with pytest.raises(RotationError, match="password"):
            sf.set_password_sql("replicator", bad)


def test_slots_alternate():
    assert sf.other_slot({}) == 2  # a key without a recorded slot is taken to be in RSA_PUBLIC_KEY
    assert sf.other_slot({"public_key_slot": 1}) == 2
    assert sf.other_slot({"public_key_slot": 2}) == 1
    assert sf.other_slot({"public_key_slot": "2"}) == 1
    with pytest.raises(RotationError, match="1 or 2"):
        sf.other_slot({"public_key_slot": 7})


def test_new_key_pair_is_pkcs8_rsa_2048_and_matches_its_public_key():
    pem, public = sf.new_key_pair()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert sf.public_key_of(pem) == public
    assert sf.validate_public_key(public) == public
    assert sf.fingerprint(public).startswith("SHA256:")


def test_sample_events_are_valid_rotation_events():
    steps = {parse_event(json.loads(p.read_text())).step for p in (ROOT / "events").glob("rotation-*.json")}
    assert steps == {"createSecret", "setSecret", "testSecret", "finishSecret"}


def test_template_rotation_is_least_privilege_and_switchable():
    t = Template(ROOT / "template.yaml")
    fn = t.doc["Resources"]["RotationFunction"]
    assert fn["Condition"] == "RotateAny" and fn["Properties"]["CodeUri"] == "functions/rotation/"
    statements = fn["Properties"]["Policies"][0]["Statement"]
    assert statements[0]["Resource"] == [{"Ref": "SourceSecretArn"}, {"Ref": "TargetSecretArn"}]
    assert "secretsmanager:UpdateSecretVersionStage" in statements[0]["Action"]
    assert statements[1] == {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}
    for name, secret, condition in (
        ("SourceSecretRotationSchedule", "SourceSecretArn", "RotateSource"),
        ("TargetSecretRotationSchedule", "TargetSecretArn", "RotateTarget"),
    ):
        schedule = t.doc["Resources"][name]
        assert schedule["Condition"] == condition
        assert schedule["Properties"]["SecretId"] == {"Ref": secret}
        assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": {"Ref": "RotationScheduleExpression"}}
    permission = t.resource("RotationFunctionInvokePermission")
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert t.doc["Parameters"]["RotateSourceSecret"]["Default"] == "false"


# ---- MySQL 8 default roles ----------------------------------------------------------------
def test_default_roles_statements_bind_every_account():
    assert rendered(my.default_roles_sql("app", "%")) == (
        "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = 'app' AND HOST = '%' "
        "ORDER BY DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST"
    )
    assert rendered(my.set_default_roles_sql([("reader", "%"), ("it's", "10.0.%")], "app_clone", "%")) == (
        "SET DEFAULT ROLE 'reader'@'%', 'it\\'s'@'10.0.%' TO 'app_clone'@'%'"
    )
    with pytest.raises(RotationError):
        my.set_default_roles_sql([], "app_clone", "%")


@pytest.mark.parametrize(
    "version, has_table",
    [("8.0.39", True), ("8.0.mysql_aurora.3.05.2", True), ("5.7.12", False), ("10.11.6-MariaDB-0+deb12u1", False)],
)
def test_only_mysql_8_keeps_default_roles_apart(version, has_table):
    assert my.has_default_roles_table(version) is has_table


class FakeMySQL8:
    """A MySQL 8 server as the master sees it: the user's role grant in SHOW GRANTS, its default
    role only in mysql.default_roles (what SHOW GRANTS leaves out)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql, params=()):
        text = rendered((sql, tuple(params)))
        self.statements.append(text)
        if text == "SELECT VERSION()":
            return [("8.0.mysql_aurora.3.05.2",)]
        if text.startswith("SELECT Host FROM mysql.user"):
            return [("%",)]
        if text.startswith("SHOW GRANTS"):
            return [("GRANT USAGE ON *.* TO `app`@`%`",), ("GRANT `reader`@`%` TO `app`@`%`",)]
        if "mysql.default_roles" in text:
            return [("reader", "%")]
        return []

    def close(self) -> None:
        pass


class FakeStore:
    def value(self, arn, stage="AWSCURRENT"):
        return {"username": "admin", "password": "admin-pw"}


def test_alternating_users_copy_the_default_role_and_set_the_password_last():
    from aurora_replication.rotation.base import rotation_settings

    server = FakeMySQL8()

    def connect(settings):
        if settings.username == "app_clone":  # the pending login is tried first: not there yet
            raise my.LoginFailed("no such user yet")
        return server

    current = {"host": "db", "username": "app", "password": "old", "dbname": "shop", "masterarn": ARN}
    pending = {**current, "username": "app_clone", "password": "new-pw"}
    my.AlternatingUsers(FakeStore(), rotation_settings({}), connect).set(current, pending, None)
    writes = [s for s in server.statements if not s.startswith(("SELECT", "SHOW"))]
    assert writes[0].startswith("CREATE USER IF NOT EXISTS 'app_clone'@'%' IDENTIFIED BY '")
    assert "new-pw" not in writes[0]  # a throwaway until every grant is in place
    assert writes[1:] == [
        "GRANT `reader`@`%` TO 'app_clone'@'%'",
        "SET DEFAULT ROLE 'reader'@'%' TO 'app_clone'@'%'",
        "ALTER USER 'app_clone'@'%' IDENTIFIED BY 'new-pw'",
    ]
