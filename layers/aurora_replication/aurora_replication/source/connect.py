"""MySQL connections: TLS against the RDS CA bundle, UTC, every value as text."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.converters

from aurora_replication.errors import BadInputError, EndpointError, network_cause
from aurora_replication.secrets import MySQLSettings

AUTH_ERRORS = {1045, 1044, 1698}
# retried in place (``retry``): too many connections, lock wait timeout, deadlock, can't connect,
# server gone away, connection lost (twice)
TRANSIENT_ERRORS = {1040, 1205, 1213, 2003, 2006, 2013, 2055}
CONNECT_TIMEOUT = 10
# parameters are still escaped by type; results are never converted (text stays text, exactly)
ENCODERS_ONLY: dict[Any, Any] = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def init_command(settings: MySQLSettings) -> str:
    """What every source connection runs first: UTC, and the salt of ``salted_sha256`` masks (the source
    secret's ``mask_salt``, as a hex literal: no quoting or escaping mode can change it) when it has one."""
    salt = f", @asr_mask_salt = X'{settings.mask_salt.encode('utf-8').hex()}'" if settings.mask_salt else ""
    return f"SET time_zone = '+00:00'{salt}"


def connect(settings: MySQLSettings, read_timeout: int = 600) -> pymysql.Connection[Any]:
    """A connection that returns every value as text (no client-side conversion), in UTC.

    With TLS (the default except for loopback hosts) the server's certificate must chain to the
    CA bundle (the RDS global bundle unless ``MYSQL_CA_BUNDLE`` says otherwise) and name the host.
    """
    ssl_ctx: ssl.SSLContext | None = None
    if settings.tls:
        bundle = ca_bundle(settings)
        if bundle == MySQLSettings.SYSTEM_CA_STORE:
            ssl_ctx = ssl.create_default_context()
        else:
            ssl_ctx = ssl.create_default_context(cafile=bundle)
        ssl_ctx.check_hostname = True
        ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    conn = pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.username,
        password=settings.password,
        database=settings.dbname,
        charset="utf8mb4",
        autocommit=True,
        conv=ENCODERS_ONLY,
        ssl=ssl_ctx,
        connect_timeout=CONNECT_TIMEOUT,
        # pymysql waits for the server's handshake with the read timeout: bound it like the TCP connect
        # (a port that accepts and never answers would otherwise hold the connect for read_timeout)
        read_timeout=CONNECT_TIMEOUT,
        init_command=init_command(settings),
    )
    if isinstance(conn, pymysql.connections.Connection):  # the read timeout of queries, set before each read
        conn._read_timeout = read_timeout  # type: ignore[attr-defined]
    return conn


def connect_with_rotation(get_settings: Callable[[bool], MySQLSettings]) -> pymysql.Connection[Any]:
    """Connect; after an authentication failure re-read the secret once (it may have rotated)."""
    return with_rotation(connect, get_settings)


def with_rotation[C](connect_to: Callable[[MySQLSettings], C], get_settings: Callable[[bool], MySQLSettings]) -> C:
    """``connect_to`` the source; after an authentication failure (pymysql's codes: the bulk reader's
    errors are translated to them) re-read the secret once, as it may have rotated, and connect again."""
    try:
        return connect_to(get_settings(False))
    except pymysql.err.OperationalError as e:
        if e.args and e.args[0] in AUTH_ERRORS:
            return connect_to(get_settings(True))
        raise


def is_transient(error: BaseException) -> bool:
    """A MySQL error worth retrying in place (``source.bulk`` raises MySQLdb's errors as these)."""
    if isinstance(error, pymysql.err.OperationalError):
        return bool(error.args) and error.args[0] in TRANSIENT_ERRORS
    return isinstance(error, pymysql.err.InterfaceError)


def ca_bundle(settings: MySQLSettings) -> str:
    """The CA bundle TLS verifies the source's certificate against: a PEM file that exists, or
    ``MySQLSettings.SYSTEM_CA_STORE`` (the system's store). Shared by both drivers (``source.bulk``)."""
    bundle = settings.ca_bundle or str(MySQLSettings.PACKAGED_CA_BUNDLE)
    if bundle != MySQLSettings.SYSTEM_CA_STORE and not os.path.isfile(bundle):
        raise BadInputError(
            f"MySQL TLS CA bundle {bundle!r} does not exist: run `make ca-bundle` before `sam build` (it puts "
            "the RDS global bundle into the layer), or set MYSQL_CA_BUNDLE to a PEM file (`system` for the "
            'system CA store), or set "tls": false in the source secret'
        )
    return bundle


def describe_failure(error: BaseException, settings: MySQLSettings) -> EndpointError | None:
    """The failure of a connection or query as one line naming what was tried and what to check, for
    the errors a person can fix (network, TLS, credentials, grants, a missing database); None for
    the others. Codes: MySQL's client (2003, 2013, 2026) and server (1044, 1045, 1049, 1142 ...) errors."""
    tls = ", TLS" if settings.tls else ""
    tried = f"at {settings.host}:{settings.port} as user {settings.username!r}, database {settings.dbname!r}{tls}"
    code = error.args[0] if isinstance(error, pymysql.err.MySQLError) and error.args else None
    server_says = str(error.args[1]) if isinstance(error, pymysql.err.MySQLError) and len(error.args) > 1 else ""
    where = "the source secret (SOURCE_SECRET_ARN), or the --source URL locally"

    def fail(kind: str, cause: str, check: str) -> EndpointError:
        return EndpointError("MySQL source", tried, kind, cause, check)

    if code in (1045, 1698, 2059):
        return fail("auth", f"access denied ({server_says})", f"the user name and password in {where}")
    if code == 1044:
        return fail(
            "grants",
            f"the user may not use the database ({server_says})",
            f"GRANT SELECT, SHOW VIEW ON `{settings.dbname}`.* TO the user, or the database name in {where}",
        )
    if code in (1142, 1143, 1227, 1370):
        return fail(
            "grants",
            f"missing privilege ({server_says})",
            f"GRANT SELECT ON `{settings.dbname}`.* TO the user (and REPLICATION CLIENT for change capture)",
        )
    if code == 1049:
        return fail("missing", f"the database does not exist ({server_says})", f"the database name (dbname) in {where}")
    if code == 2026:
        return fail(
            "tls",
            f"TLS failed ({server_says})",
            "that the server offers TLS and its certificate chains to MYSQL_CA_BUNDLE (default: the RDS bundle "
            'in the layer), or "tls": false for a server on a private network that has no TLS',
        )
    if code in (2003, 2013) or isinstance(error, (ConnectionError, TimeoutError)):
        found = network_cause(error)
        if found is None and "timed out" in server_says:
            found = ("timeout", "no answer in time")
        if found is None:
            return None
        kind, cause = found
        if code == 2013 and kind == "timeout":
            cause = (
                f"the port accepted the connection but sent no MySQL handshake within {CONNECT_TIMEOUT} s "
                "(a proxy or another service on that port?)"
            )
        checks = {
            "unknown_host": f"the host name in {where}",
            "unreachable": "that MySQL runs and listens on that host and port, and that the security group or "
            "firewall admits the functions (inbound TCP on the MySQL port)",
            "timeout": "the security groups and network ACLs between the functions and MySQL (inbound TCP on the "
            "MySQL port), and the host and port",
            "tls": "that the server's certificate chains to MYSQL_CA_BUNDLE (default: the RDS bundle in the layer) "
            "and names the host (use the cluster endpoint, not an IP address)",
        }
        return fail(kind, cause, checks[kind])
    return None
