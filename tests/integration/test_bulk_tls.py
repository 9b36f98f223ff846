"""TLS of the bulk reader (source/bulk.py, MySQL's C client with its own OpenSSL) against a real MariaDB
with a certificate: the server is verified against the CA bundle and by its host name, as pymysql's
connection verifies it (source/connect.py), with Python's ssl module loaded first (both OpenSSLs in
one process). A certificate of another CA, or for another host, is refused by both drivers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bulk
from aurora_replication_dev.local.services import MariaDB

# not 127.0.0.1: MariaDB Connector/C skips the host name check for 127.0.0.1, ::1 and sockets ("local"
# connections); 127.0.0.2 is loopback too, and checked as any other host
HOST = "127.0.0.2"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName]):
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mariadb test server")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _files(tmp: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    return (
        _pem(tmp / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)),
        _pem(
            tmp / f"{name}.key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ),
        ),
    )


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory):
    """Two MariaDB servers with certificates of one CA: one for 127.0.0.1, one for another host only."""
    tmp = tmp_path_factory.mktemp("tls")
    ca, ca_key = _ca("test CA")
    ca_file, _ = _files(tmp, "ca", ca, ca_key)
    other_ca, other_key = _ca("another CA")
    other_file, _ = _files(tmp, "other-ca", other_ca, other_key)
    servers = {}
    for name, names in (
        ("right", [x509.IPAddress(ipaddress.ip_address(HOST))]),
        ("wrong-host", [x509.DNSName("db.example")]),
    ):
        cert, key = _server_cert(ca, ca_key, names)
        cert_file, key_file = _files(tmp, name, cert, key)
        db = MariaDB(
            tmp / f"mariadb-{name}",
            database="tlsdb",
            extra_args=(
                f"--ssl-ca={ca_file}",
                f"--ssl-cert={cert_file}",
                f"--ssl-key={key_file}",
                f"--bind-address=127.0.0.1,{HOST}",
            ),
        ).start()
        servers[name] = db
    yield servers, ca_file, other_file
    for db in servers.values():
        db.stop()


def _settings(db: MariaDB, bundle: str) -> MySQLSettings:
    return MySQLSettings(HOST, db.port, db.user, db.password, "tlsdb", tls=True, ca_bundle=bundle)


CHECK = """
import sys
import ssl  # Python's OpenSSL loaded first, then the C client's own: both in one process
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bulk, connect
host, port, user, password, bundle, driver = sys.argv[1:]
settings = MySQLSettings(host, int(port), user, password, "tlsdb", tls=True, ca_bundle=bundle)
try:
    conn = (bulk.connect if driver == "bulk" else connect.connect)(settings)
except Exception as e:
    print("refused", e.args[0])
    raise SystemExit(0)
cur = conn.cursor()
cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
version = cur.fetchone()[1]
print("connected", version.decode() if isinstance(version, bytes) else version)
"""


def _try(settings: MySQLSettings, driver: str) -> str:
    """Each connection in a process of its own: the C client keeps TLS state per process, and a
    server verified once must not let another connection skip its own verification."""
    args = [settings.host, str(settings.port), settings.username, settings.password, settings.ca_bundle, driver]
    done = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_bulk_reader_verifies_the_server_as_pymysql_does(tls_servers):
    servers, ca, other_ca = tls_servers
    # the C client says 2026 (TLS error); pymysql 2003 (it wraps the ssl module's error)
    for driver, code in (("bulk", 2026), ("pymysql", 2003)):
        assert _try(_settings(servers["right"], ca), driver) in ("connected TLSv1.2", "connected TLSv1.3")
        # a certificate of another CA; a certificate of the right CA for another host
        assert _try(_settings(servers["right"], other_ca), driver) == f"refused {code}", driver
        assert _try(_settings(servers["wrong-host"], ca), driver) == f"refused {code}", driver


def test_the_bulk_reader_reads_in_utc_over_tls(tls_servers):
    servers, ca, _ = tls_servers
    conn = bulk.connect(_settings(servers["right"], ca))
    try:
        cur = conn.cursor()
        cur.execute("SELECT @@session.time_zone")
        assert cur.fetchone()[0] == b"+00:00"
    finally:
        conn.close()
