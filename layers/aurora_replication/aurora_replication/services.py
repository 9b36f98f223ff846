"""The clients a handler needs, built once per container from the validated settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from aurora_replication import retry, secrets
from aurora_replication.config import Settings
from aurora_replication.cost import meter
from aurora_replication.ledger.keys import Scope
from aurora_replication.ledger.store import StateStore
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import connect as source_connect
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import sql as target_sql
from aurora_replication.target.warehouse import Warehouse

# the errors retried in place: each side's driver says which of its own are transient
TRANSIENT = retry.any_of(source_connect.is_transient, target.is_transient)

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef


# Warm connections (``Services.source`` and ``Services.target``): a container keeps one connection to
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
    # the database (MySQL) or schema (Snowflake) the connection was moved to (``Services.locate``);
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


def _no_fault(step: str, message: Any = None) -> None:
    """Production does nothing at step boundaries; fault tests inject crashes here."""


def _no_metric(name: str, value: float, unit: str = "Count", step: str | None = None) -> None:
    """Without a handler's metrics (the CLI, tests) a metric goes nowhere."""


SQS_BILLING_CHUNK = 64 * 1024


def sqs_requests(bodies: Iterable[str]) -> int:
    """The billed requests of one SendMessageBatch: every 64 KB of its payload is one request."""
    size = sum(len(b.encode()) for b in bodies)
    return max(1, -(-size // SQS_BILLING_CHUNK))


@dataclass
class Services:
    settings: Settings
    state: StateStore
    sqs: SQSClient
    fault: Callable[[str, Any], None] = field(default=_no_fault)
    # (name, value, unit, step): the handler points it at Powertools Metrics
    metric: Callable[..., None] = field(default=_no_metric)
    # reads and caches the two secrets; None: Powertools' process-wide default provider
    secrets_provider: SecretsProvider | None = None
    # the container's warm connections ("source", "target") and what DDL it ran (Target.ready)
    warm: dict[str, _Warm] = field(default_factory=dict)
    ddl_done: set[str] = field(default_factory=set)
    # the invocation's deadline (``time.monotonic()``), from its Lambda context's remaining time; None:
    # none known (the CLI, tests). Work that may not finish before it less DEADLINE_MARGIN_SECONDS is
    # not started (the scheduler's planning) or handed to a later invocation (a finaliser's wait)
    deadline: float | None = None
    # where the message in hand reads and writes (``locate``): the MySQL database and the Snowflake
    # schema of its table's plan; None: the secrets' own
    source_database: str | None = None
    target_schema: str | None = None

    def locate(self, source_database: str | None, target_schema: str | None) -> None:
        """Make the connections handed out from now on read ``source_database`` (MySQL's default
        database: every source statement names its tables unqualified) and write ``target_schema`` (the
        Snowflake session's schema: every target statement too); None: the secrets' own. A run of a
        request naming several databases (``pipeline/databases.py``) records them in each table's plan."""
        self.source_database = source_database
        self.target_schema = target_schema

    def _place(self, side: str, conn: Any, current: str | None) -> str | None:
        """Move ``conn`` to where the message in hand works (``locate``), when it is elsewhere; its place."""
        wanted = self.target_schema if side == "target" else self.source_database
        if wanted == current:
            return current
        if side == "target":
            schema = wanted if wanted is not None else self.scope().target_schema
            target.execute(conn, target_sql.use_schema(schema))
            self.ddl_done.clear()  # what this container made (stage, load tables) was made in another schema
        else:
            conn.select_db(wanted if wanted is not None else self.mysql_settings().dbname)
        return wanted

    def place(self, side: str, conn: Any) -> Any:
        """A connection just opened (``mysql``: side ``source``; ``snowflake``: ``target``) moved to where
        the message in hand works (``locate``)."""
        self._place(side, conn, None)
        return conn

    def set_deadline(self, context: Any) -> None:
        """The deadline of the invocation ``context`` describes (``get_remaining_time_in_millis``)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self.deadline = time.monotonic() + remaining() / 1000 if callable(remaining) else None

    def seconds_left(self) -> float:
        """Seconds until the deadline less DEADLINE_MARGIN_SECONDS (infinite without a deadline)."""
        if self.deadline is None:
            return float("inf")
        return self.deadline - self.settings.deadline_margin_seconds - time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings, metric: Callable[..., None] = _no_metric) -> Services:
        """Every AWS client is made here, at cold start: with the credentials the function has then.
        ``metric``: where the work's metrics go (the handler's Powertools metrics; nowhere by default)."""
        config = retry.boto_config(settings.retry_attempts)
        return cls(
            settings=settings,
            metric=metric,
            state=StateStore(
                settings.state_table, boto3.resource("dynamodb", config=config), settings.run_retention_seconds
            ),
            sqs=boto3.client("sqs", config=config),
            secrets_provider=SecretsProvider(boto_config=config),
        )

    def mysql_settings(self, force: bool = False) -> secrets.MySQLSettings:
        s = self.settings
        return secrets.mysql_settings(
            s.source_secret_arn,
            s.secret_max_age_seconds,
            force,
            s.mysql_ca_bundle,
            provider=self.secrets_provider,
            fallback=s.source_fallback,
        )

    def located_mysql_settings(self, force: bool = False) -> secrets.MySQLSettings:
        """``mysql_settings`` with the database of the message in hand (``locate``): what a connection
        opened elsewhere (an extract part's helper process) reads."""
        settings = self.mysql_settings(force)
        return replace(settings, dbname=self.source_database) if self.source_database else settings

    def snowflake_settings(self, force: bool = False) -> secrets.SnowflakeSettings:
        s = self.settings
        return secrets.snowflake_settings(s.target_secret_arn, s.secret_max_age_seconds, force, self.secrets_provider)

    def scope(self) -> Scope:
        """Where this stack's tables come from and go to, from the two secrets and the naming rule: what
        every table-level state key holds (``ledger.keys.TableKey``). A run records the scope it is planned in."""
        target = self.snowflake_settings()
        return Scope.of(self.mysql_settings().dbname, target.database, target.schema, self.settings.identifier_case)

    def with_retries[T](self, fn: Callable[[], T], what: str) -> T:
        s = self.settings
        return retry.call_with_retries(
            fn,
            s.retry_attempts,
            s.retry_base_seconds,
            s.retry_max_seconds,
            what,
            lambda: self.metric("Retries", 1),
            TRANSIENT,
        )

    def mysql(self) -> Any:
        return self._connect(lambda: source_connect.connect_with_rotation(self.mysql_settings), "MySQL", "source")

    def mysql_bulk(self) -> Any:
        """A connection of the bulk reader (``source.bulk``: MySQL's C client), for a chunk's rows."""
        return self._connect(lambda: source_bulk.connect_with_rotation(self.mysql_settings), "MySQL", "source")

    def snowflake(self) -> Any:
        timeout = self.settings.snowflake_statement_timeout_seconds
        return self._connect(
            lambda: target.connect_with_rotation(self.snowflake_settings, timeout), "Snowflake", "target"
        )

    def _connect(self, connect: Callable[[], Any], engine: str, side: str) -> Any:
        """A new connection, with retries; a failure the operator can act on is described as such."""
        try:
            return self.with_retries(connect, f"{engine} connect")
        except Exception as e:
            described = self.endpoint_error(e, side)
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
        now = time.monotonic()
        warm = self.warm.get(side)
        if warm is not None and warm.busy:  # used re-entrantly: this use gets a connection of its own
            conn = connect()
            try:
                self._place(side, conn, None)
                yield conn
            finally:
                _close_quietly(conn)
            return
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
            self.metric("ConnectionsOpened", 1)
        else:
            self.metric("ConnectionsReused", 1)
        warm.busy = True
        try:
            warm.place = self._place(side, warm.conn, warm.place)
            yield warm.conn
        except BaseException:
            warm.busy = False
            self.drop_connections(side)
            raise
        warm.busy = False
        warm.used = time.monotonic()

    def drop_connections(self, *sides: str) -> None:
        """Close and forget the warm connections of ``sides`` (all when none is named)."""
        for side in sides or tuple(self.warm):
            warm = self.warm.pop(side, None)
            if warm is not None:
                _close_quietly(warm.conn)

    def describe(self, error: Exception) -> Exception:
        """``endpoint_error`` for an error of either driver (an EndpointError, or the error itself)."""
        module = type(error).__module__
        if module.startswith("pymysql"):
            return self.endpoint_error(error, "source")
        if module.startswith("snowflake.connector"):
            return self.endpoint_error(error, "target")
        return error

    def endpoint_error(self, error: Exception, side: str) -> Exception:
        """A failure of the source or target as an EndpointError a person can act on (host, port, user,
        database and what to check; never the password), or the error itself when it is not one of those."""
        try:
            if side == "source":
                described = source_connect.describe_failure(error, self.mysql_settings())
            else:
                described = target.describe_failure(error, self.snowflake_settings())
        except Exception:  # noqa: BLE001 - the settings themselves failed: the original error says more
            return error
        return described or error

    def send_messages(self, bodies: list[str], tables: list[str] | None = None, delay_seconds: int = 0) -> None:
        """Send in batches of ten; a partly failed batch is resent until every entry is accepted.
        ``tables``: the table of each message, whose cost figures it counts toward (the scheduler
        sends several tables' messages in one batch); by default the table the meter is on.
        ``delay_seconds``: each message is delivered that much later (SQS DelaySeconds, 0 to 900)."""
        owners: list[str | None] = list(tables) if tables is not None else [None] * len(bodies)
        delay = max(0, min(900, int(delay_seconds)))
        for i in range(0, len(bodies), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])
            ]
            if delay:
                for entry in entries:
                    entry["DelaySeconds"] = delay
            batch_owners = owners[i : i + 10]
            for _attempt in range(5):
                resp = self.sqs.send_message_batch(QueueUrl=self.settings.chunk_queue_url, Entries=entries)
                requests = sqs_requests(e["MessageBody"] for e in entries)
                for j in (int(e["Id"]) for e in entries):  # the request's cost, shared by its messages
                    meter.add("sqs_requests", requests / len(entries), batch_owners[j])
                failed = {f["Id"] for f in resp.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            for owner in batch_owners:
                meter.add("sqs_messages_sent", 1, owner)
            if entries:
                raise RuntimeError(f"SQS refused {len(entries)} chunk messages after 5 attempts")
