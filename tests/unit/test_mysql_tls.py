"""TLS to MySQL: verified against the CA bundle with host name checking; off for loopback or `tls: false`."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aurora_replication import secrets
from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.rotation import mysql as rotation_mysql
from aurora_replication.rotation.base import rotation_settings
from aurora_replication.secrets import MySQLSettings
from aurora_replication.services import Services
from aurora_replication.source import connect as source_connect

SECRET = {
    "host": "shop.cluster-abc.eu-west-1.rds.amazonaws.com",
    "username": "u",
    "password": "pw-123456",
    "dbname": "shop",
}


def _write_ca(path: Path, common_name: str) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


REQUIRED_ENV = {
    "STATE_TABLE": "t",
    "CHUNK_QUEUE_URL": "q",
    "SOURCE_SECRET_ARN": "arn:source",
    "TARGET_SECRET_ARN": "arn:target",
}


def _settings_through_the_environment(monkeypatch: pytest.MonkeyPatch, bundle: str | None) -> MySQLSettings:
    """The way a function gets them: the environment validated by config.Settings, the secret read
    by Services.endpoints (Secrets Manager replaced by the secret above)."""
    env = dict(REQUIRED_ENV)
    if bundle is not None:
        env["MYSQL_CA_BUNDLE"] = bundle
    monkeypatch.setattr(secrets, "read_secret", lambda arn, max_age, force=False, provider=None: dict(SECRET))
    return Services.of(settings_from(env), state=None, sqs=None).endpoints.mysql_settings()  # type: ignore[arg-type]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """pymysql.connect replaced by a recorder: connect() builds its arguments, no server is needed."""
    calls: dict[str, Any] = {}

    def fake_connect(**kwargs: Any) -> str:
        calls.update(kwargs)
        return "connection"

    monkeypatch.setattr(source_connect.pymysql, "connect", fake_connect)
    return calls


def test_tls_verifies_against_the_configured_bundle_with_host_name_checking(tmp_path, monkeypatch, captured):
    bundle = _write_ca(tmp_path / "bundle.pem", "Test RDS Root CA")
    settings = _settings_through_the_environment(monkeypatch, str(bundle))
    assert settings.tls and settings.ca_bundle == str(bundle)

    assert source_connect.connect(settings) == "connection"
    ctx = captured["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname is True
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    # exactly the bundle's CA is trusted, not the system store
    subjects = [dict(rdn[0] for rdn in c["subject"]) for c in ctx.get_ca_certs()]
    assert subjects == [{"commonName": "Test RDS Root CA"}]
    assert captured["host"] == SECRET["host"]


def test_default_bundle_is_the_one_packaged_in_the_layer(monkeypatch):
    expected = Path(source_connect.__file__).resolve().parents[1] / "certs" / "rds-global-bundle.pem"
    assert Path(_settings_through_the_environment(monkeypatch, None).ca_bundle) == expected
    assert Path(_settings_through_the_environment(monkeypatch, "  ").ca_bundle) == expected


def test_the_bundle_comes_only_through_the_validated_settings(tmp_path, monkeypatch):
    """MYSQL_CA_BUNDLE is read once, by config.Settings, not looked up in os.environ elsewhere."""
    monkeypatch.setenv("MYSQL_CA_BUNDLE", str(tmp_path / "elsewhere.pem"))
    assert MySQLSettings.from_secret(SECRET).ca_bundle == str(MySQLSettings.PACKAGED_CA_BUNDLE)
    assert MySQLSettings.from_secret(SECRET, "system").ca_bundle == "system"


def test_rotation_connects_with_the_bundle_of_its_settings(tmp_path):
    """The rotation function validates its own environment (RotationSettings); its MySQL logins
    trust the same MYSQL_CA_BUNDLE."""
    bundle = str(tmp_path / "rotation.pem")
    seen: list[MySQLSettings] = []

    class Refused(Exception):
        pass

    def connect(settings: MySQLSettings) -> Any:
        seen.append(settings)
        raise Refused

    strategy = rotation_mysql.SingleUser(None, rotation_settings({"MYSQL_CA_BUNDLE": bundle}), connect)  # type: ignore[arg-type]
    with pytest.raises(Refused):
        strategy.test(dict(SECRET))
    assert [s.ca_bundle for s in seen] == [bundle]


def test_missing_bundle_is_an_error_that_names_the_file_and_the_fix(tmp_path, monkeypatch, captured):
    missing = tmp_path / "nope.pem"
    with pytest.raises(BadInputError, match=r"nope\.pem.*make ca-bundle"):
        source_connect.connect(MySQLSettings.from_secret(SECRET, str(missing)))
    assert captured == {}  # never connected without verification


def test_system_store_on_request(monkeypatch, captured):
    source_connect.connect(_settings_through_the_environment(monkeypatch, "system"))
    ctx = captured["ssl"]
    assert ctx.check_hostname is True and ctx.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "secret",
    [
        {**SECRET, "host": "127.0.0.1"},
        {**SECRET, "host": "localhost"},
        {**SECRET, "tls": False},
        {**SECRET, "tls": "false"},
    ],
)
def test_loopback_or_tls_false_connects_without_tls(secret, tmp_path, monkeypatch, captured):
    settings = MySQLSettings.from_secret(secret, str(tmp_path / "absent.pem"))  # not needed, so not checked
    assert settings.tls is False
    source_connect.connect(settings)
    assert captured["ssl"] is None


def test_loopback_with_tls_true_still_verifies(tmp_path, monkeypatch, captured):
    bundle = _write_ca(tmp_path / "bundle.pem", "Local CA")
    source_connect.connect(MySQLSettings.from_secret({**SECRET, "host": "127.0.0.1", "tls": True}, str(bundle)))
    assert isinstance(captured["ssl"], ssl.SSLContext) and captured["ssl"].check_hostname is True


def test_the_packaged_bundle_holds_only_amazon_rds_root_cas():
    import re

    from cryptography import x509

    from aurora_replication.secrets import MySQLSettings

    pem = MySQLSettings.PACKAGED_CA_BUNDLE.read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    assert len(blocks) >= 20
    for block in blocks:
        cert = x509.load_pem_x509_certificate(block.encode())
        assert cert.subject == cert.issuer  # self-signed roots
        assert "Amazon RDS" in cert.subject.rfc4514_string() and "Root CA" in cert.subject.rfc4514_string()
    import ssl

    assert len(ssl.create_default_context(cafile=str(MySQLSettings.PACKAGED_CA_BUNDLE)).get_ca_certs()) == len(blocks)
