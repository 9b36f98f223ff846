"""Warm connections (Connections.source / Connections.target) and DDL once per table per run (Target.ready)."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from aurora_replication.config import Settings
from aurora_replication.models import Column, TablePlan
from aurora_replication.services import Services
from aurora_replication.services import connections as services_mod
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import sql as snowflake_sql


class RecordingConnection:
    """A connector connection that records (statement, params)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.closed = False

    def cursor(self) -> Any:
        conn = self

        class Cursor:
            def execute(self, statement: str, params: Any = None, **kwargs: Any) -> None:
                conn.statements.append((statement, params))

            def fetchall(self) -> list[tuple[Any, ...]]:
                return []

            def close(self) -> None:
                pass

        return Cursor()

    def close(self) -> None:
        self.closed = True


ENV = {
    "STATE_TABLE": "t",
    "CHUNK_QUEUE_URL": "q",
    "SOURCE_SECRET_ARN": "arn:source",
    "TARGET_SECRET_ARN": "arn:target",
}


class FakeMySQL:
    def __init__(self, n: int) -> None:
        self.n = n
        self.pings = 0
        self.closed = False
        self.answers = True

    def ping(self, reconnect: bool = False) -> None:
        assert reconnect is False  # a reconnect inside ping would skip the secret re-read
        self.pings += 1
        if not self.answers:
            raise pymysql.err.OperationalError(2006, "MySQL server has gone away")

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[Services, list[FakeMySQL], Clock, list[tuple[str, float]]]:
    clock = Clock()
    monkeypatch.setattr(services_mod.time, "monotonic", clock)
    opened: list[FakeMySQL] = []
    metrics: list[tuple[str, float]] = []

    def mysql() -> FakeMySQL:
        opened.append(FakeMySQL(len(opened)))
        return opened[-1]

    services = Services.of(Settings.model_validate(ENV), state=None, sqs=None)  # type: ignore[arg-type]
    services.connections.mysql = mysql  # type: ignore[method-assign]
    services.hooks.metric = lambda name, value, *a, **k: metrics.append((name, value))
    return services, opened, clock, metrics


def test_a_connection_is_reused_across_messages_without_a_ping_while_recently_used(world):
    services, opened, clock, metrics = world
    with services.connections.source() as a:
        pass
    clock.now += 1
    with services.connections.source() as b:
        pass
    assert a is b and len(opened) == 1
    assert a.pings == 0 and not a.closed
    assert [m for m, _ in metrics] == ["ConnectionsOpened", "ConnectionsReused"]


def test_an_idle_connection_is_pinged_before_reuse_and_replaced_when_it_does_not_answer(world):
    services, opened, clock, _ = world
    with services.connections.source() as a:
        pass
    clock.now += services_mod.PING_AFTER_SECONDS + 1
    with services.connections.source() as b:
        assert b is a and a.pings == 1
    clock.now += services_mod.PING_AFTER_SECONDS + 1
    a.answers = False  # the server dropped it (wait_timeout, a failover)
    with services.connections.source() as c:
        assert c is not a
    assert a.closed and len(opened) == 2


def test_a_connection_older_than_the_maximum_age_is_closed_and_replaced(world):
    services, opened, clock, _ = world
    with services.connections.source() as a:
        pass
    while clock.now <= 1000.0 + services_mod.MAX_AGE_SECONDS:  # in use all the time, never idle
        clock.now += services_mod.PING_AFTER_SECONDS / 2
        with services.connections.source():
            pass
    assert a.pings == 0
    assert a.closed and len(opened) == 2  # a new login picks up a rotated secret


def test_a_block_that_raises_closes_the_connection_and_the_next_message_opens_a_new_one(world):
    services, opened, _, _ = world
    with pytest.raises(RuntimeError):
        with services.connections.source() as a:
            raise RuntimeError("a query failed half way: the session's state is unknown")
    assert a.closed
    with services.connections.source() as b:
        assert b is not a
    assert len(opened) == 2


def test_a_container_death_closes_the_connection_too(world):
    services, _, _, _ = world

    class Killed(BaseException):
        pass

    with pytest.raises(Killed):
        with services.connections.source() as a:
            raise Killed()
    assert a.closed and "source" not in services.connections.warm


def test_a_nested_use_gets_a_connection_of_its_own_closed_after_it(world):
    services, opened, _, _ = world
    with services.connections.source() as outer:
        with services.connections.source() as inner:
            assert inner is not outer
        assert inner.closed and not outer.closed
    with services.connections.source() as again:
        assert again is outer


def test_the_snowflake_ping_is_one_statement_and_a_closed_session_is_replaced(world, monkeypatch):
    services, _, clock, _ = world
    opened: list[RecordingConnection] = []

    class Session(RecordingConnection):
        def is_closed(self) -> bool:
            return self.closed

    def snowflake() -> Session:
        opened.append(Session())
        return opened[-1]

    services.connections.snowflake = snowflake  # type: ignore[method-assign]
    with services.connections.target():
        pass
    clock.now += services_mod.PING_AFTER_SECONDS + 1
    with services.connections.target() as again:
        assert again is opened[0]
    assert opened[0].statements == [("SELECT 1", None)]
    opened[0].closed = True  # the session expired
    clock.now += services_mod.PING_AFTER_SECONDS + 1
    with services.connections.target() as fresh:
        assert fresh is opened[1]


def test_a_new_connection_after_a_failed_login_rereads_the_secret_once(monkeypatch):
    """What a warm connection that had to be replaced goes through: the secret rotated, the cached
    one fails to log in, the connect re-reads it (force) and logs in."""
    tried: list[str] = []

    def connect(settings: Any, read_timeout: int = 600) -> str:
        tried.append(settings)
        if settings == "stale":
            raise pymysql.err.OperationalError(1045, "Access denied")
        return "conn"

    monkeypatch.setattr(source_connect, "connect", connect)
    reads: list[bool] = []

    def settings(force: bool) -> str:
        reads.append(force)
        return "fresh" if force else "stale"

    assert source_connect.connect_with_rotation(settings) == "conn"  # type: ignore[arg-type]
    assert reads == [False, True] and tried == ["stale", "fresh"]


PLAN = TablePlan(
    table="orders",
    target_table="ORDERS",
    columns=[Column(name="id", kind="integer", target="ID", precision=10, scale=0)],
    key=["id"],
    mode="full",
)


def test_a_runs_load_table_is_created_once_per_container_and_again_by_a_cold_one():
    ready: set[str] = set()
    first = RecordingConnection()
    t = target.Target(first, "STAGE", ready)  # type: ignore[arg-type]
    name = t.ensure_load_table(PLAN, "run1")
    target.Target(first, "STAGE", ready).ensure_load_table(PLAN, "run1")  # the next chunk, same container
    assert [s for s, _ in first.statements] == [snowflake_sql.create_load_table(PLAN, name)]
    cold = RecordingConnection()
    target.Target(cold, "STAGE", set()).ensure_load_table(PLAN, "run1")  # another container
    assert [s for s, _ in cold.statements] == [snowflake_sql.create_load_table(PLAN, name)]
    t.drop(name)  # published and dropped: a later use creates it again
    t.ensure_load_table(PLAN, "run1")
    assert [s for s, _ in first.statements][-1] == snowflake_sql.create_load_table(PLAN, name)


def test_the_stage_is_created_once_per_container():
    ready: set[str] = set()
    conn = RecordingConnection()
    for _ in range(3):
        target.Target(conn, "STAGE", ready).ensure_stage()
    assert [s for s, _ in conn.statements] == [snowflake_sql.create_stage("STAGE")]


# ---- the scheduler's session: the preflight's login kept for planning, window after window ----------------


class Session(RecordingConnection):
    def is_closed(self) -> bool:
        return self.closed


class CheckedWarehouse:
    """The warehouse on a connection, with the preflight's session check (``fails``: it raises)."""

    fails = False

    def __init__(self, conn: Any, shared_ddl: bool = False) -> None:
        self.conn = conn

    def check_session(self, settings: Any) -> None:
        if self.fails:
            raise RuntimeError("the session has no current warehouse")


@pytest.fixture
def sessions(world, monkeypatch: pytest.MonkeyPatch) -> tuple[Services, list[Session], Clock]:
    services, _, clock, _ = world
    opened: list[Session] = []

    def snowflake() -> Session:
        opened.append(Session())
        return opened[-1]

    monkeypatch.setattr(services.connections, "snowflake", snowflake)
    monkeypatch.setattr(services.connections, "warehouse", CheckedWarehouse)
    monkeypatch.setattr(services.endpoints, "snowflake_settings", lambda: None)
    monkeypatch.setattr(CheckedWarehouse, "fails", False)
    return services, opened, clock


def _planned_in(services: Services) -> Any:
    """The connection one run's planning reads the target's columns on."""
    from aurora_replication.pipeline import planning

    columns = planning.TargetColumns(services)
    try:
        return columns.client().conn
    finally:
        columns.close()


def test_the_preflights_session_is_kept_and_planning_goes_on_in_it_window_after_window(sessions):
    from aurora_replication.ops import preflight

    services, opened, clock = sessions
    preflight.check_endpoints(services)
    for _ in range(3):  # the run's planning, then two windows a following invocation reads
        assert _planned_in(services) is opened[0]
        clock.now += 1
    assert len(opened) == 1 and not opened[0].closed
    # the next invocation's preflight logs in again (it checks who the secret says we are): its session is kept
    clock.now += services_mod.PING_AFTER_SECONDS + 1
    preflight.check_endpoints(services)
    assert len(opened) == 2 and opened[0].closed
    assert _planned_in(services) is opened[1]
    assert opened[1].statements == []  # handed out at once after its check, without a ping


def test_planning_that_raises_closes_the_session_and_the_next_planning_logs_in_again(sessions):
    from aurora_replication.pipeline import planning

    services, opened, _ = sessions
    columns = planning.TargetColumns(services)
    with pytest.raises(RuntimeError):
        try:
            columns.client()
            raise RuntimeError("a statement failed half way: the session's state is unknown")
        finally:
            columns.close()
    assert opened[0].closed and "target" not in services.connections.warm
    assert _planned_in(services) is opened[1] and not opened[1].closed


def test_two_databases_planned_at_once_get_the_session_and_one_of_their_own(sessions):
    from aurora_replication.pipeline import planning

    services, opened, _ = sessions
    first, second = planning.TargetColumns(services), planning.TargetColumns(services)
    assert first.client().conn is opened[0] and second.client().conn is opened[1]
    second.close()
    first.close()
    assert opened[1].closed and not opened[0].closed
    assert _planned_in(services) is opened[0]


def test_a_session_the_preflight_refuses_is_closed_and_not_kept(sessions):
    from aurora_replication.ops import preflight

    services, opened, _ = sessions
    CheckedWarehouse.fails = True
    with pytest.raises(RuntimeError, match="no current warehouse"):
        preflight.check_endpoints(services)
    assert opened[0].closed and "target" not in services.connections.warm
