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
  CDC#<scope> / ROTATION         the table a scope's next cdc window starts with: the first one the last window
                                 deferred for want of the scheduler's time (``ledger/cdc.py``)

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

The records live in ``ledger/``, one module per record: ``runs`` (RUN, NAMES, TALLY, FINISHED and a run's
TABLE items), ``chunks`` (CHUNK, BOUNDS, ATTEMPT), ``leases`` (LEASE), ``lasting`` (WATERMARK, LAST_RUN),
``catalog`` (the CATALOG notes), ``cdc`` (a cdc table's CDC item); ``store.StateStore`` is all of them
over one table. This module is how they are keyed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aurora_replication.identifiers import target_name

# how long DynamoDB keeps a run's items (the table's TTL attribute is ``EXPIRATION``; DynamoDB deletes an
# expired item within a few days of its time, not at once); Settings.run_retention_days overrides it
EXPIRATION = "expiration"


RUN_RETENTION_SECONDS = 30 * 24 * 3600


CATALOG_PK = "CATALOG"


# the catalog's mark that a request naming several databases has run (``note_several_databases``): the
# health check then reads the whole catalog, not only its own scope's part
SEVERAL_DATABASES = "SEVERAL_DATABASES"


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


def now() -> int:
    return int(time.time())


# characters that separate the parts of a state key: inside a name they are written %XX, so that no two
# (database, schema, table) triples give the same key whatever characters the names hold
_KEY_SPECIAL = re.compile(r"[%#>.\x00-\x1f\x7f]")


_PLAIN_SNOWFLAKE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def key_part(name: str) -> str:
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
    # a run of several source databases into one schema (``database_mapping: prefix``): the text put
    # before each table's name to make its target table's (``<database>__``); empty otherwise
    table_prefix: str = ""
    # the ``database_mapping`` of a request naming several databases (``schema``, ``prefix``) that this scope
    # is one database of; empty: the stack's own scope. Not part of the key: the health check lists the
    # tables of such scopes beside its own (``StateStore.catalog``)
    mapping: str = ""

    @classmethod
    def of(cls, source_database: str, target_database: str, target_schema: str, identifier_case: str) -> Scope:
        return cls(source_database, _snowflake_name(target_database), _snowflake_name(target_schema), identifier_case)

    @property
    def text(self) -> str:
        """``<source db>><TARGET DB>.<TARGET SCHEMA>``: the part of every key of this scope."""
        return f"{key_part(self.source_database)}>{key_part(self.target_database)}.{key_part(self.target_schema)}"

    def key(self, table: str) -> TableKey:
        return TableKey(table, self)

    def target_table(self, table: str) -> str:
        """The Snowflake name of ``table``'s target in this scope (the prefix, then the naming rule)."""
        return target_name(self.table_prefix + table, self.identifier_case)

    def describe(self) -> str:
        prefix = f" (table names prefixed {self.table_prefix!r})" if self.table_prefix else ""
        return f"source database {self.source_database!r} into {self.target_database}.{self.target_schema}{prefix}"

    def to_item(self) -> dict[str, str]:
        item = {
            "source_database": self.source_database,
            "target_database": self.target_database,
            "target_schema": self.target_schema,
            "identifier_case": self.identifier_case,
        }
        if self.table_prefix:
            item["table_prefix"] = self.table_prefix
        if self.mapping:
            item["mapping"] = self.mapping
        return item

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
            str(item.get("table_prefix") or ""),
            str(item.get("mapping") or ""),
        )


@dataclass(frozen=True)
class TableKey:
    """The one place a table's state key is made: ``pk`` of its LEASE, WATERMARK, LAST_RUN and CDC items,
    ``sk`` of its catalog item. ``scope`` None: the unscoped key items had before state was scoped."""

    table: str
    scope: Scope | None

    @property
    def target_table(self) -> str | None:
        return None if self.scope is None else self.scope.target_table(self.table)

    @property
    def pk(self) -> str:
        if self.scope is None:
            return f"TABLE#{self.table}"
        return f"TABLE#{self.scope.text}#{key_part(self.table)}>{key_part(str(self.target_table))}"

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
    def of_run_table(cls, item: Mapping[str, Any], table: str | None = None) -> TableKey:
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


def run_order(item: Mapping[str, Any]) -> Decimal:
    """A run's order on a table, from its TABLE item: when it started on the table (``started_at``, taken
    after the lease: a run that takes the lease after another has a later one), else when it was recorded."""
    value = item.get("started_at") or item.get("created_at") or 0
    return Decimal(str(round(float(value), 3)))


def run_table_key(run_id: str, table: str) -> dict[str, str]:
    """The key of a run's TABLE item (``RUN#<run>`` / ``TABLE#<table>``)."""
    return {"pk": f"RUN#{run_id}", "sk": f"TABLE#{table}"}
