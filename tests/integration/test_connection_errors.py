"""Errors a person can act on: each connection failure is one line naming what was tried and what to
check, with its exit code, no traceback (unless --verbose), no password, and nothing written."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pymysql
import pytest

from aurora_replication.errors import EndpointError
from aurora_replication.secrets import SnowflakeSettings
from aurora_replication.target.snowflake import client as target_client
from aurora_replication_dev import cli
from aurora_replication_dev.local.services import free_port

PASSWORD_MARK = "s3cret-never-shown"


@pytest.fixture(autouse=True)
def one_attempt(monkeypatch):
    """No in-place retries: each failure is reported after one attempt (the env fixture restores the rest)."""
    monkeypatch.setenv("RETRY_ATTEMPTS", "1")


def _run(env, capsys, source: str | None = None, target: str | None = None, *extra: str) -> tuple[int, str, str]:
    env.sql("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)", "INSERT IGNORE INTO t VALUES (1)")
    capsys.readouterr()
    code = cli.main(
        [
            "--home",
            str(env.home),
            *extra,
            "run",
            "--source",
            source or env.source_url,
            "--target",
            target or env.target_url,
            "--tables",
            "t",
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def _nothing_written(home: Path) -> None:
    """The local ledger the stack kept (state.json) has no run, lease, catalog item or dead letter."""
    saved = json.loads((home / "state.json").read_text())
    keys = [(i["pk"]["S"], i["sk"]["S"]) for i in saved["items"]]
    assert not [k for k in keys if k[0].startswith(("RUN#", "TABLE#", "CATALOG"))], keys
    assert saved["dead_letters"] == []


def _one_line(err: str, *expected: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    assert PASSWORD_MARK not in err
    return lines[0]


def _source(env, user: str | None = None, password: str | None = None, host: str = "127.0.0.1", port=None, db=None):
    user = user or env.db.user
    password = env.db.password if password is None else password
    auth = f"{user}:{password}" if password else user
    return f"mysql://{auth}@{host}:{port or env.db.port}/{db or env.database}"


def test_wrong_mysql_password(env, capsys):
    code, out, err = _run(env, capsys, _source(env, password=PASSWORD_MARK))
    assert code == 4
    _one_line(
        err,
        f"MySQL source at 127.0.0.1:{env.db.port} as user '{env.db.user}', database '{env.database}'",
        "access denied",
        "user name and password",
    )
    assert "Traceback" not in out and '"_aws"' not in out
    _nothing_written(env.home)
    assert "Traceback" in (env.home / "logs" / "handlers.log").read_text()  # the traceback is in the log


def test_refused_mysql_port_and_verbose_shows_the_traceback(env, capsys):
    port = free_port()
    code, _, err = _run(env, capsys, _source(env, port=port))
    assert code == 3, err
    _one_line(err, f"at 127.0.0.1:{port}", "connection refused", "listens on that host and port")
    _nothing_written(env.home)
    code, _, err = _run(env, capsys, _source(env, port=port), None, "--verbose")
    assert code == 3 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_unknown_mysql_host(env, capsys):
    code, _, err = _run(env, capsys, _source(env, host="no-such-host.invalid"))
    assert code == 3
    _one_line(err, "at no-such-host.invalid:", "does not resolve", "host name")
    _nothing_written(env.home)


def test_mysql_port_that_never_answers_times_out(env, capsys):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP connections (the backlog) and never sends a handshake
    try:
        code, _, err = _run(env, capsys, _source(env, port=silent.getsockname()[1]))
    finally:
        silent.close()
    assert code == 3
    _one_line(err, "no MySQL handshake within 10 s")
    _nothing_written(env.home)


def test_mysql_tls_failure(env, capsys):
    code, _, err = _run(env, capsys, _source(env) + "?tls=true")
    assert code == 3
    _one_line(err, ", TLS:", "TLS")
    _nothing_written(env.home)


def test_missing_mysql_database_and_grants(env, capsys):
    code, _, err = _run(env, capsys, _source(env, db="no_such_db"))
    assert code == 5
    _one_line(err, "database 'no_such_db'", "does not exist", "dbname")
    _nothing_written(env.home)

    env.sql(f"CREATE USER IF NOT EXISTS 'nogrants'@'%' IDENTIFIED BY '{PASSWORD_MARK}'")
    code, _, err = _run(env, capsys, _source(env, user="nogrants", password=PASSWORD_MARK))
    assert code == 4
    _one_line(err, "as user 'nogrants'", "may not use the database", f"GRANT SELECT, SHOW VIEW ON `{env.database}`.*")
    _nothing_written(env.home)


def test_a_mysql_user_without_a_password_is_legitimate(env, capsys):
    root = pymysql.connect(unix_socket=str(env.db.base / "mysqld.sock"), user="root", autocommit=True)
    with root.cursor() as cur:  # only root may grant
        cur.execute("CREATE USER IF NOT EXISTS 'nopass'@'%'")
        cur.execute(f"GRANT SELECT, SHOW VIEW ON `{env.database}`.* TO 'nopass'@'%'")
    root.close()
    code, out, err = _run(env, capsys, _source(env, user="nopass", password=""))
    assert code == 0, err
    assert "secret" not in err and "OK" in out


def test_refused_snowflake_port(env, capsys):
    port = free_port()
    bad = env.target_url.replace(f"port={env.sf.port}", f"port={port}")
    code, _, err = _run(env, capsys, None, bad)
    assert code == 3
    _one_line(err, f"Snowflake target at 127.0.0.1:{port}", "as user 'fake'", "connection refused", "HTTPS")
    _nothing_written(env.home)


class _RefusingLogin(BaseHTTPRequestHandler):
    """Answers every login as Snowflake answers a wrong password (code 390100)."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "data": None,
                "code": "390100",
                "message": "Incorrect username or password was specified.",
                "success": False,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_wrong_snowflake_password(env, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingLogin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bad = env.target_url.replace("fake:snow@", f"fake:{PASSWORD_MARK}@").replace(
            f"port={env.sf.port}", f"port={server.server_address[1]}"
        )
        code, _, err = _run(env, capsys, None, bad)
    finally:
        server.shutdown()
    assert code == 4
    _one_line(err, "Snowflake target", "(password)", "login refused", "Incorrect username or password")
    _nothing_written(env.home)


def test_a_run_that_cannot_start_leaves_no_lease_run_or_message(env):
    """In-process, where the queue can be looked at too: a broken target fails the scheduler before any write."""
    env.sql("CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    stack = env.start_stack()
    sm = boto3.client("secretsmanager")
    secret = json.loads(sm.get_secret_value(SecretId="replication/target")["SecretString"])
    secret["port"] = free_port()
    sm.put_secret_value(SecretId="replication/target", SecretString=json.dumps(secret))
    with pytest.raises(EndpointError) as failure:
        stack.invoke("SchedulerFunction", {"tables": "t", "mode": "full"})
    assert failure.value.kind == "unreachable" and failure.value.exit_code == 3
    items = boto3.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    assert [i for i in items if not i["pk"]["S"].startswith("idempotency#")] == []
    assert stack.queue_depth(stack.queue_url) == (0, 0) and stack.queue_depth(stack.dlq_url) == (0, 0)
    log = stack.log_path.read_text()
    assert str(failure.value) in log and '"exception"' in log  # the handler log: the line and its traceback


class _Session:
    def __init__(self, row):
        self.row = row

    def cursor(self):
        session = self

        class Cursor:
            def execute(self, statement, params=None, **kwargs):
                self.statement = statement

            def fetchall(self):
                return [session.row]

            def close(self):
                pass

        return Cursor()


def test_a_snowflake_database_or_warehouse_that_does_not_exist():
    """Snowflake logs in without a database, schema or warehouse it cannot use (unless told to validate
    them): the session then has none, which the preflight turns into a 'missing' error."""
    settings = SnowflakeSettings(
        account="acme-eu1", user="REPLICATOR", database="ANALYTICS", schema="REPLICA", password="x", warehouse="LOAD_WH"
    )
    target_client.check_session(_Session(("ANALYTICS", "REPLICA", "LOAD_WH")), settings)  # all there
    with pytest.raises(EndpointError) as failure:
        target_client.check_session(_Session(("ANALYTICS", "REPLICA", None)), settings)
    assert failure.value.kind == "missing" and failure.value.exit_code == 5
    message = str(failure.value)
    assert "at acme-eu1.snowflakecomputing.com:443 (account 'acme-eu1') as user 'REPLICATOR'" in message
    assert "warehouse 'LOAD_WH' does not exist or is not authorized" in message and "USAGE" in message
    with pytest.raises(EndpointError, match="database 'ANALYTICS'"):
        target_client.check_session(_Session((None, None, "LOAD_WH")), settings)
