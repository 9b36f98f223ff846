"""MySQL connections: TLS against the RDS CA bundle, UTC, every value as text."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.converters

from aurora_replication.errors import BadInputError
from aurora_replication.secrets import MySQLSettings

AUTH_ERRORS = {1045, 1044, 1698}
# parameters are still escaped by type; results are never converted (text stays text, exactly)
ENCODERS_ONLY: dict[Any, Any] = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def connect(settings: MySQLSettings, read_timeout: int = 600) -> pymysql.Connection[Any]:
    """A connection that returns every value as text (no client-side conversion), in UTC.

    With TLS (the default except for loopback hosts) the server's certificate must chain to the
    CA bundle (the RDS global bundle unless ``MYSQL_CA_BUNDLE`` says otherwise) and name the host.
    """
    ssl_ctx: ssl.SSLContext | None = None
    if settings.tls:
        bundle = settings.ca_bundle or str(MySQLSettings.PACKAGED_CA_BUNDLE)
        if bundle == MySQLSettings.SYSTEM_CA_STORE:
            ssl_ctx = ssl.create_default_context()
        elif not os.path.isfile(bundle):
            raise BadInputError(
                f"MySQL TLS CA bundle {bundle!r} does not exist: run `make ca-bundle` before `sam build` (it puts "
                "the RDS global bundle into the layer), or set MYSQL_CA_BUNDLE to a PEM file (`system` for the "
                'system CA store), or set "tls": false in the source secret'
            )
        else:
            ssl_ctx = ssl.create_default_context(cafile=bundle)
        ssl_ctx.check_hostname = True
        ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.username,
        password=settings.password,
        database=settings.dbname,
        charset="utf8mb4",
        autocommit=True,
        conv=ENCODERS_ONLY,
        ssl=ssl_ctx,
        connect_timeout=10,
        read_timeout=read_timeout,
        init_command="SET time_zone = '+00:00'",
    )


def connect_with_rotation(get_settings: Callable[[bool], MySQLSettings]) -> pymysql.Connection[Any]:
    """Connect; after an authentication failure re-read the secret once (it may have rotated)."""
    try:
        return connect(get_settings(False))
    except pymysql.err.OperationalError as e:
        if e.args and e.args[0] in AUTH_ERRORS:
            return connect(get_settings(True))
        raise
