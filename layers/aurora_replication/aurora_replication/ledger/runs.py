"""A run and its tables: the RUN item, its names in pages (NAMES), the count of finished tables (TALLY,
FINISHED), and each table's TABLE item (plan, status, counters, notes)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict, Unpack

from botocore.exceptions import ClientError

from aurora_replication.cost import meter
from aurora_replication.ledger import keys
from aurora_replication.ledger.chunks import Chunks
from aurora_replication.ledger.items import StoredItem, Values, decoded, if_condition_holds, plain, set_fields
from aurora_replication.ledger.keys import COUNT_ATTEMPTS, EXPIRATION, NAMES_PAGE, Bounds, Scope, run_table_key
from aurora_replication.ledger.status import PUBLISHED, is_final, is_terminal, not_final_condition, run_outcome

# Numbers read back from DynamoDB are ints or floats (``items.plain``); written ones may be Decimals.
Number = int | float | Decimal


class TableOutcome(TypedDict, total=False):
    """What a table's finalise (or a planner that declines or fails it) records of its outcome: in the
    run's TABLE item and, with its status, in the table's LAST_RUN item (``lasting.LastRunItem``)."""

    mode: str
    reason: str
    validation: str
    compared: str
    source_rows: int
    target_rows: int
    source_checksum: Any
    target_checksum: Any
    differing_chunks: list[Any]
    differences: list[str]
    last_mismatch: str
    rows_copied: int
    table_rows: int
    finalise_seconds: Number
    snapshot_spread_seconds: Number
    current_rows: int
    merged_rows: int
    statement_seconds: dict[str, str]
    source_as_of: Number
    verified_at: Number
    key_high: str
    not_null: list[str]
    watermark: str
    publish: str
    schema_notes: list[str]
    schema_changes: list[dict[str, Any]]
    columns_dropped_in_source: list[str]
    column_version: str
    fill_column: str
    audit: str
    audit_rows: int
    audit_differences: int  # rows the audit found missing or different (the first count wins)
    position: str  # a cdc window's end (file:pos)
    changes: int
    upserts: int
    deletes: int
    truncated_at: str
    # mode reconcile (``pipeline/modes/reconcile.py``)
    reconciled_rows: int
    reconcile_action: str
    keys_missing_in_target: int


class TableFields(TableOutcome, total=False):
    """The fields of a run's TABLE item its writers give (``record_table``, ``set_table_status``,
    ``reopen_chunks``, ``CdcState.define_window``): planning's, then the outcome's. Every field a writer
    gives is declared here: ``tests/unit/test_ledger_types.py`` fails on one that is not."""

    plan: dict[str, Any]  # stored as JSON text; read back as the dict (``items.table_item``)
    chunk_count: int
    # a table declined because a stalled run of it was resumed instead (``pipeline/resume.auto_resume``)
    resumed_run: str
    resumed: bool
    window_from: Any
    window_to: Any
    plan_seconds: str
    notes: list[str]
    started_at: Number
    finished_at: Number
    drift: str
    history_pos: str
    # the rolling audit's slice (``pipeline/audit.py``)
    audit_from: int
    audit_cursor_from: str | None
    audit_cursor_to: str | None
    audit_planned_rows: int
    audit_cycle_at: str
    # column versions (``pipeline/column_fill.py``)
    column_versions: str
    column_versions_created: bool
    column_versions_whole: bool
    not_null_check: list[str]
    # a cdc run's window (``ledger/cdc.py``, ``pipeline/modes/cdc/reader.py``)
    cdc_from: dict[str, Any] | None
    cdc_to: dict[str, Any] | None
    batches: list[dict[str, Any]]
    window_read_at: Number
    window_events: int
    truncate_at: str  # a TRUNCATE in the window: the position the rows older changes wrote go before
    history_truncations: list[list[Any]]
    audit_batch: dict[str, Any]  # the rolling audit's batch of the window (``modes/cdc/reader.py``, ``stage_audit``)
    # a column version's pages of the window (``modes/cdc/reader.py``, ``stage_fill``)
    fill_batch: dict[str, Any]
    fill_plan: str
    fill_cursor: str
    fill_done: bool
    schema_columns: str  # JSON text: the schema a window's end is valid for
    window_stopped_by: str
    newest_event_at: int


class NewTable(TableFields, total=False):
    """A TABLE item's fields as ``record_table`` and ``record_tables`` take them: with its first status."""

    status: str


class TableItem(NewTable, total=False):
    """A run's TABLE item (``RUN#<run>`` / ``TABLE#<table>``), as ``get_table`` and ``get_run`` give it:
    empty when the run has no such table. Besides these, ``long_<name>`` text attributes hold a long
    statement's record (``pipeline/finalise.py``, ``swap_table_text``)."""

    pk: str
    sk: str
    table: str
    scope: dict[str, str]
    created_at: int
    updated_at: int
    progress_at: int
    expiration: int
    heal_round: int
    done_count: int
    dead_lettered: set[str]
    last_error: str
    auto_resumed_at: int


class RunItem(TypedDict, total=False):
    """The RUN item (``RUN#<run>`` / ``RUN``), as ``run_item`` gives it (empty: no such run); ``get_run``
    adds ``finished_count`` and ``table_states``."""

    pk: str
    sk: str
    mode: str
    scope: dict[str, str]
    table_count: int
    request: dict[str, Any]
    request_tables: str
    created_at: int
    status: str
    expiration: int
    planned: int
    planner_until: int
    finished_at: int
    # a RUN item of an earlier version: the list of tables, and those counted finished (a string set)
    tables: list[str]
    finished_tables: set[str]
    # read, not stored: ``get_run``
    finished_count: int
    table_states: dict[str, TableItem]


def table_item(item: Mapping[str, Any]) -> TableItem:
    """A TABLE item as stored, as the code uses it (its ``plan`` decoded)."""
    out: TableItem = decoded(item, "plan")
    return out


def run_item(item: Mapping[str, Any]) -> RunItem:
    """The RUN item as stored, as the code uses it (the list of ``tables`` of an earlier version decoded)."""
    out: RunItem = decoded(item, "tables")
    return out


def table_is_final(item: TableItem) -> bool:
    """The table's status is final in the run (published, failed, superseded): no later write changes it."""
    return is_final(item.get("status"))


def table_is_terminal(item: TableItem) -> bool:
    """The run is done with the table (a final status, or declined)."""
    return is_terminal(item.get("status"))


def still_running(item: TableItem | RunItem) -> bool:
    """The table (or the run) is still running."""
    return item.get("status") == "running"


def every_table_published(run: RunItem) -> bool:
    """The run has tables and published each of them (what the run report and the local stack call ok)."""
    states = run.get("table_states", {})
    return bool(states) and all(t.get("status") == PUBLISHED for t in states.values())


def table_count(run: RunItem) -> int:
    """How many tables a run lists, from its RUN item (``table_count``; a RUN item of an earlier version:
    the length of its list)."""
    if run.get("table_count") is not None:
        return int(run["table_count"])
    return len(run.get("tables") or [])


class Runs(Chunks):
    """A run and its tables: the RUN item, its names in pages (NAMES), the count of finished tables (TALLY,."""

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
                "created_at": keys.now(),
                "status": "running",
                EXPIRATION: expires,
            }
        )

    def run_tables(self, run_id: str, run: RunItem | None = None) -> list[str]:
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
    def run_request(run: RunItem, tables: list[str]) -> dict[str, Any]:
        """The request a run was recorded with, its list of tables put back (``create_run`` keeps it out of
        the RUN item when it is the run's list, ``tables``)."""
        request = dict(run.get("request") or {})
        if run.get("request_tables") == "names":
            request["tables"] = list(tables)
        return request

    def record_table(self, run_id: str, table: str, scope: Scope | None = None, **fields: Any) -> None:
        """A table of the run, with the run's ``scope`` (where its table-level state is: ``TableKey``).
        ``fields``: a ``NewTable``'s (not checked by mypy here: callers spread optional fields; every name
        a call site gives is checked against ``NewTable`` by ``tests/unit/test_ledger_types.py``)."""
        self.table.put_item(Item=self._table_record(run_id, table, fields, scope))
        if is_terminal(fields.get("status")):  # failed or declined before any chunk: finished already
            self.count_finished(run_id, table)

    def record_tables(
        self, run_id: str, tables: list[tuple[str, Mapping[str, Any], list[Bounds]]], scope: Scope | None = None
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
        self, run_id: str, table: str, fields: Mapping[str, Any], scope: Scope | None = None
    ) -> StoredItem:
        """The TABLE item as stored (its plan as JSON text)."""
        now = keys.now()
        item: StoredItem = {**run_table_key(run_id, table), "table": table, "created_at": now, **fields}
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

    def table_text(self, run_id: str, table: str, name: str) -> str | None:
        """One text attribute of the run's TABLE item (a consistent read of it alone)."""
        item = self.table.get_item(
            Key=run_table_key(run_id, table),
            ConsistentRead=True,
            ProjectionExpression="#n",
            ExpressionAttributeNames={"#n": name},
        ).get("Item")
        value = item.get(name) if item else None
        return None if value is None else str(value)

    def swap_table_text(self, run_id: str, table: str, name: str, new: str, old: str | None) -> bool:
        """Set the TABLE item's text attribute ``name`` to ``new`` only while it holds ``old`` (None: while it
        is absent): one writer wins (a long statement's record, ``target/long_statements.py``)."""
        values: Values = {":new": new}
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
            Key=run_table_key(run_id, table),
            UpdateExpression="SET progress_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":now": keys.now()},
        )

    def get_table(self, run_id: str, table: str) -> TableItem:
        item = self.table.get_item(Key=run_table_key(run_id, table), ConsistentRead=True)
        return table_item(item.get("Item", {}))

    def set_table_status(self, run_id: str, table: str, status: str, **fields: Unpack[TableFields]) -> bool:
        """Set the table's status; a table already published, failed or superseded keeps its status
        (returns False)."""
        names = {"#s": "status", "#t": "updated_at"}
        values: Values = {":s": status, ":t": keys.now()}
        sets = ["#s = :s", "#t = :t"]
        set_fields(fields, names, values, sets)
        condition = "attribute_exists(pk) AND " + not_final_condition(values)
        return self._update_if(run_id, table, "SET " + ", ".join(sets), condition, names, values)

    def get_run(self, run_id: str) -> RunItem:
        """The RUN item with its TABLE items (``table_states``) and its TALLY's ``finished_count``: one query.
        "RUN", "TABLE#..." and "TALLY" sort after "ATTEMPT#", "BOUNDS#", "CHUNK#", "FINISHED#" and "NAMES#":
        the chunk ranges and the list of names are not read here."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND sk >= :run",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":run": "RUN"},
        )
        run: RunItem = {}
        tables: dict[str, TableItem] = {}
        tally: StoredItem = {}
        for item in items:
            if item["sk"] == "RUN":
                run = run_item(item)
            elif item["sk"] == "TALLY":
                tally = plain(item)
            elif str(item["sk"]).startswith("TABLE#"):
                tables[str(item["table"])] = table_item(item)
        if run and tally:
            run["finished_count"] = int(tally.get("finished_count", 0))
        elif run:
            run["finished_count"] = len(run.get("finished_tables") or ())
        run["table_states"] = tables
        return run

    # ---- planning in steps (the scheduler's budget: pipeline/scheduler.py) ---------------------
    def run_item(self, run_id: str) -> RunItem:
        """The RUN item alone (its request, table count, scope, and how far planning got), not its tables."""
        item = self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"}, ConsistentRead=True).get("Item")
        return run_item(item) if item else {}

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
                ExpressionAttributeValues={":until": until, ":now": keys.now(), ":running": "running"},
            )
            is not None
        )

    def note_planned(self, run_id: str, upto: int, release: bool = False) -> None:
        """The run's first ``upto`` tables are planned and recorded (forward only); ``release``: the planner
        stops, and its claim with it."""
        sets = "SET planned = :n" + (", planner_until = :zero" if release else "")
        values: Values = {":n": upto, **({":zero": 0} if release else {})}
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
        mark = {"pk": pk, "sk": f"FINISHED#{table}", "table": table, "at": keys.now(), EXPIRATION: self._expires()}
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
        run = run_item(resp.get("Attributes", {}))
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
        if not states or any(not is_terminal(status) for status in states.values()):
            return False
        if len(states) < self.counted(run_id)[1]:
            return False  # tables the run lists are not recorded yet (a planner continues the run)
        status = run_outcome(list(states.values()))
        self.table.update_item(
            Key={"pk": f"RUN#{run_id}", "sk": "RUN"},
            UpdateExpression="SET #s = :s, finished_at = :t",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status, ":t": keys.now()},
        )
        return True
