"""Run ledger, chunk fan-in, leases and watermarks in one DynamoDB table (``pk``/``sk``).

Items (no item grows with the number of chunks: a table of 20,000 chunks has 20,000 small CHUNK
items, 80 BOUNDS pages and one TABLE item with counters):
  RUN#<run>   / RUN              run: mode, table_count (how many tables the run lists), request (without its
                                 list of tables when that is the run's), created_at, status, planned; it does not
                                 grow with the number of tables
  RUN#<run>   / NAMES#<first>    the run's tables in order, NAMES_PAGE names a page (JSON text), keyed by the index
                                 of the page's first name: what a planner that continues the run reads
  RUN#<run>   / TALLY            table_count, finished_count (the tables whose status is final, counted once
                                 each: ``count_finished``) and last_but_one (table_count - 1)
  RUN#<run>   / FINISHED#<table> the mark that ``table`` is counted, written in one transaction with the count,
                                 so a repeated count (a redelivered finaliser) adds nothing
  RUN#<run>   / TABLE#<table>    table of a run: plan (its JSON text: one string attribute, not a nested map
                                 of a few hundred attribute values that every read, write and update of the
                                 item would walk; ``get_table`` and ``get_run`` give it back as a dict),
                                 chunk_count, status, window, done_count (chunk
                                 completions counted in the current heal round; may run past chunk_count
                                 after a redelivery, never short of it), rows_copied, progress_at (last
                                 chunk done), heal_round (validation re-copies so far), the validation result
  RUN#<run>   / CHUNK#<table>#<id>  one chunk: the attempt whose rows stand for it in the load table, the
                                 snapshot it was read in (snapshot_at, source_position) and that snapshot's
                                 source_rows and source_checksum, its rows, bytes, seconds; round (the heal
                                 round it was copied in), need_round (the round a heal asked it to be copied in)
  RUN#<run>   / BOUNDS#<table>#<first chunk id>  the key range of each chunk, in pages of at most BOUNDS_PAGE
                                 chunks and BOUNDS_PAGE_BYTES: a worker reads its chunk's range from its page (the
                                 message names only the chunk), the finaliser all of them for healing and resuming
  TABLE#<key> / LEASE            one run per table at a time; expires_at also enforces the minimum interval
  TABLE#<key> / WATERMARK        last committed watermark and the run that committed it
  TABLE#<key> / LAST_RUN         the latest finished run of the table (for the health check), with
                                 source_as_of: the oldest chunk snapshot of that run

Operator's view (health check and run report; see the section at the end of the class):
  CATALOG     / TABLE#<key>      one item per replicated table: its latest run, last finished run, freshness
                                 (``source_as_of``) and watermark; the health check queries this partition
                                 (the stack's scope: one prefix of it) instead of scanning the table

``<key>`` is a table's state key (``TableKey``): the source database and table, and the target database,
schema and table they are copied to, ``<source db>><TARGET DB>.<TARGET SCHEMA>#<table>><TARGET TABLE>``
(``shop>ANALYTICS.PUBLIC#orders>ORDERS``). Only ``TableKey`` builds it: one table copied from two
databases, or into two schemas, has two sets of state, and pointing a stack at a new target starts from
nothing there (a full copy) instead of from a watermark that describes another table. A run records its
``Scope`` (RUN and TABLE items: ``scope``), and everything after planning (workers, finalisers, resume)
takes the key from there. Items written before state was scoped have the plain ``TABLE#<table>`` key:
a run recorded without a scope (one in flight across the upgrade) keeps using those; new runs never
read them (``acquire_lease`` only checks that no such run still holds the table).
  RUN#<run>   / ATTEMPT#<table>#<chunk>#<attempt>  one attempt of a chunk (or a table's finalise): worker,
                                 start, steps with their offsets and durations, rows, error; for the run report

A RUN item written before the names moved out of it (``tables``: the list, ``finished_tables``: a string set)
reads and counts as it did (``run_tables``, ``count_finished``): a run in flight across the upgrade finishes.

Retention: every item of a run's partition (``RUN#<run>``: RUN, NAMES, TALLY, FINISHED, TABLE, CHUNK, BOUNDS,
ATTEMPT) carries
``expiration`` (the table's TTL attribute), ``run_retention_seconds`` after it was written (RUN_RETENTION_DAYS,
30 days by default: long enough to resume a stalled run and to audit or report on it). The items a table's
next run depends on (LEASE, WATERMARK, LAST_RUN, CDC) and the catalog never expire: there is one of each per
table, so they do not grow with the number of runs.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from aurora_replication import meter
from aurora_replication.identifiers import target_name
from aurora_replication.meter import MeteredTable

SUPERSEDED = "superseded"
# a table's status in a run: running, then one of these; FINAL ones are never changed again (declined
# is recorded final from the start)
TERMINAL = {"published", "failed", "declined", SUPERSEDED}
FINAL = ("published", "failed", SUPERSEDED)
# how long DynamoDB keeps a run's items (the table's TTL attribute is ``EXPIRATION``; DynamoDB deletes an
# expired item within a few days of its time, not at once); Settings.run_retention_days overrides it
EXPIRATION = "expiration"
RUN_RETENTION_SECONDS = 30 * 24 * 3600
CATALOG_PK = "CATALOG"
# names a page of the run's tables: a MySQL table name is at most 64 characters of at most 4 bytes in UTF-8,
# so a page is at most 1,000 x (256 + 3) bytes of JSON, far below DynamoDB's 400 KB item limit
NAMES_PAGE = 1000
# how often a count of a finished table is tried again when another count of the run holds the TALLY item
# (DynamoDB cancels a transaction that conflicts with another in progress on the same item)
COUNT_ATTEMPTS = 12
BOUNDS_PAGE = 250
# a page of bounds stays far below DynamoDB's 400 KB item limit however wide the key (InnoDB keys are at
# most 3072 bytes, a bound's JSON a few times that)
BOUNDS_PAGE_BYTES = 256 * 1024
Bounds = tuple[list[str] | None, list[str] | None]
# the chunk's fields a worker records with its completion (written once per heal round: the first
# completed attempt of the round wins, so the pair (attempt, checksum) never mixes two attempts)
CHUNK_FIELDS = (
    "attempt",
    "rows",
    "bytes",
    "seconds",
    "source_rows",
    "source_checksum",
    "snapshot_at",
    "source_position",
    # what Snowflake counted and summed of the attempt's rows right after it loaded (validation's other side)
    "target_rows",
    "target_checksum",
    "target_checksum_no_json",
)


def _now() -> int:
    return int(time.time())


# characters that separate the parts of a state key: inside a name they are written %XX, so that no two
# (database, schema, table) triples give the same key whatever characters the names hold
_KEY_SPECIAL = re.compile(r"[%#>.\x00-\x1f\x7f]")
_PLAIN_SNOWFLAKE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _key_part(name: str) -> str:
    return _KEY_SPECIAL.sub(lambda m: f"%{ord(m.group()):02X}", name)


def _snowflake_name(name: str) -> str:
    """A database or schema name as Snowflake resolves it from a session parameter: a plain name in upper
    case (unquoted identifiers are), a double-quoted one exactly as written inside the quotes."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name.upper() if _PLAIN_SNOWFLAKE_NAME.fullmatch(name) else name


@dataclass(frozen=True)
class Scope:
    """Where a stack's tables come from and go to: the source database, the target database and schema,
    and the naming rule that makes a target table's name from its source table's. Every table-level
    state item is keyed by it (``key``); a run records it (``to_item``) so that its workers, finalisers
    and a resume use the scope it was planned in, whatever the secrets say later."""

    source_database: str
    target_database: str
    target_schema: str
    identifier_case: str = "upper"

    @classmethod
    def of(cls, source_database: str, target_database: str, target_schema: str, identifier_case: str) -> Scope:
        return cls(source_database, _snowflake_name(target_database), _snowflake_name(target_schema), identifier_case)

    @property
    def text(self) -> str:
        """``<source db>><TARGET DB>.<TARGET SCHEMA>``: the part of every key of this scope."""
        return f"{_key_part(self.source_database)}>{_key_part(self.target_database)}.{_key_part(self.target_schema)}"

    def key(self, table: str) -> TableKey:
        return TableKey(table, self)

    def describe(self) -> str:
        return f"source database {self.source_database!r} into {self.target_database}.{self.target_schema}"

    def to_item(self) -> dict[str, str]:
        return {
            "source_database": self.source_database,
            "target_database": self.target_database,
            "target_schema": self.target_schema,
            "identifier_case": self.identifier_case,
        }

    @classmethod
    def from_item(cls, item: Any) -> Scope | None:
        """The scope a run recorded (None: the run was recorded before state was scoped)."""
        if not isinstance(item, dict) or not item.get("source_database"):
            return None
        return cls(
            str(item["source_database"]),
            str(item["target_database"]),
            str(item["target_schema"]),
            str(item.get("identifier_case") or "upper"),
        )


@dataclass(frozen=True)
class TableKey:
    """The one place a table's state key is made: ``pk`` of its LEASE, WATERMARK, LAST_RUN and CDC items,
    ``sk`` of its catalog item. ``scope`` None: the unscoped key items had before state was scoped."""

    table: str
    scope: Scope | None

    @property
    def target_table(self) -> str | None:
        return None if self.scope is None else target_name(self.table, self.scope.identifier_case)

    @property
    def pk(self) -> str:
        if self.scope is None:
            return f"TABLE#{self.table}"
        return f"TABLE#{self.scope.text}#{_key_part(self.table)}>{_key_part(str(self.target_table))}"

    @property
    def catalog_sk(self) -> str:
        return self.pk

    def item(self, sk: str) -> dict[str, str]:
        """The DynamoDB key of one of the table's items (``LEASE``, ``WATERMARK``, ``LAST_RUN``, ``CDC``)."""
        return {"pk": self.pk, "sk": sk}

    def unscoped(self) -> TableKey:
        """The key the table's items had before state was scoped (read only to say they are not used)."""
        return TableKey(self.table, None)

    def describe(self) -> str:
        if self.scope is None:
            return f"table {self.table!r}"
        return f"table {self.table!r} ({self.scope.describe()}.{self.target_table})"

    @classmethod
    def of_run_table(cls, item: dict[str, Any], table: str | None = None) -> TableKey:
        """The key of a run's table: from the scope its TABLE item records (``table``: its name, when the
        item is not at hand whole); a run recorded before state was scoped keeps the unscoped key."""
        return cls(str(table if table is not None else item["table"]), Scope.from_item(item.get("scope")))


@dataclass(frozen=True)
class Held:
    """What a write of a table's lasting state needs: ``run_id`` held the table's lease when it renewed it
    to ``until`` (``StateStore.hold_lease``), and ``order``, when the run started on the table (its
    ``started_at``), is what forward-only writes compare: a run that started earlier never overwrites
    what a later one wrote."""

    key: TableKey
    run_id: str
    order: Decimal
    until: int
    seconds: int


def run_order(item: dict[str, Any]) -> Decimal:
    """A run's order on a table, from its TABLE item: when it started on the table (``started_at``, taken
    after the lease: a run that takes the lease after another has a later one), else when it was recorded."""
    value = item.get("started_at") or item.get("created_at") or 0
    return Decimal(str(round(float(value), 3)))


# forward only: no item written by a run that started later, nor by another run that started at the same time
FORWARD = "attribute_not_exists(#order) OR #order < :order OR (#order = :order AND #writer = :run)"


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, set):
        return {_plain(x) for x in v}
    return v


def _decoded(item: dict[str, Any], field: str) -> dict[str, Any]:
    """An item as the code uses it: plain values, and ``field`` (a TABLE item's plan, the RUN item's
    tables), stored as JSON text, as the value it encodes (an item written by an earlier version holds
    it as a map or a list; either reads the same)."""
    out: dict[str, Any] = _plain(item)
    if isinstance(out.get(field), str):
        out[field] = json.loads(out[field])
    return out


def _table_item(item: dict[str, Any]) -> dict[str, Any]:
    return _decoded(item, "plan")


def _run_item(item: dict[str, Any]) -> dict[str, Any]:
    return _decoded(item, "tables")


def table_count(run: dict[str, Any]) -> int:
    """How many tables a run lists, from its RUN item (``table_count``; a RUN item of an earlier version:
    the length of its list)."""
    if run.get("table_count") is not None:
        return int(run["table_count"])
    return len(run.get("tables") or [])


def _leased(table: str, holder: str, until: int) -> str:
    return (
        f"table {table!r} is leased by run {holder} until "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))} "
        "(a run in progress, or the minimum interval between runs)"
    )


def _forward(field: str, held: Held) -> tuple[str, dict[str, Any]]:
    """The condition (and its values) that a catalog note of ``field`` (``watermark``, ``last_run``) moves
    forward only: the run that wrote it last (``watermark_run``, ``last_run``) did not start after ``held``'s."""
    writer = "watermark_run" if field == "watermark" else "last_run"
    order = f"{writer}_started_at"
    condition = f"attribute_not_exists({order}) OR {order} < :order OR ({order} = :order AND {writer} = :run)"
    return condition, {":order": held.order, ":run": held.run_id}


def _catalog_prefix(scope: Scope) -> str:
    return f"TABLE#{scope.text}#"


def if_condition_holds[T](write: Callable[..., T], **kwargs: Any) -> T | None:
    """Run a conditional DynamoDB write (``put_item``, ``update_item``); None when its condition does
    not hold (``ConditionalCheckFailedException``), any other error raised."""
    try:
        return write(**kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return None


def _set_fields(fields: dict[str, Any], names: dict[str, str], values: dict[str, Any], sets: list[str]) -> None:
    """Add ``SET #fN = :fN`` clauses for arbitrary attribute names (floats as Decimal, as boto3 needs)."""
    for i, (k, v) in enumerate(fields.items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = Decimal(str(v)) if isinstance(v, float) else v
        sets.append(f"#f{i} = :f{i}")


class StateStore:
    def __init__(
        self, table_name: str, resource: Any = None, run_retention_seconds: int = RUN_RETENTION_SECONDS
    ) -> None:
        # every item call asks for and counts its consumed capacity (docs/cost.md)
        self.resource = resource or boto3.resource("dynamodb")
        self.table = MeteredTable(self.resource.Table(table_name))
        self.run_retention_seconds = run_retention_seconds
        self._renewed: dict[tuple[str, str], int] = {}  # (lease, run) -> when this container last renewed it

    def _expires(self) -> int:
        """The ``expiration`` (epoch seconds) of a run's item written now."""
        return _now() + self.run_retention_seconds

    # ---- leases ----------------------------------------------------------------------------
    def acquire_lease(self, key: TableKey, run_id: str, seconds: int) -> tuple[bool, str]:
        now = _now()
        held = self._unscoped_holder(key, run_id, now)
        if held:
            return False, held
        if if_condition_holds(
            self.table.put_item,  # the whole item: a released lease taken again is no longer released
            Item={**key.item("LEASE"), "run_id": run_id, "expires_at": now + seconds},
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR run_id = :run",
            ExpressionAttributeValues={":now": now, ":run": run_id},
        ):
            self.note_table_started(key, run_id, now)  # catalog (operator's view)
            return True, ""
        item: dict[str, Any] = dict(self.table.get_item(Key=key.item("LEASE")).get("Item", {}))
        return False, _leased(key.table, str(item.get("run_id", "?")), int(item.get("expires_at", 0)))

    def _unscoped_holder(self, key: TableKey, run_id: str, now: int) -> str:
        """Why the table is not free under its unscoped key (a run recorded before state was scoped, still
        in flight across the upgrade, holds it), or ''. One read; it goes with the code that wrote those."""
        if key.scope is None:
            return ""
        item = self.table.get_item(Key=key.unscoped().item("LEASE"), ConsistentRead=True).get("Item")
        if not item or str(item.get("run_id")) == run_id or int(item.get("expires_at", 0)) < now:
            return ""
        return _leased(key.table, str(item["run_id"]), int(item["expires_at"])) + " (a run started before the upgrade)"

    def hold_lease(self, key: TableKey, run_id: str, seconds: int, order: Decimal) -> Held | None:
        """Renew ``run_id``'s lease on the table for ``seconds`` from now (a conditional write: the run holds
        it and has not released it, or nobody does); None when another run has taken it since (this run is
        superseded) or this run released it (it has finished the table). What a finaliser does before it
        publishes and before each write of the table's lasting state (watermark, last run, cdc position):
        DynamoDB conditions cover one item, so the holder check is this write, which keeps the lease for
        ``seconds`` (LEASE_SECONDS, longer than any invocation), and the write that follows is conditional
        on ``order`` (forward only)."""
        now = _now()
        done = if_condition_holds(
            self.table.update_item,
            Key=key.item("LEASE"),
            UpdateExpression="SET run_id = :run, expires_at = :until",
            ConditionExpression="attribute_not_exists(pk) OR (run_id = :run AND attribute_not_exists(released_at))",
            ExpressionAttributeValues={":run": run_id, ":until": now + seconds},
        )
        if done is None:
            return None
        self._renewed[(key.pk, run_id)] = now
        return Held(key, run_id, order, now + seconds, seconds)

    def renew_lease(self, key: TableKey, run_id: str, seconds: int, order: Decimal) -> bool:
        """A run made progress (a chunk or a batch done): its lease is renewed, at most every quarter of
        ``seconds`` from one container, so a run that keeps working keeps its table however long it takes,
        and a run that stops loses it ``seconds`` after its last progress. False when the run no longer
        holds it (superseded, or finished)."""
        last = self._renewed.get((key.pk, run_id))
        if last is not None and _now() - last < seconds // 4:
            return True
        if len(self._renewed) > 1024:
            self._renewed.clear()
        return self.hold_lease(key, run_id, seconds, order) is not None

    def still_held(self, held: Held) -> Held | None:
        """``held``, renewed when half of it has passed (a long commit): the write that follows stays inside it."""
        if _now() < held.until - held.seconds // 2:
            return held
        return self.hold_lease(held.key, held.run_id, held.seconds, held.order)

    def lease_holder(self, key: TableKey) -> str | None:
        """The run holding the table's lease (or last holding it), if any."""
        item = self.table.get_item(Key=key.item("LEASE"), ConsistentRead=True).get("Item")
        return str(item["run_id"]) if item and item.get("run_id") else None

    def claim_auto_resume(self, run_id: str, table: str) -> bool:
        """Mark the running table of a stalled run as resumed automatically; only the first claim wins
        (``auto_resumed_at``), so a scheduler resumes a run's table once, never in a loop."""
        return self._update_if(
            run_id,
            table,
            "SET auto_resumed_at = :now, progress_at = :now",
            "attribute_exists(pk) AND #s = :running AND attribute_not_exists(auto_resumed_at)",
            {"#s": "status"},
            {":now": _now(), ":running": "running"},
        )

    def release_lease(self, key: TableKey, run_id: str, hold_seconds: int) -> None:
        """End the lease of ``run_id``; it keeps blocking new runs for ``hold_seconds`` (minimum interval).
        A released lease is not renewed again by the run (a late duplicate of one of its chunks)."""
        if_condition_holds(
            self.table.update_item,
            Key=key.item("LEASE"),
            UpdateExpression="SET expires_at = :until, released_at = :now",
            ConditionExpression="run_id = :run",
            ExpressionAttributeValues={":until": _now() + hold_seconds - 1, ":run": run_id, ":now": _now()},
        )

    # ---- runs ------------------------------------------------------------------------------
    def create_run(
        self, run_id: str, mode: str, tables: list[str], request: dict[str, Any], scope: Scope | None = None
    ) -> None:
        """The RUN item, with the ``scope`` the run is planned in (None: a sample run of ``replicate invoke``),
        and the run's list of tables in NAMES pages and its TALLY (nothing in the RUN item grows with the
        number of tables: a request that lists the run's tables is kept without them; ``run_request``)."""
        pk = f"RUN#{run_id}"
        stored = dict(request)
        if isinstance(stored.get("tables"), list) and stored["tables"] == list(tables):
            del stored["tables"]
            stored_tables = {"request_tables": "names"}
        else:
            stored_tables = {}
        expires = self._expires()
        with self.table.batch_writer() as batch:  # retries what DynamoDB leaves unprocessed
            for first in range(0, len(tables), NAMES_PAGE):
                names = json.dumps(tables[first : first + NAMES_PAGE], ensure_ascii=False, separators=(",", ":"))
                batch.put_item(
                    Item={"pk": pk, "sk": f"NAMES#{first:06d}", "first": first, "names": names, EXPIRATION: expires}
                )
            # last_but_one: a count below it is not the last table's (``count_finished`` needs no read then)
            tally = {"table_count": len(tables), "finished_count": 0, "last_but_one": len(tables) - 1}
            batch.put_item(Item={"pk": pk, "sk": "TALLY", **tally, EXPIRATION: expires})
        self.table.put_item(
            Item={
                "pk": pk,
                "sk": "RUN",
                "mode": mode,
                **({"scope": scope.to_item()} if scope is not None else {}),
                "table_count": len(tables),
                "request": stored,
                **stored_tables,
                "created_at": _now(),
                "status": "running",
                EXPIRATION: expires,
            }
        )

    def run_tables(self, run_id: str, run: dict[str, Any] | None = None) -> list[str]:
        """The run's tables in order: its NAMES pages (one query; a RUN item of an earlier version: its list).
        ``run``: the RUN item when it is at hand."""
        run = self.run_item(run_id) if run is None else run
        if isinstance(run.get("tables"), list):
            return [str(t) for t in run["tables"]]
        pages = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :n)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":n": "NAMES#"},
        )
        names: list[str] = []
        for page in sorted(pages, key=lambda i: int(str(i["first"]))):
            names.extend(str(t) for t in json.loads(str(page["names"])))
        return names

    @staticmethod
    def run_request(run: dict[str, Any], tables: list[str]) -> dict[str, Any]:
        """The request a run was recorded with, its list of tables put back (``create_run`` keeps it out of
        the RUN item when it is the run's list, ``tables``)."""
        request = dict(run.get("request") or {})
        if run.get("request_tables") == "names":
            request["tables"] = list(tables)
        return request

    def record_table(self, run_id: str, table: str, scope: Scope | None = None, **fields: Any) -> None:
        """A table of the run, with the run's ``scope`` (where its table-level state is: ``TableKey``)."""
        self.table.put_item(Item=self._table_record(run_id, table, fields, scope))
        if fields.get("status") in TERMINAL:  # failed or declined before any chunk: finished already
            self.count_finished(run_id, table)

    def record_tables(
        self, run_id: str, tables: list[tuple[str, dict[str, Any], list[Bounds]]], scope: Scope | None = None
    ) -> None:
        """Several running tables at once (none finished: ``record_table`` counts those), each
        ``(table, fields, bounds)``: their TABLE items (as
        ``record_table``) and their pages of key ranges (as ``save_bounds``), in BatchWriteItem calls of
        up to 25 items instead of a request or two per table (every item is written before this
        returns: boto3's batch writer sends DynamoDB's unprocessed items again)."""
        with self.table.batch_writer() as batch:
            for table, fields, bounds in tables:
                batch.put_item(Item=self._table_record(run_id, table, fields, scope))
                for item in self._bounds_pages(run_id, table, bounds):
                    batch.put_item(Item=item)

    def _table_record(
        self, run_id: str, table: str, fields: dict[str, Any], scope: Scope | None = None
    ) -> dict[str, Any]:
        now = _now()
        item = {"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}", "table": table, "created_at": now, **fields}
        if scope is not None:
            item["scope"] = scope.to_item()
        if isinstance(item.get("plan"), dict):
            item["plan"] = json.dumps(item["plan"], separators=(",", ":"))
        item[EXPIRATION] = self._expires()
        item.setdefault("progress_at", now)
        item.setdefault("heal_round", 0)
        item.setdefault("done_count", 0)
        item.setdefault("rows_copied", 0)
        return item

    def _chunk_key(self, run_id: str, table: str, chunk_id: int) -> dict[str, str]:
        return {"pk": f"RUN#{run_id}", "sk": f"CHUNK#{table}#{chunk_id:06d}"}

    def mark_chunk_done(
        self, run_id: str, table: str, chunk_id: int, round: int, info: dict[str, Any]
    ) -> tuple[bool, int]:
        """Record a copied chunk and count it for the fan-in; returns (recorded, done_count).

        1. The CHUNK item takes ``info`` (attempt, snapshot checksum, ...) unless a completed attempt
           of this heal round is already there: the first one wins, later duplicates leave it.
        2. The TABLE item's ``done_count`` goes up by one (only for the table's current heal round),
           even for a duplicate: after a crash between 1 and 2 the redelivered chunk must still count.
           So done_count can pass chunk_count, never stay short of it; the finaliser checks every
           CHUNK item before it trusts the count.
        Returns done_count -1 when the table has moved to another heal round (a stale message)."""
        names = {"#rd": "round", "#exp": EXPIRATION}
        values: dict[str, Any] = {":r": round, ":now": _now(), ":exp": self._expires()}
        sets = ["#rd = :r", "done_at = :now", "#exp = :exp"]
        _set_fields({k: v for k, v in info.items() if k in CHUNK_FIELDS and v is not None}, names, values, sets)
        values[":table"] = table
        values[":chunk"] = chunk_id
        sets += ["#tb = :table", "chunk = :chunk"]
        names["#tb"] = "table"
        chunk = if_condition_holds(
            self.table.update_item,
            Key=self._chunk_key(run_id, table, chunk_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_not_exists(#rd) OR #rd < :r",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="UPDATED_OLD",
        )
        recorded = chunk is not None
        old_rows = int(str(chunk.get("Attributes", {}).get("rows", 0))) if chunk is not None else 0
        delta = int(info.get("rows") or 0) - old_rows if recorded else 0
        counted = if_condition_holds(
            self.table.update_item,
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="ADD done_count :one, rows_copied :delta DELETE dead_lettered :c SET progress_at = :now",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(heal_round) OR heal_round = :r)",
            ExpressionAttributeValues={":one": 1, ":delta": delta, ":c": {str(chunk_id)}, ":now": _now(), ":r": round},
            ReturnValues="UPDATED_NEW",
        )
        if counted is None:
            return recorded, -1
        return recorded, int(str(counted["Attributes"]["done_count"]))

    def get_chunks(self, run_id: str, table: str, count: int | None = None) -> dict[int, dict[str, Any]]:
        """Every CHUNK item of the table in the run, by chunk id (one paged query; a table of ``count``
        1, one consistent read of its item)."""
        if count == 1:
            item = self.table.get_item(Key=self._chunk_key(run_id, table, 0), ConsistentRead=True).get("Item")
            return {0: _plain(item)} if item else {}
        prefix = f"CHUNK#{table}#"
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":prefix": prefix},
        )
        out: dict[int, dict[str, Any]] = {}
        for item in items:
            rest = str(item["sk"])[len(prefix) :]
            if rest.isdigit():  # not a table whose name continues with '#...'
                out[int(rest)] = _plain(item)
        return out

    @staticmethod
    def outstanding(chunks: dict[int, dict[str, Any]], count: int, heal_round: int) -> list[int]:
        """Chunk ids without a completed copy in the round they are due: never copied, or not since a
        heal of a round up to ``heal_round`` (the table's) asked for a re-copy. A ``need_round`` above
        the table's round belongs to a heal whose finaliser died before moving the round on: it does
        not count until a finaliser of the round reopens the chunk again."""
        return [
            i
            for i in range(count)
            if i not in chunks or int(chunks[i].get("round", -1)) < min(int(chunks[i].get("need_round", 0)), heal_round)
        ]

    def mark_dead_lettered(self, run_id: str, table: str, chunk_id: int, error: str) -> None:
        """The chunk failed its last receive and is going to the DLQ: the table is reported failed
        (``dead_lettered``) until a redrive copies the chunk (``mark_chunk_done`` clears it)."""
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="ADD dead_lettered :c SET last_error = :e",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":c": {str(chunk_id)}, ":e": error[:1000]},
        )

    def save_bounds(self, run_id: str, table: str, bounds: list[Bounds]) -> None:
        """The chunks' key ranges, in pages of at most BOUNDS_PAGE chunks and BOUNDS_PAGE_BYTES of JSON,
        each keyed by its first chunk id."""
        with self.table.batch_writer() as batch:
            for item in self._bounds_pages(run_id, table, bounds):
                batch.put_item(Item=item)

    def _bounds_pages(self, run_id: str, table: str, bounds: list[Bounds]) -> list[dict[str, Any]]:
        pages: list[tuple[int, list[str]]] = []
        size = 0
        for i, b in enumerate(bounds):
            text = json.dumps(b, separators=(",", ":"))
            if not pages or len(pages[-1][1]) >= BOUNDS_PAGE or size + len(text) > BOUNDS_PAGE_BYTES:
                pages.append((i, []))
                size = 0
            pages[-1][1].append(text)
            size += len(text) + 1
        return [
            {
                "pk": f"RUN#{run_id}",
                "sk": f"BOUNDS#{table}#{first:06d}",
                "first": first,
                "bounds": "[" + ",".join(texts) + "]",
                EXPIRATION: self._expires(),
            }
            for first, texts in pages
        ]

    def get_chunk_bounds(self, run_id: str, table: str, chunk_id: int) -> Bounds | None:
        """One chunk's key range, from the one page that holds it (None: the run saved no range for it)."""
        prefix = f"BOUNDS#{table}#"
        resp = self.table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":lo": prefix, ":hi": f"{prefix}{chunk_id:06d}"},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        for item in resp["Items"]:
            if not str(item["sk"])[len(prefix) :].isdigit():  # another table whose name continues with '#'
                break
            page = json.loads(str(item["bounds"]))
            at = chunk_id - int(str(item["first"]))
            if 0 <= at < len(page):
                lo, hi = page[at]
                return lo, hi
            return None
        else:
            return None
        bounds = self.get_bounds(run_id, table)
        return bounds[chunk_id] if chunk_id < len(bounds) else None

    def get_bounds(self, run_id: str, table: str) -> list[Bounds]:
        pages = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":prefix": f"BOUNDS#{table}#"},
        )
        bounds: list[Bounds] = []
        for item in sorted(pages, key=lambda i: str(i["sk"])):
            bounds.extend((lo, hi) for lo, hi in json.loads(str(item["bounds"])))
        return bounds

    def _query_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a (consistent) query, across pages."""
        items: list[dict[str, Any]] = []
        while True:
            resp = self.table.query(ConsistentRead=True, **kwargs)
            items.extend(resp["Items"])
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def reopen_chunks(
        self, run_id: str, table: str, chunk_ids: list[int], expected_round: int, chunk_count: int, **fields: Any
    ) -> bool:
        """Ask for ``chunk_ids`` to be copied again in the next heal round. First each CHUNK item gets
        ``need_round`` (idempotent), then the TABLE item moves to the next round with its count reset
        to the chunks not reopened; only one finaliser of a round wins that (conditional on the round).
        Returns whether it was us. A crash between the two leaves the round unchanged and the finalise
        message is retried: it reopens the same chunks again."""
        nxt = expected_round + 1
        for c in chunk_ids:  # a condition that fails: already asked (a repeat of this finaliser)
            if_condition_holds(
                self.table.update_item,
                Key=self._chunk_key(run_id, table, c),
                UpdateExpression="SET need_round = :n, #exp = :exp",  # may create the item
                ConditionExpression="attribute_not_exists(need_round) OR need_round < :n",
                ExpressionAttributeNames={"#exp": EXPIRATION},
                ExpressionAttributeValues={":n": nxt, ":exp": self._expires()},
            )
        names = {"#s": "status"}
        values: dict[str, Any] = {
            ":expected": expected_round,
            ":next": nxt,
            ":done": chunk_count - len(set(chunk_ids)),
            ":now": _now(),
            ":pub": "published",
            ":failed": "failed",
            ":sup": SUPERSEDED,
        }
        sets = ["heal_round = :next", "done_count = :done", "progress_at = :now"]
        _set_fields(fields, names, values, sets)
        return self._update_if(
            run_id,
            table,
            "SET " + ", ".join(sets),
            "attribute_exists(pk) AND NOT #s IN (:pub, :failed, :sup) AND "
            "(attribute_not_exists(heal_round) OR heal_round = :expected)",
            names,
            values,
        )

    def _update_if(
        self, run_id: str, table: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """A conditional update of a run's table item; False when the condition does not hold."""
        return (
            if_condition_holds(
                self.table.update_item,
                Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def table_text(self, run_id: str, table: str, name: str) -> str | None:
        """One text attribute of the run's TABLE item (a consistent read of it alone)."""
        item = self.table.get_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            ConsistentRead=True,
            ProjectionExpression="#n",
            ExpressionAttributeNames={"#n": name},
        ).get("Item")
        value = item.get(name) if item else None
        return None if value is None else str(value)

    def swap_table_text(self, run_id: str, table: str, name: str, new: str, old: str | None) -> bool:
        """Set the TABLE item's text attribute ``name`` to ``new`` only while it holds ``old`` (None: while it
        is absent): one writer wins (a long statement's record, ``target/long_statements.py``)."""
        values: dict[str, Any] = {":new": new}
        condition = "attribute_exists(pk) AND attribute_not_exists(#n)"
        if old is not None:
            condition = "attribute_exists(pk) AND #n = :old"
            values[":old"] = old
        return self._update_if(run_id, table, "SET #n = :new", condition, {"#n": name}, values)

    def note_once(self, run_id: str, table: str, name: str, value: Any) -> bool:
        """Set one field of a run's table item unless it is set already (the first writer wins: a
        repeated step keeps what the first one found). False when it was set."""
        return self._update_if(
            run_id,
            table,
            "SET #f = :v",
            "attribute_exists(pk) AND attribute_not_exists(#f)",
            {"#f": name},
            {":v": value},
        )

    def touch_table(self, run_id: str, table: str) -> None:
        """Record progress without a chunk (a resume, a heal): the stall clock starts again."""
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"},
            UpdateExpression="SET progress_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":now": _now()},
        )

    def get_table(self, run_id: str, table: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"}, ConsistentRead=True)
        return _table_item(item.get("Item", {}))

    def set_table_status(self, run_id: str, table: str, status: str, **fields: Any) -> bool:
        """Set the table's status; a table already published, failed or superseded keeps its status
        (returns False)."""
        names = {"#s": "status", "#t": "updated_at"}
        values: dict[str, Any] = {
            ":s": status,
            ":t": _now(),
            ":pub": "published",
            ":failed": "failed",
            ":sup": SUPERSEDED,
        }
        sets = ["#s = :s", "#t = :t"]
        _set_fields(fields, names, values, sets)
        return self._update_if(
            run_id,
            table,
            "SET " + ", ".join(sets),
            "attribute_exists(pk) AND NOT #s IN (:pub, :failed, :sup)",
            names,
            values,
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The RUN item with its TABLE items (``table_states``) and its TALLY's ``finished_count``: one query.
        "RUN", "TABLE#..." and "TALLY" sort after "ATTEMPT#", "BOUNDS#", "CHUNK#", "FINISHED#" and "NAMES#":
        the chunk ranges and the list of names are not read here."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND sk >= :run",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":run": "RUN"},
        )
        run: dict[str, Any] = {}
        tables: dict[str, dict[str, Any]] = {}
        tally: dict[str, Any] = {}
        for item in items:
            if item["sk"] == "RUN":
                run = _run_item(item)
            elif item["sk"] == "TALLY":
                tally = _plain(item)
            elif str(item["sk"]).startswith("TABLE#"):
                tables[item["table"]] = _table_item(item)
        if run and tally:
            run["finished_count"] = int(tally.get("finished_count", 0))
        elif run:
            run["finished_count"] = len(run.get("finished_tables") or ())
        run["table_states"] = tables
        return run

    # ---- planning in steps (the scheduler's budget: pipeline/scheduler.py) ---------------------
    def run_item(self, run_id: str) -> dict[str, Any]:
        """The RUN item alone (its request, table count, scope, and how far planning got), not its tables."""
        item = self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"}, ConsistentRead=True).get("Item")
        return _run_item(item) if item else {}

    def claim_planning(self, run_id: str, until: int) -> bool:
        """Plan the running run's tables until ``until`` (epoch seconds), if no other invocation does: a
        conditional write, so one planner at a time; an expired claim (its planner was killed) is taken."""
        return (
            if_condition_holds(
                self.table.update_item,
                Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
                UpdateExpression="SET planner_until = :until",
                ConditionExpression="#s = :running AND (attribute_not_exists(planner_until) OR planner_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":until": until, ":now": _now(), ":running": "running"},
            )
            is not None
        )

    def note_planned(self, run_id: str, upto: int, release: bool = False) -> None:
        """The run's first ``upto`` tables are planned and recorded (forward only); ``release``: the planner
        stops, and its claim with it."""
        sets = "SET planned = :n" + (", planner_until = :zero" if release else "")
        values: dict[str, Any] = {":n": upto, **({":zero": 0} if release else {})}
        if (
            not if_condition_holds(
                self.table.update_item,
                Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
                UpdateExpression=sets,
                ConditionExpression="attribute_not_exists(planned) OR planned <= :n",
                ExpressionAttributeValues=values,
            )
            and release
        ):
            self.table.update_item(
                Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
                UpdateExpression="SET planner_until = :zero",
                ExpressionAttributeValues={":zero": 0},
            )

    def table_statuses(self, run_id: str) -> dict[str, str]:
        """The status of each table of the run: its TABLE items' ``status`` only (a projection), not
        their plans, so the check each finished table makes stays small with many tables."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":t": "TABLE#"},
            ProjectionExpression="#tb, #s",
            ExpressionAttributeNames={"#tb": "table", "#s": "status"},
        )
        return {str(i["table"]): str(i.get("status", "")) for i in items if "table" in i}

    def run_status(self, run_id: str) -> str | None:
        """The RUN item's status (``running``, then ``succeeded`` or ``failed`` once every table is
        finished; ``finish_run_if_complete`` sets it): one small read."""
        item = self.table.get_item(
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
            ConsistentRead=True,
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        return None if not item else str(item.get("status"))

    def count_finished(self, run_id: str, table: str) -> bool:
        """Count ``table``, whose status is final, among the run's finished tables, once; returns whether
        every table of the run is counted. One transaction writes the table's FINISHED mark (only if it is
        not there) and adds one to the TALLY's ``finished_count``, so a redelivered finaliser, whose mark is
        there, adds nothing. The first try adds only while the count stays short of the run's last table
        (``finished_count < last_but_one``): then the run is not complete, and that is known without a read.
        Otherwise (the last table's count) it is added unconditionally and the TALLY read. Neither item grows
        with the number of tables. A run recorded by an earlier version (no TALLY) counts in its RUN item's
        string set."""
        pk = f"RUN#{run_id}"
        first = self._count_once(pk, table, short_of_last=True)
        if first == "counted":
            return False  # the count was at most the run's tables less two: one more is to come at least
        if first == "tally refused":  # the last table's count, or no TALLY (a run of an earlier version)
            if self._count_once(pk, table, short_of_last=False) == "tally refused":
                return self._count_finished_listed(run_id, table)
        done, listed = self._tally(pk)
        return done >= listed

    def _count_once(self, pk: str, table: str, short_of_last: bool) -> str:
        """One count's transaction: ``counted``, ``repeat`` (the table's mark is there), or ``tally refused``
        (no TALLY, or, ``short_of_last``, the count has reached the run's tables less one). A conflict with
        another count in progress on the TALLY is tried again (exponential backoff, with jitter)."""
        mark = {"pk": pk, "sk": f"FINISHED#{table}", "table": table, "at": _now(), EXPIRATION: self._expires()}
        condition = "attribute_exists(pk)" + (" AND finished_count < last_but_one" if short_of_last else "")
        items: list[Any] = [
            {"Put": {"TableName": self.table.name, "Item": mark, "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"pk": pk, "sk": "TALLY"},
                    "UpdateExpression": "ADD finished_count :one",
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": {":one": 1},
                }
            },
        ]
        client = self.resource.meta.client
        for attempt in range(COUNT_ATTEMPTS):
            try:
                response = client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
                meter.capacity("transact_write_items", response)
                return "counted"
            except ClientError as e:
                if e.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [str(r.get("Code")) for r in e.response.get("CancellationReasons") or []]
                if "TransactionConflict" in reasons and attempt + 1 < COUNT_ATTEMPTS:
                    # another finaliser's count holds the TALLY: wait a little (exponential, with jitter)
                    time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
                    continue
                if len(reasons) == 2 and reasons[0] == "ConditionalCheckFailed":
                    return "repeat"  # counted already: the tally is as it was
                if len(reasons) == 2 and reasons[1] == "ConditionalCheckFailed":
                    return "tally refused"
                raise
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    def _tally(self, pk: str) -> tuple[int, int]:
        tally = self.table.get_item(Key={"pk": pk, "sk": "TALLY"}, ConsistentRead=True).get("Item") or {}
        return int(str(tally.get("finished_count", 0))), int(str(tally.get("table_count", 0)))

    def _count_finished_listed(self, run_id: str, table: str) -> bool:
        """``count_finished`` for a RUN item written before the TALLY existed: its ``finished_tables`` (a
        string set, so counting twice changes nothing) against its list of tables."""
        resp = if_condition_holds(
            self.table.update_item,
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
            UpdateExpression="ADD finished_tables :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": {table}},
            ReturnValues="ALL_NEW",
        )
        if resp is None:
            return False
        run = _run_item(resp.get("Attributes", {}))
        return set(run.get("tables") or []) <= set(run.get("finished_tables") or ())

    def counted(self, run_id: str) -> tuple[int, int]:
        """(finished tables counted, tables the run lists): the TALLY, or an earlier version's RUN item."""
        done, listed = self._tally(f"RUN#{run_id}")
        if listed:
            return done, listed
        run = self.run_item(run_id)
        return len(run.get("finished_tables") or ()), table_count(run)

    def finish_run_if_complete(self, run_id: str, table: str | None = None) -> bool:
        """Mark the run succeeded or failed once every table's status is final. With ``table`` (a table
        whose status was just made final) the table is counted first, and the statuses are read only
        when the count says every table is finished: each finaliser costs one small write, not a read
        of every table of the run. Without it the statuses are read (the scheduler, the cdc reader)."""
        if table is not None and not self.count_finished(run_id, table):
            return False
        states = self.table_statuses(run_id)
        if not states or any(status not in TERMINAL for status in states.values()):
            return False
        if len(states) < self.counted(run_id)[1]:
            return False  # tables the run lists are not recorded yet (a planner continues the run)
        # declined and superseded: another run carries the table
        status = "succeeded" if all(s in ("published", "declined", SUPERSEDED) for s in states.values()) else "failed"
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
            UpdateExpression="SET #s = :s, finished_at = :t",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":t": _now()},
        )
        return True

    # ---- watermarks ------------------------------------------------------------------------
    def get_watermark_item(self, key: TableKey) -> dict[str, Any] | None:
        """The table's WATERMARK item (value, run_id, updated_at), if any."""
        item = self.table.get_item(Key=key.item("WATERMARK"), ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def get_watermark(self, key: TableKey) -> str | None:
        item = self.get_watermark_item(key)
        return None if not item else str(item["value"])

    def set_watermark(self, held: Held, value: str) -> bool:
        """Commit the table's watermark, only while ``held`` (the lease is still the run's) and only forward:
        never over one a later run committed (``order``: the runs' start on the table, which orders
        correctly whatever the watermark column's type). False when refused; nothing is written then."""
        return self._put_forward(
            held, "WATERMARK", {"value": value, "updated_at": _now()}, lambda: self.note_watermark(held, value)
        )

    def set_last_run(self, held: Held, summary: dict[str, Any]) -> bool:
        """The table's latest finished run; ``summary`` carries its status, validation and
        ``source_as_of`` (epoch seconds: the oldest chunk snapshot the target is known to reflect).
        Written, as the watermark, only while ``held`` and only forward; False when refused."""
        summary = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in summary.items()}
        fields = {"at": _now(), **summary}
        return self._put_forward(held, "LAST_RUN", fields, lambda: self.note_table_finished(held, summary))

    def _put_forward(self, held: Held, sk: str, fields: dict[str, Any], then: Callable[[], Any]) -> bool:
        current = self.still_held(held)
        if current is None:
            return False
        written = if_condition_holds(
            self.table.put_item,
            Item={**held.key.item(sk), **fields, "run_id": held.run_id, "run_started_at": held.order},
            ConditionExpression=FORWARD,
            ExpressionAttributeNames={"#order": "run_started_at", "#writer": "run_id"},
            ExpressionAttributeValues={":order": held.order, ":run": held.run_id},
        )
        if written is None:
            return False
        then()  # catalog (operator's view)
        return True

    def last_writes(self, key: TableKey) -> list[dict[str, Any]]:
        """The table's LEASE, WATERMARK and LAST_RUN items (those there are), each with ``sk``: what a
        resume compares its run with."""
        found = []
        for sk in ("LEASE", "WATERMARK", "LAST_RUN"):
            item = self.table.get_item(Key=key.item(sk), ConsistentRead=True).get("Item")
            if item:
                found.append(_plain(item))
        return found

    # ---- the operator's view: table catalog and chunk timeline -------------------------------
    # Additive and separate from the run ledger above. The health check reads the catalog (one
    # query of one partition) and the ledger item of each table's run in progress, never the whole
    # table; the run report reads one run's attempt items (which expire with the run).

    def ping(self) -> None:
        """One cheap read that proves the state table answers (the health check's DynamoDB check)."""
        self.table.get_item(Key={"pk": "HEALTH", "sk": "PING"})

    def _note(
        self, key: TableKey, fields: dict[str, Any], condition: str = "", values: dict[str, Any] | None = None
    ) -> bool:
        """Upsert the table's catalog item; False when ``condition`` does not hold. The catalog never
        expires (an ``expiration`` left by an older version is removed): a table whose runs stopped must
        stay in the health check, growing stale, rather than drop out of it."""
        names = {"#table": "table", "#exp": EXPIRATION}
        vals: dict[str, Any] = {":table": key.table, **(values or {})}
        sets = ["#table = :table"]
        if key.scope is not None:
            fields = {"scope": key.scope.to_item(), "target_table": key.target_table, **fields}
        _set_fields(fields, names, vals, sets)
        kwargs: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
        return (
            if_condition_holds(
                self.table.update_item,
                Key={"pk": CATALOG_PK, "sk": key.catalog_sk},
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE #exp",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=vals,
                **kwargs,
            )
            is not None
        )

    def note_table_started(self, key: TableKey, run_id: str, at: float | None = None) -> None:
        """A run took the table's lease: it is the table's run in progress until it finishes."""
        self._note(key, {"run_id": run_id, "started_at": int(at if at is not None else _now())})

    def note_schema_changes(self, key: TableKey, records: list[dict[str, Any]]) -> None:
        """Schema changes a run followed without stopping the table (``target.evolution``), appended to
        the table's catalog item: what, when, which run (``replicate status`` shows them)."""
        if records:
            self.table.update_item(
                Key={"pk": CATALOG_PK, "sk": key.catalog_sk},
                UpdateExpression="SET #table = :table, #c = list_append(if_not_exists(#c, :none), :new)",
                ExpressionAttributeNames={"#table": "table", "#c": "schema_changes"},
                ExpressionAttributeValues={":table": key.table, ":none": [], ":new": records},
            )

    def note_watermark(self, held: Held, value: str) -> None:
        """The committed watermark, in the catalog: forward only, as the WATERMARK item."""
        fields = {"watermark": value, "watermark_run": held.run_id, "watermark_at": _now()}
        self._note(held.key, {**fields, "watermark_run_started_at": held.order}, *_forward("watermark", held))

    def note_table_finished(self, held: Held, summary: dict[str, Any]) -> None:
        """The table's run finished (published or failed). A published (validated) run moves the
        table's freshness to the oldest source state it copied: ``summary['source_as_of']`` when the
        finaliser knows it, else the moment the table's run started (after planning, before any chunk
        read its snapshot: a lower bound). Forward only: a run that started before the run the catalog
        names as the last one changes nothing."""
        key, run_id = held.key, held.run_id
        order, values = _forward("last_run", held)
        status = summary.get("status")
        fields = {"last_run": run_id, "last_status": status, "last_at": _now(), "last_run_started_at": held.order}
        for name in ("source_rows", "target_rows", "validation", "reason"):
            if summary.get(name) is not None:
                fields[name] = summary[name]
        if status == "published" and summary.get("table_rows") is not None:
            # what the target held after this run's commit: the next run checks the target against it
            # (``pipeline/target_check.py``)
            fields.update(table_rows=int(summary["table_rows"]), table_rows_run=run_id, table_rows_at=_now())
        if status == "published" and summary.get("key_high") is not None:
            # the largest key the run's planning read: a TRUNCATE makes the next one smaller (``scheduler._shrunk``)
            fields["key_high"] = str(summary["key_high"])
        if status == "published" and summary.get("not_null") is not None:
            fields["not_null"] = [str(x) for x in summary["not_null"]]  # MySQL's NOT NULL columns, then
        if status == "published" and summary.get("verified_at") is not None:
            # the whole table was compared with the source (a full copy): the rolling audit's cycle
            # starts again from here
            fields.update(verified_at=Decimal(str(round(float(summary["verified_at"]), 3))), verified_run=run_id)
        # the rows and columns a failed validation named (``pipeline.diagnose``); emptied by the next run
        fields["differences"] = [str(d) for d in (summary.get("differences") or [])][:20]
        as_of = (
            (summary.get("source_as_of") or self.run_started_at(run_id, key.table)) if status == "published" else None
        )
        if as_of is not None:
            # the usual case, freshness moving forward: one write for the outcome and the freshness; a run
            # older than the freshness noted (it finished late) writes its outcome only
            fresh = Decimal(str(round(float(as_of), 3)))
            moved = self._note(
                key,
                {**fields, "source_as_of": fresh, "fresh_run": run_id},
                f"({order}) AND (attribute_not_exists(source_as_of) OR source_as_of < :asof)",
                {":asof": fresh, **values},
            )
            if moved:
                return
        self._note(key, fields, order, values)

    def catalog_entries(self, keys: list[TableKey]) -> dict[str, dict[str, Any]]:
        """The catalog items of ``keys`` that exist, by table name: one BatchGetItem per hundred tables
        (strongly consistent: a run reads what the previous run wrote)."""
        out: dict[str, dict[str, Any]] = {}
        name = self.table.name
        unique = list({k.catalog_sk: k for k in keys}.values())
        for i in range(0, len(unique), 100):
            wanted = [{"pk": CATALOG_PK, "sk": k.catalog_sk} for k in unique[i : i + 100]]
            request: dict[str, Any] = {name: {"Keys": wanted, "ConsistentRead": True}}
            while request:
                response = self.resource.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
                meter.capacity("batch_get_item", response)
                for item in response.get("Responses", {}).get(name, []):
                    out[str(item["table"])] = _plain(item)
                request = response.get("UnprocessedKeys") or {}
        return out

    def advance_audit(
        self,
        key: TableKey,
        run_id: str,
        cursor_from: str | None,
        cursor_to: str | None,
        cycle_started_at: float,
        rows: int,
    ) -> bool:
        """The rolling audit (``pipeline/audit.py``) verified the key range after ``cursor_from`` up to
        ``cursor_to`` (JSON text of a key; None: the end of the table, which completes a cycle: every
        range was verified since ``cycle_started_at``, which becomes ``verified_at``). Conditional on
        the cursor still being ``cursor_from``, so a duplicate or stale finaliser moves it at most
        once and never backwards; False when it had moved."""
        if cursor_from is None:
            condition = "attribute_not_exists(audit_cursor)"
            values: dict[str, Any] = {}
        else:
            condition = "audit_cursor = :from"
            values = {":from": cursor_from}
        fields: dict[str, Any] = {"audit_at": _now(), "audit_run": run_id, "audit_rows": rows}
        if cursor_from is None:
            fields["audit_cycle_at"] = Decimal(str(round(cycle_started_at, 3)))
        if cursor_to is None:  # the cycle is complete: the next slice starts from the beginning
            fields["verified_at"] = Decimal(str(round(cycle_started_at, 3)))
            fields["verified_run"] = run_id
        else:
            fields["audit_cursor"] = cursor_to
        names = {"#table": "table"}
        vals: dict[str, Any] = {":table": key.table, **values}
        sets = ["#table = :table"]
        _set_fields(fields, names, vals, sets)
        update = "SET " + ", ".join(sets)
        if cursor_to is None:
            names["#cursor"] = "audit_cursor"
            update += " REMOVE #cursor"
        return (
            if_condition_holds(
                self.table.update_item,
                Key={"pk": CATALOG_PK, "sk": key.catalog_sk},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=vals,
            )
            is not None
        )

    def note_fresh(self, key: TableKey, source_as_of: float, run_id: str) -> bool:
        """The target is known to reflect the source as of ``source_as_of`` (epoch seconds); freshness
        only moves forward (an older run finishing late does not move it back)."""
        return self._note(
            key,
            {"source_as_of": Decimal(str(round(source_as_of, 3))), "fresh_run": run_id},
            "attribute_not_exists(source_as_of) OR source_as_of < :asof",
            {":asof": Decimal(str(round(source_as_of, 3)))},
        )

    def run_started_at(self, run_id: str, table: str) -> float | None:
        """When the table's part of a run started (``started_at``, else the table's or the run's
        ``created_at``): every chunk of it read its snapshot later."""
        item = self.get_table(run_id, table)
        for key in ("started_at", "created_at"):
            if item.get(key) is not None:
                return float(item[key])
        run: dict[str, Any] = _plain(self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"}).get("Item") or {})
        return float(run["created_at"]) if run.get("created_at") is not None else None

    def catalogued_tables(self, scope: Scope) -> list[str]:
        """The names of every catalogued table of ``scope`` (one query of its part of the CATALOG partition)."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": CATALOG_PK, ":t": _catalog_prefix(scope)},
            ProjectionExpression="#t",
            ExpressionAttributeNames={"#t": "table"},
        )
        return sorted(str(i["table"]) for i in items if i.get("table"))

    def catalog(self, scope: Scope) -> list[dict[str, Any]]:
        """Every catalogued table of ``scope`` (one query of its part of the CATALOG partition), each
        with ``current``: the ledger item of its run in progress (empty when its latest run has finished).
        Tables of another scope (a target the stack no longer copies to) are not among them."""
        items = [
            _plain(i)
            for i in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
                ExpressionAttributeValues={":pk": CATALOG_PK, ":t": _catalog_prefix(scope)},
            )
        ]
        for item in items:
            run_id = item.get("run_id")
            item["current"] = self.get_table(run_id, item["table"]) if run_id and run_id != item.get("last_run") else {}
        return items

    def record_attempts(self, run_id: str, table: str, attempts: list[dict[str, Any]]) -> None:
        """Attempts of a chunk or of a table's finalise (``attempt['chunk']``, ``attempt['attempt']``),
        those of one invocation (a chunk and the finalise it ran) in one request."""
        items = []
        for attempt in attempts:
            item = {
                key: Decimal(str(round(v, 3))) if isinstance(v, float) else v
                for key, v in attempt.items()
                if v is not None
            }
            item.update(
                pk=f"RUN#{run_id}",
                sk=f"ATTEMPT#{table}#{attempt['chunk']}#{attempt['attempt']}",
                table=table,
                expiration=self._expires(),
            )
            items.append(item)
        if len(items) == 1:
            self.table.put_item(Item=items[0])
            return
        with self.table.batch_writer() as batch:  # retries what DynamoDB leaves unprocessed
            for item in items:
                batch.put_item(Item=item)

    def get_attempts(self, run_id: str) -> list[dict[str, Any]]:
        """Every recorded attempt of the run's chunks and finalise steps."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":c": "ATTEMPT#"},
        )
        return [_plain(i) for i in items]
