"""Rotation of the Snowflake target secret: key pairs through the two public-key slots, or a password.

**Key pair** (the secret has ``private_key``): Snowflake keeps two public keys per user,
``RSA_PUBLIC_KEY`` (slot 1) and ``RSA_PUBLIC_KEY_2`` (slot 2). ``createSecret`` makes a new RSA
2048 key pair and records in ``public_key_slot`` the slot the current key does *not* use;
``setSecret`` puts the public key there (``ALTER USER ... SET RSA_PUBLIC_KEY_2 = '...'``), so the
current key keeps working until the rotation after next overwrites its slot. With
``ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY=true`` ``finishSecret`` also unsets the old key's slot at
once (workers still holding it then re-read the secret after their next failed login).

**Password** (the secret has ``password`` and no ``private_key``): a new password, set with
``ALTER USER ... SET PASSWORD = '...'``; the old password stops working at ``setSecret``.

``ALTER USER`` runs as the admin of the secret named by ``adminarn`` (e.g. a user with
``SECURITYADMIN``, or the owner of the user), or as the user itself when there is none. The
statements are built by the pure functions below: the user name is validated and quoted, the
key is checked to be a base64 RSA public key and the password to hold no quote, backslash or
control character before either becomes a literal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aurora_replication.identifiers import InvalidIdentifierError, snowflake_ident
from aurora_replication.rotation.base import RotationError, RotationSettings, SecretStore, Strategy
from aurora_replication.secrets import SnowflakeSettings
from aurora_replication.target.snowflake import client as target

SLOTS = {1: "RSA_PUBLIC_KEY", 2: "RSA_PUBLIC_KEY_2"}
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_PASSWORD = re.compile(r"^[^'\"\\\x00-\x1f\x7f]{8,256}$")
# what the connection needs from the target secret when the admin secret does not say
CONNECTION_FIELDS = ("account", "host", "port", "protocol", "database", "schema", "warehouse")


class Executor(Protocol):
    def execute(self, sql: str) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


Connect = Callable[[SnowflakeSettings], Executor]


# ---- pure statement builders --------------------------------------------------------------
def user_ident(user: str) -> str:
    """The quoted name of the user the secret logs in as.

    Snowflake resolves an unquoted name in upper case, so a plain name (``replicator``) is
    upper-cased first, as ``ALTER USER replicator`` would; any other name is quoted exactly.
    """
    try:
        return snowflake_ident(user.upper() if _PLAIN_NAME.match(user) else user)
    except InvalidIdentifierError as e:
        raise RotationError(f"Snowflake user name: {e}") from None


def slot_parameter(slot: object) -> str:
    if slot not in SLOTS:
        raise RotationError(f"public_key_slot must be 1 or 2, got {slot!r}")
    return SLOTS[slot]


def validate_public_key(body: str) -> str:
    """A base64 DER RSA public key (what Snowflake takes, without PEM armour), else RotationError."""
    if not isinstance(body, str) or len(body) > 4096 or not _BASE64.match(body):
        raise RotationError("public key must be base64 text (the PEM body without header lines)")
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(body, validate=True))
    except (ValueError, binascii.Error):
        raise RotationError("public key is base64 but not a DER public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise RotationError("public key must be an RSA key of at least 2048 bits")
    return body


def set_public_key_sql(user: str, slot: int, public_key: str) -> str:
    return f"ALTER USER {user_ident(user)} SET {slot_parameter(slot)} = '{validate_public_key(public_key)}'"


def unset_public_key_sql(user: str, slot: int) -> str:
    return f"ALTER USER {user_ident(user)} UNSET {slot_parameter(slot)}"


def set_password_sql(user: str, password: str) -> str:
    if not isinstance(password, str) or not _PASSWORD.match(password):
        raise RotationError("new Snowflake password must be 8-256 characters without quotes, backslashes or controls")
    return f"ALTER USER {user_ident(user)} SET PASSWORD = '{password}'"


def other_slot(current: dict[str, Any]) -> int:
    """The slot the new key goes in: not the current key's (slot 1 when the secret does not say)."""
    slot = current.get("public_key_slot", 1)
    try:
        slot = int(slot)
    except (TypeError, ValueError):
        slot = 0
    slot_parameter(slot)
    return 2 if slot == 1 else 1


# ---- keys ---------------------------------------------------------------------------------
def new_key_pair() -> tuple[str, str]:
    """(private key as unencrypted PKCS8 PEM, public key as base64 DER) of a new RSA 2048 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, public_key_of(pem)


def public_key_of(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise RotationError("private_key of the Snowflake secret is not an unencrypted PEM private key") from None
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def fingerprint(public_key: str) -> str:
    """As Snowflake shows it in ``DESC USER`` (``RSA_PUBLIC_KEY_FP``)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(public_key)).digest()).decode()


# ---- connections --------------------------------------------------------------------------
@dataclass
class ConnectorExecutor:
    conn: Any

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return target.execute(self.conn, sql)

    def close(self) -> None:
        self.conn.close()


def connector_connect(settings: SnowflakeSettings) -> Executor:
    return ConnectorExecutor(target.connect(settings))


# ---- the strategies -----------------------------------------------------------------------
def _settings(secret: dict[str, Any]) -> SnowflakeSettings:
    return SnowflakeSettings.from_secret(secret)


@dataclass
class _SnowflakeStrategy:
    store: SecretStore
    settings: RotationSettings
    connect: Connect

    def _admin(self, current: dict[str, Any]) -> SnowflakeSettings:
        admin_arn = str(current.get("adminarn") or "")
        if not admin_arn:
            return _settings(current)
        admin = self.store.value(admin_arn, stage="AWSCURRENT")
        if not admin or not admin.get("user"):
            raise RotationError(f"admin secret {admin_arn} lacks user")
        base = {k: current[k] for k in CONNECTION_FIELDS if current.get(k) is not None}
        return _settings({**base, **admin})

    def _run_as_admin(self, current: dict[str, Any], statements: list[str]) -> None:
        ex = self.connect(self._admin(current))
        try:
            for sql in statements:
                ex.execute(sql)
        finally:
            ex.close()

    def test(self, pending: dict[str, Any]) -> None:
        ex = self.connect(_settings(pending))
        try:
            rows = ex.execute("SELECT 1")
        finally:
            ex.close()
        if [tuple(str(v) for v in r) for r in rows] != [("1",)]:
            raise RotationError("SELECT 1 with the pending Snowflake credentials did not return 1")

    def finish(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


@dataclass
class KeyPair(_SnowflakeStrategy):
    def create(self, current: dict[str, Any]) -> dict[str, Any]:
        public_key_of(str(current["private_key"]))  # the current key must be readable
        slot = other_slot(current)
        pem, public = new_key_pair()
        return {**current, "private_key": pem, "public_key_slot": slot, "public_key_fingerprint": fingerprint(public)}

    def set(self, current: dict[str, Any], pending: dict[str, Any], previous: dict[str, Any] | None) -> None:
        slot = other_slot(current)
        if pending.get("public_key_slot") != slot:
            raise RotationError(
                f"pending key is recorded in slot {pending.get('public_key_slot')!r}; the free slot is {slot}"
            )
        public = public_key_of(str(pending["private_key"]))
        self._run_as_admin(current, [set_public_key_sql(str(current["user"]), slot, public)])

    def finish(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self.settings.unset_previous_key:
            self._run_as_admin(new, [unset_public_key_sql(str(new["user"]), other_slot(new))])


@dataclass
class Password(_SnowflakeStrategy):
    def create(self, current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "password": self.store.random_password(self.settings.password_length)}

    def set(self, current: dict[str, Any], pending: dict[str, Any], previous: dict[str, Any] | None) -> None:
        statement = set_password_sql(str(current["user"]), str(pending["password"]))
        try:
            self.connect(_settings(pending)).close()
            return  # set already (a retried step); setting it again could break a password-history policy
        except Exception:  # noqa: BLE001 - any failure means: not set yet
            pass
        self._run_as_admin(current, [statement])


def strategy(
    current: dict[str, Any], store: SecretStore, settings: RotationSettings, connect: Connect | None
) -> Strategy:
    if str(current.get("user") or "") == "":
        raise RotationError("Snowflake secret lacks user")
    if current.get("private_key"):
        return KeyPair(store, settings, connect or connector_connect)
    if current.get("password"):
        return Password(store, settings, connect or connector_connect)
    raise RotationError("Snowflake secret has neither private_key nor password; nothing to rotate")
