"""The connections to both sides, with retries: opened with the secrets' settings, moved to where the message in
hand works, and kept warm between messages."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aurora_replication import retry
from aurora_replication.config import Settings
from aurora_replication.services.endpoints import Endpoints
from aurora_replication.services.hooks import Hooks
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import sql as target_sql
from aurora_replication.target.warehouse import Warehouse

# the errors retried in place: each side's driver says which of its own are transient
TRANSIENT = retry.any_of(source_connect.is_transient, target.is_transient)


# Warm connections (``Connections.source`` and ``Connections.target``): a container keeps one connection to
# each side between messages. One that has been idle longer than PING_AFTER_SECONDS is pinged before
# it is handed out again, one older than MAX_AGE_SECONDS is closed and replaced (a Snowflake session
# expires after hours without use; a MySQL server drops an idle one after its wait_timeout; a rotated
# secret's new credentials are picked up by the next connect), and one whose use raised is closed.
PING_AFTER_SECONDS = 5.0
MAX_AGE_SECONDS = 900.0


@dataclass
class _Warm:
    conn: Any
    opened: float
    used: float
    busy: bool = False
    # the database (MySQL) or schema (Snowflake) the connection was moved to (``Endpoints.locate``);
    # None: the one its secret names, where it was opened
    place: str | None = None


def _ping_mysql(conn: Any) -> None:
    conn.ping(reconnect=False)


def _ping_snowflake(conn: Any) -> None:
    if conn.is_closed():
        raise ConnectionError("the Snowflake connection is closed")
    target.execute(conn, "SELECT 1")


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - a connection that cannot even close is gone already
        pass


@dataclass
class Connections:
    """New connections (``mysql``, ``mysql_bulk``, ``snowflake``) and the container's warm ones (``source``,
    ``bulk_source``, ``target``), each at the place ``endpoints`` says the message in hand works; retries of
    what either driver calls transient (``with_retries``), counted in ``hooks.metric``."""

    settings: Settings
    endpoints: Endpoints
    hooks: Hooks
    # the container's warm connections ("source", "bulk", "target") and what DDL it ran (Target.ready)
    warm: dict[str, _Warm] = field(default_factory=dict)
    ddl_done: set[str] = field(default_factory=set)

    def _place(self, side: str, conn: Any, current: str | None) -> str | None:
        """Move ``conn`` to where the message in hand works (``locate``), when it is elsewhere; its place."""
        endpoints = self.endpoints
        wanted = endpoints.target_schema if side == "target" else endpoints.source_database
        if wanted == current:
            return current
        if side == "target":
            schema = wanted if wanted is not None else endpoints.scope().target_schema
            target.execute(conn, target_sql.use_schema(schema))
            self.ddl_done.clear()  # what this container made (stage, load tables) was made in another schema
        else:
            conn.select_db(wanted if wanted is not None else endpoints.mysql_settings().dbname)
        return wanted

    def place(self, side: str, conn: Any) -> Any:
        """A connection just opened (``mysql``: side ``source``; ``snowflake``: ``target``) moved to where
        the message in hand works (``locate``)."""
        self._place(side, conn, None)
        return conn

    def with_retries[T](self, fn: Callable[[], T], what: str) -> T:
        s = self.settings
        return retry.call_with_retries(
            fn,
            s.retry_attempts,
            s.retry_base_seconds,
            s.retry_max_seconds,
            what,
            lambda: self.hooks.metric("Retries", 1),
            TRANSIENT,
        )

    def mysql(self) -> Any:
        settings = self.endpoints.mysql_settings
        return self._connect(lambda: source_connect.connect_with_rotation(settings), "MySQL", "source")

    def mysql_bulk(self) -> Any:
        """A connection of the bulk reader (``source.bulk``: MySQL's C client), for a chunk's rows."""
        settings = self.endpoints.mysql_settings
        return self._connect(lambda: source_bulk.connect_with_rotation(settings), "MySQL", "source")

    def snowflake(self) -> Any:
        timeout = self.settings.snowflake_statement_timeout_seconds
        settings = self.endpoints.snowflake_settings
        return self._connect(lambda: target.connect_with_rotation(settings, timeout), "Snowflake", "target")

    def snowflake_early(self) -> Opening:
        """A Snowflake connection opened in the background (``Opening``): its login overlaps what the
        caller does meanwhile (a binlog window's read), and ``take`` hands it over when it is needed."""
        return Opening(self.snowflake)

    def _connect(self, connect: Callable[[], Any], engine: str, side: str) -> Any:
        """A new connection, with retries; a failure the operator can act on is described as such."""
        try:
            return self.with_retries(connect, f"{engine} connect")
        except Exception as e:
            described = self.endpoints.endpoint_error(e, side)
            if described is e:
                raise
            raise described from e

    @contextmanager
    def source(self) -> Iterator[Any]:
        """A MySQL connection for one message: the container's warm one when it still answers, else a
        new one (``mysql``: retries, a re-read secret after a failed login). It stays open for the
        next message unless the block raises, which closes it."""
        with self._warm_connection("source", self.mysql, _ping_mysql) as conn:
            yield conn

    @contextmanager
    def bulk_source(self) -> Iterator[Any]:
        """The bulk reader's connection for one chunk, kept warm as ``source`` keeps pymysql's."""
        with self._warm_connection("bulk", self.mysql_bulk, source_bulk.ping) as conn:
            yield conn

    def warehouse(self, conn: Any, shared_ddl: bool = False) -> Warehouse:
        """The warehouse on ``conn`` (a connection from ``target``). ``shared_ddl``: the objects this
        container made already (stage, load tables) are not made again (the chunk job's and finaliser's)."""
        return target.Target(conn, self.settings.stage_name, self.ddl_done if shared_ddl else None)

    @contextmanager
    def target(self) -> Iterator[Any]:
        """A Snowflake connection for one message, kept warm as ``source`` keeps MySQL's."""
        with self._warm_connection("target", self.snowflake, _ping_snowflake) as conn:
            yield conn

    @contextmanager
    def _warm_connection(self, side: str, connect: Callable[[], Any], ping: Callable[[Any], None]) -> Iterator[Any]:
        lent = self._lend(side, connect, ping)
        try:
            yield lent.conn
        except BaseException:
            self.give_back(lent, failed=True)
            raise
        self.give_back(lent, failed=False)

    def lend_target(self) -> Lent:
        """The container's warm Snowflake connection (``target``), for use beyond one block: ``give_back``
        returns it. Planning holds it for a run's planning (``pipeline.planning.TargetColumns``), so a
        scheduler container logs in once, not once per run or per followed cdc window."""
        return self._lend("target", self.snowflake, _ping_snowflake)

    def adopt_target(self, conn: Any) -> None:
        """Keep ``conn``, a Snowflake connection just opened and checked (the preflight's), as the container's
        warm one, at the place its secret names; the one held before is closed. While the warm one is lent,
        ``conn`` is closed instead."""
        warm = self.warm.get("target")
        if warm is not None and warm.busy:
            _close_quietly(conn)
            return
        self.drop_connections("target")
        now = time.monotonic()
        self.warm["target"] = _Warm(conn, now, now)

    def _lend(self, side: str, connect: Callable[[], Any], ping: Callable[[Any], None]) -> Lent:
        now = time.monotonic()
        warm = self.warm.get(side)
        if warm is not None and warm.busy:  # used re-entrantly: this use gets a connection of its own
            conn = connect()
            try:
                self._place(side, conn, None)
            except BaseException:
                _close_quietly(conn)
                raise
            return Lent(conn, side, warm=False)
        if warm is not None and now - warm.opened > MAX_AGE_SECONDS:
            self.drop_connections(side)
            warm = None
        if warm is not None and now - warm.used > PING_AFTER_SECONDS:
            try:
                ping(warm.conn)
            except Exception:  # noqa: BLE001 - it does not answer: open a new one
                self.drop_connections(side)
                warm = None
        if warm is None:
            warm = _Warm(connect(), now, now)
            self.warm[side] = warm
            self.hooks.metric("ConnectionsOpened", 1)
        else:
            self.hooks.metric("ConnectionsReused", 1)
        warm.busy = True
        try:
            warm.place = self._place(side, warm.conn, warm.place)
        except BaseException:
            warm.busy = False
            self.drop_connections(side)
            raise
        return Lent(warm.conn, side, warm=True)

    def give_back(self, lent: Lent, failed: bool) -> None:
        """Return a lent connection: the warm one stays for the next use unless its use ``failed`` (then it
        is closed: a session in an unknown state is not handed out again); one of its own is closed."""
        warm = self.warm.get(lent.side)
        if not lent.warm or warm is None or warm.conn is not lent.conn:
            _close_quietly(lent.conn)
            return
        warm.busy = False
        if failed:
            self.drop_connections(lent.side)
            return
        warm.used = time.monotonic()

    def drop_connections(self, *sides: str) -> None:
        """Close and forget the warm connections of ``sides`` (all when none is named)."""
        for side in sides or tuple(self.warm):
            warm = self.warm.pop(side, None)
            if warm is not None:
                _close_quietly(warm.conn)


@dataclass
class Lent:
    """A connection ``Connections.lend_target`` handed out: the container's warm one (``warm``), or, while
    that one is in use, one of its own, closed when it is given back."""

    conn: Any
    side: str
    warm: bool


class Opening:
    """A connection being opened on a thread of its own (a Snowflake login is network round trips, so it
    goes on while this thread works). ``take`` waits for it and hands it over, raising what opening it
    raised; ``close`` closes one not taken (once it is open, without waiting for it). The thread runs in a copy of the
    caller's context, so what is metered there counts in the caller's unit of work."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        pool = ThreadPoolExecutor(1, thread_name_prefix="connect")
        self._future: Future[Any] | None = pool.submit(contextvars.copy_context().run, connect)
        pool.shutdown(wait=False)  # the thread ends with its one task

    def take(self) -> Any:
        """The connection (once; None after that)."""
        future, self._future = self._future, None
        return None if future is None else future.result()

    def close(self) -> None:
        """Close the connection if it was not taken, now or (still opening: nothing waits for it, its
        retries included) once it is open; a failure to open it is nobody's concern then."""
        future, self._future = self._future, None
        if future is not None:
            future.add_done_callback(_close_opened)


def _close_opened(future: Future[Any]) -> None:
    if future.exception() is None:
        future.result().close()
