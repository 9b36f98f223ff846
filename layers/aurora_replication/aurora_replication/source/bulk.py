"""The bulk read of a chunk on MySQL's C client library (mysqlclient's ``MySQLdb``), every value as the
bytes MySQL sent.

pymysql, the project's driver for every other statement, decodes each packet of a result in Python:
about 5 CPU seconds a million rows of a 10-column table, more than MySQL spends sending them
(docs/performance.md, issue 28). mysqlclient reads them in C (MariaDB Connector/C, linked statically
into the ``mysqlclient-static`` wheel with its own OpenSSL, so nothing outside the wheel is needed):
under a second. Only a chunk's own statements run here (its snapshot, its rows); planning,
validation and everything else stay on pymysql (``source.connect``).

The connection is made as ``source.connect`` makes pymysql's: the same secret, TLS verified against the
same CA bundle with the host name checked (``MYSQL_CA_BUNDLE``, the RDS bundle by default, ``system``
for the system store), session time zone UTC, no conversion of any value (text stays MySQL's text, as
bytes). MySQLdb's errors are raised as pymysql's of the same code and message, so retries, the
re-read of a rotated secret and the one-line endpoint errors treat both drivers alike.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql

from aurora_replication.errors import BadInputError
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import connect as source_connect
from aurora_replication.source.connect import CONNECT_TIMEOUT

# rows fetched from the C library at a time (one Python call each; memory stays flat whatever the chunk)
FETCH_ROWS = 5000
DRIVER = "mysqlclient"


def _driver() -> Any:
    import MySQLdb  # imported on first use: the functions that never read a chunk do not pay for it
    import MySQLdb.converters
    import MySQLdb.cursors

    return MySQLdb


def _translated(error: BaseException) -> BaseException:
    """A MySQLdb error as pymysql's class of the same name, with the same (code, message)."""
    cls = getattr(pymysql.err, type(error).__name__, None)
    if not (isinstance(cls, type) and issubclass(cls, pymysql.err.MySQLError)):
        cls = pymysql.err.OperationalError
    return cls(*error.args)


@contextmanager
def translated() -> Iterator[None]:
    """Raise MySQLdb's errors as pymysql's (``_translated``)."""
    try:
        yield
    except _driver().MySQLError as e:
        raise _translated(e) from e


def _system_ca_file() -> str:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    raise BadInputError(
        "MYSQL_CA_BUNDLE=system, but this system's OpenSSL names no CA file: set MYSQL_CA_BUNDLE to a PEM file"
    )


def tls_options(settings: MySQLSettings) -> dict[str, Any]:
    """MySQLdb's TLS arguments for ``settings``: the CA bundle as ``source.connect`` uses it, the
    certificate chain and the host name verified (``VERIFY_IDENTITY``: MariaDB Connector/C's
    ``MYSQL_OPT_SSL_VERIFY_SERVER_CERT``), or TLS off (``tls`` false: loopback, or ``"tls": false``)."""
    if not settings.tls:
        return {"ssl_mode": "DISABLED"}
    bundle = source_connect.ca_bundle(settings)
    if bundle == MySQLSettings.SYSTEM_CA_STORE:
        bundle = _system_ca_file()
    return {"ssl": {"ca": bundle}, "ssl_mode": "VERIFY_IDENTITY"}


def connect(settings: MySQLSettings, read_timeout: int = 600) -> Any:
    """A MySQLdb connection that returns every value as the bytes MySQL sent, in UTC, autocommit on
    (a chunk's snapshot is an explicit transaction)."""
    mysqldb = _driver()
    encoders = {k: v for k, v in mysqldb.converters.conversions.items() if not isinstance(k, int)}
    with translated():
        return mysqldb.connect(
            host=settings.host,
            port=settings.port,
            user=settings.username,
            password=settings.password,
            database=settings.dbname,
            charset="utf8mb4",
            use_unicode=False,
            conv=encoders,  # parameters are escaped by type; results are never converted
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=read_timeout,
            init_command=source_connect.init_command(settings),
            **tls_options(settings),
        )


def connect_with_rotation(get_settings: Callable[[bool], MySQLSettings]) -> Any:
    """Connect; after an authentication failure re-read the secret once (it may have rotated)."""
    return source_connect.with_rotation(connect, get_settings)


def ping(conn: Any) -> None:
    with translated():
        conn.ping()


def batches(conn: Any, statement: str, params: Sequence[object], size: int = FETCH_ROWS) -> Generator[list[Any]]:
    """The rows of ``statement`` from an unbuffered result (``mysql_use_result``), ``size`` at a time, as
    tuples of bytes (None for NULL). Closing the generator early reads the rest of the result off the
    connection, so the next statement in the same snapshot can run."""
    mysqldb = _driver()
    with translated():
        cur = conn.cursor(mysqldb.cursors.SSCursor)
        try:
            cur.execute(statement, tuple(params))
            while batch := cur.fetchmany(size):
                yield batch
        finally:
            cur.close()
