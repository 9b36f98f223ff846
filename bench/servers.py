"""The bench's servers and how it reaches them: MariaDB and the Snowflake emulator under ``.local/bench``
(started for a measure, stopped after it unless ``--keep-servers``), and connections made from their URLs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bench.output import log
from bench.settings import BENCH, DATABASE

if TYPE_CHECKING:
    import pymysql
    import pymysql.cursors
    import snowflake.connector

    from aurora_replication.secrets import MySQLSettings


@contextmanager
def started(keep_servers: bool, emulator: bool = True) -> Iterator[tuple[Any, Any]]:
    """MariaDB and (with ``emulator``) the Snowflake emulator, as ``(db, sf)``; ``sf`` is None without it."""
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    log(f"starting MariaDB{' and the Snowflake emulator' if emulator else ''} under .local/bench...")
    db = MariaDB(BENCH / "mariadb", database=DATABASE).start()
    sf = SnowflakeEmulator(BENCH / "snowflake").start() if emulator else None
    try:
        yield db, sf
    finally:
        if not keep_servers:
            if sf is not None:
                sf.stop()
            db.stop()


def server_connection(db: Any) -> pymysql.Connection[pymysql.cursors.Cursor]:
    """MariaDB itself, no database selected (the table builders create theirs), autocommit."""
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password, autocommit=True)


def source_settings(url: str) -> MySQLSettings:
    """The product's ``MySQLSettings`` for a source URL (``mysql://USER:PASSWORD@HOST:PORT/DATABASE``), no TLS."""
    from aurora_replication.secrets import MySQLSettings
    from aurora_replication_dev.local.stack import parse_source_url

    s = parse_source_url(url)
    return MySQLSettings(s["host"], s["port"], s["username"], s["password"], s["dbname"], False)


def source_connection(url: str, autocommit: bool = True) -> pymysql.Connection[pymysql.cursors.Cursor]:
    """A pymysql connection to a source URL's database."""
    import pymysql

    s = source_settings(url)
    return pymysql.connect(
        host=s.host,
        port=s.port,
        user=s.username,
        password=s.password,
        database=s.dbname,
        autocommit=autocommit,
    )


def target_connection(url: str) -> snowflake.connector.SnowflakeConnection:
    """A Snowflake connector connection to a target URL (``snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?...``)."""
    import snowflake.connector

    from aurora_replication_dev.local.stack import parse_target_url

    t = parse_target_url(url)
    return snowflake.connector.connect(
        user=t["user"],
        password=t["password"],
        account=t["account"],
        host=t.get("host"),
        port=t.get("port"),
        protocol=t.get("protocol", "https"),
        database=t["database"],
        schema=t["schema"],
    )
