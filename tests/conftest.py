"""Session-wide real servers: MariaDB and the Snowflake emulator, started once on loopback."""

from __future__ import annotations

import itertools
import os

# as in Lambda, the service name is set before any module creates its logger
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "aurora-snowflake-replication")
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import snowflake.connector

from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator
from aurora_replication_dev.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
_counter = itertools.count()
# a test's marker is its directory's: pytest -m "not integration and not fault" runs the unit tests only
MARKERS_BY_DIRECTORY = {"integration": pytest.mark.integration, "fault": pytest.mark.fault}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = ROOT / "tests"
    for item in items:
        path = Path(str(item.path)).resolve()
        if tests in path.parents:
            marker = MARKERS_BY_DIRECTORY.get(path.relative_to(tests).parts[0])
            if marker is not None:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Every test starts from the environment the session had: a local stack started without the
    `env` fixture must not leave its endpoint behind for a later test's moto or boto3 client."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MariaDB, SnowflakeEmulator]]:
    base = tmp_path_factory.mktemp("servers")
    db = MariaDB(base / "mariadb").start()
    sf = SnowflakeEmulator(base / "snowflake").start()
    yield db, sf
    db.stop()
    sf.stop()


class Env:
    """One test's isolated world: its own MySQL database, Snowflake schema and local stack."""

    def __init__(self, db: MariaDB, sf: SnowflakeEmulator, home: Path) -> None:
        n = next(_counter)
        self.db = db
        self.sf = sf
        self.database = f"t{os.getpid()}_{n}"
        self.schema = f"S{os.getpid()}_{n}"
        self.home = home
        admin = db.connect()
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        admin.close()
        self.mysql = db.connect(self.database)
        self.stack: LocalStack | None = None

    @property
    def source_url(self) -> str:
        return f"mysql://{self.db.user}:{self.db.password}@127.0.0.1:{self.db.port}/{self.database}"

    @property
    def target_url(self) -> str:
        return (
            f"snowflake://fake:snow@emulator/ANALYTICS/{self.schema}?host=127.0.0.1&port={self.sf.port}&protocol=http"
        )

    def key(self, table: str) -> Any:
        """The state key (``ledger.keys.TableKey``) of ``table`` as this test's stack keeps it: its source
        database and target schema."""
        from aurora_replication.ledger.keys import Scope

        case = os.environ.get("TARGET_IDENTIFIER_CASE", "upper")
        return Scope.of(self.database, "ANALYTICS", self.schema, case).key(table)

    def sql(self, *statements: str) -> None:
        with self.mysql.cursor() as cur:
            for s in statements:
                cur.execute(s)

    def start_stack(
        self,
        env: dict[str, str] | None = None,
        source_secret: dict | None = None,
        template: Path | None = None,
        **options,
    ) -> LocalStack:
        """The local stack; ``options`` go to ``LocalStack`` (parameters, enforce_iam, ambient, visibility_timeout)."""
        from aurora_replication_dev.local.stack import parse_source_url, parse_target_url

        self.stack = LocalStack(self.home, template or ROOT / "template.yaml", **options)
        self.stack.start(source_secret or parse_source_url(self.source_url), parse_target_url(self.target_url), env)
        return self.stack

    def snowflake(self) -> snowflake.connector.SnowflakeConnection:
        return snowflake.connector.connect(
            user="fake",
            password="snow",
            account="emulator",
            host="127.0.0.1",
            port=self.sf.port,
            protocol="http",
            database="ANALYTICS",
            schema=self.schema,
        )

    def close(self) -> None:
        undeclared = self.undeclared_ledger_fields() if self.stack is not None else {}
        if self.stack is not None:
            self.stack.stop()
        self.mysql.close()
        if undeclared:
            pytest.fail(
                "the ledger wrote attributes its record types do not declare (item: attributes): "
                f"{undeclared}; declare each on its type (ledger/records.py says which module holds it)"
            )

    def undeclared_ledger_fields(self) -> dict[str, list[str]]:
        """Each item of the stack's state table holding attributes its record type does not declare
        (``ledger/records.py``): every integration test checks what its run wrote against the types."""
        from aurora_replication.ledger.records import undeclared

        stack = self.stack
        if stack is None or getattr(stack, "server", None) is None or not getattr(stack, "table_name", None):
            return {}  # not started, or stopped by the test
        table = stack.session.resource("dynamodb").Table(stack.table_name)
        found: dict[str, list[str]] = {}
        kwargs: dict[str, Any] = {}
        while True:
            page = table.scan(**kwargs)
            for item in page["Items"]:
                extra = undeclared(item)
                if extra:
                    found[f"{item['pk']} / {item['sk']}"] = sorted(extra)
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def env(servers: tuple[MariaDB, SnowflakeEmulator], tmp_path: Path) -> Iterator[Env]:
    e = Env(*servers, tmp_path)
    saved = dict(os.environ)
    yield e
    e.close()
    os.environ.clear()
    os.environ.update(saved)


def mysql_rows(env: Env, table: str, order_by: str) -> list[tuple[object, ...]]:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=env.db.port,
        user=env.db.user,
        password=env.db.password,
        database=env.database,
        charset="utf8mb4",
        init_command="SET time_zone = '+00:00'",
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{table}` ORDER BY {order_by}")
        rows = list(cur.fetchall())
    conn.close()
    return rows


def snowflake_rows(env: Env, table: str, order_by: str) -> list[tuple[object, ...]]:
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute(f'SELECT * FROM "{table}" ORDER BY {order_by}')
    rows = list(cur.fetchall())
    conn.close()
    return rows
