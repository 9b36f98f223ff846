"""The operator's view without servers: error classification, the report page, ages, the read timeout."""

from __future__ import annotations

import json
import socket
import ssl

import pymysql
import snowflake.connector.errors as sf_errors

from aurora_replication.errors import EndpointError, network_cause
from aurora_replication.ops import report
from aurora_replication.secrets import MySQLSettings, SnowflakeSettings
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target_client
from aurora_replication_dev.cli import human_age

MYSQL = MySQLSettings("db.internal", 3306, "repl", "pw-never-shown", "shop", True, "")
SNOW = SnowflakeSettings(account="acme", user="REPL", database="DB", schema="S", password="pw-never-shown")


def _pymysql(code: int, text: str, cause: BaseException | None = None) -> pymysql.err.OperationalError:
    e = pymysql.err.OperationalError(code, text)
    if cause is not None:
        e.original_exception = cause  # type: ignore[attr-defined]
    return e


def test_mysql_failures_are_classified_with_what_was_tried_and_never_the_password():
    cases = {
        "auth": _pymysql(1045, "Access denied for user 'repl'@'10.0.0.5' (using password: YES)"),
        "grants": _pymysql(1044, "Access denied for user 'repl'@'%' to database 'shop'"),
        "missing": _pymysql(1049, "Unknown database 'shop'"),
        "tls": _pymysql(2026, "SSL is required but the server doesn't support it"),
        "unreachable": _pymysql(2003, "Can't connect", ConnectionRefusedError(111, "Connection refused")),
        "unknown_host": _pymysql(2003, "Can't connect", socket.gaierror(-2, "Name or service not known")),
        "timeout": _pymysql(2003, "Can't connect (timed out)", TimeoutError("timed out")),
    }
    for kind, error in cases.items():
        described = source_connect.describe_failure(error, MYSQL)
        assert isinstance(described, EndpointError) and described.kind == kind, (kind, described)
        text = str(described)
        assert text.startswith("MySQL source at db.internal:3306 as user 'repl', database 'shop', TLS: ")
        assert "; check " in text and "pw-never-shown" not in text and "\n" not in text
    assert source_connect.describe_failure(_pymysql(1213, "Deadlock found"), MYSQL) is None
    assert [EndpointError.EXIT_CODES[k] for k in ("unreachable", "tls", "auth", "grants", "missing")] == [3, 3, 4, 4, 5]


def test_tls_certificate_failures_are_named_as_tls():
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate"
    assert network_cause(_pymysql(2003, "Can't connect", verify)) == (
        "tls",
        "TLS certificate not trusted (self-signed certificate)",
    )


def test_snowflake_failures_are_classified():
    login = sf_errors.DatabaseError(msg="Incorrect username or password was specified.", errno=390100)
    assert target_client.describe_failure(login, SNOW).kind == "auth"  # type: ignore[union-attr]
    warehouse = sf_errors.DatabaseError(msg="The requested warehouse does not exist or not authorized.", errno=390201)
    assert target_client.describe_failure(warehouse, SNOW).kind == "missing"  # type: ignore[union-attr]
    grants = sf_errors.ProgrammingError(msg="Insufficient privileges to operate on schema 'S'", errno=3001)
    assert target_client.describe_failure(grants, SNOW).kind == "grants"  # type: ignore[union-attr]
    network = sf_errors.OperationalError(msg="Could not connect to Snowflake backend after 2 attempt(s).", errno=250001)
    network.__context__ = ConnectionRefusedError(111, "Connection refused")
    described = target_client.describe_failure(network, SNOW)
    assert described is not None and described.kind == "unreachable"
    assert str(described).startswith("Snowflake target at acme.snowflakecomputing.com:443 (account 'acme') as user")
    assert target_client.describe_failure(ValueError("x"), SNOW) is None


def test_queries_keep_their_read_timeout_after_a_bounded_handshake():
    """pymysql waits for the handshake with the read timeout; connect() bounds it, then restores the
    queries' timeout on the attribute pymysql applies before each read."""
    conn = pymysql.connections.Connection(host="127.0.0.1", defer_connect=True, read_timeout=10)
    assert conn._read_timeout == 10  # the attribute connect() sets exists and is the one pymysql reads


def test_ages_read_at_a_glance():
    assert [human_age(x) for x in (5, 90, 600, 5400, 91548319, None)] == [
        "5 s",
        "90 s",
        "10 min",
        "90 min",
        "2.9 years",
        "-",
    ]


def test_the_report_page_is_self_contained_and_escapes_names():
    run = {
        "sk": "RUN",
        "mode": "full",
        "created_at": 1796000000,
        "finished_at": 1796000012,
        "table_states": {
            "<b>x</b>": {
                "status": "published",
                "mode": "full",
                "chunk_count": 1,
                "done": {"0"},
                "chunk_rows": {"0": 3},
            },
            "y": {"status": "running", "mode": "full", "chunk_count": 1, "dead_lettered": {"0"}, "last_error": "boom"},
        },
    }
    steps = json.dumps([["extract", 0.1, 0.5], ["stage", 0.7, 0.2], ["copy", 1.0, 0.4]])
    attempts = [
        {"table": "<b>x</b>", "chunk": 0, "kind": "chunk", "worker": "w1", "start": 1796000001.0, "seconds": 1.5,
         "steps": steps, "status": "ok", "rows": 3},
        {"table": "y", "chunk": 0, "kind": "chunk", "worker": "w2", "start": 1796000001.2, "seconds": 0.3,
         "steps": "[]", "status": "failed", "error": "RuntimeError: boom"},
        {"table": "y", "chunk": 0, "kind": "chunk", "worker": "w2", "start": 1796000003.0, "seconds": 0.3,
         "steps": "[]", "status": "failed", "error": "RuntimeError: boom"},
    ]  # fmt: skip
    page = report.render("r1", run, attempts)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<link" not in page and "src=" not in page and "https://" not in page
    assert page.count('class="attempt') == 3 and page.count("attempt failed retried dead") == 2
    assert "dead-lettered chunk(s): 0" in page and "failed (chunks in the DLQ)" in page
