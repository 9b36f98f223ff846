"""The operator's view: one CATALOG item per replicated table (its latest run, last finished run,
freshness, watermark, schema changes), what the health check and ``replicate status`` read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

from aurora_replication.cost import meter
from aurora_replication.ledger import keys
from aurora_replication.ledger.base import Ledger
from aurora_replication.ledger.items import (
    Values,
    catalog_prefix,
    forward_condition,
    if_condition_holds,
    plain,
    set_fields,
)
from aurora_replication.ledger.keys import (
    CATALOG_PK,
    EXPIRATION,
    SEVERAL_DATABASES,
    Held,
    Scope,
    TableKey,
    run_table_key,
)
from aurora_replication.ledger.runs import Number, RunItem, TableItem


class SchemaChange(TypedDict, total=False):
    """A schema change a run followed (``target.evolution``'s record), in the catalog's ``schema_changes``."""

    change: str
    column: str
    run: str
    at: Number
    detail: str


class CatalogNote(TypedDict, total=False):
    """A table's CATALOG item (``CATALOG`` / ``TABLE#<key>``): the operator's view of the table (the health
    check, ``replicate status``). Every field is optional: notes are upserted one by one."""

    pk: str
    sk: str
    table: str
    scope: dict[str, str]
    target_table: str | None
    expiration: int  # left by an older version; the next note removes it
    # the run in progress (``note_table_started``)
    run_id: str
    started_at: int
    # the committed watermark (``note_watermark``)
    watermark: str
    watermark_run: str
    watermark_at: int
    watermark_run_started_at: Number
    # the last finished run (``note_table_finished``)
    last_run: str
    last_status: str
    last_at: int
    last_run_started_at: Number
    source_rows: int
    target_rows: int
    validation: str
    reason: str
    table_rows: int
    table_rows_run: str
    table_rows_at: int
    key_high: str
    not_null: list[str]
    differences: list[str]
    verified_at: Number
    verified_run: str
    # freshness (``note_fresh``, ``note_table_finished``)
    source_as_of: Number
    fresh_run: str
    # the rolling audit (``advance_audit``)
    audit_at: int
    audit_run: str
    audit_rows: int
    audit_cycle_at: Number
    audit_cursor: str
    schema_changes: list[SchemaChange]
    column_versions: str  # JSON text (``set_column_versions``)
    # read, not stored (``StateStore.catalog``): the table's run in progress, and the source database of a
    # scope of a request naming several databases
    current: TableItem
    source_database: str


class CatalogNotes(Ledger):
    """The operator's view: one CATALOG item per replicated table (its latest run, last finished run,."""

    def note_several_databases(self) -> None:
        """A request naming several databases is being run: the health check lists their tables too."""
        self.table.put_item(Item={"pk": CATALOG_PK, "sk": SEVERAL_DATABASES, "at": keys.now()})

    def _note(self, key: TableKey, fields: dict[str, Any], condition: str = "", values: Values | None = None) -> bool:
        """Upsert the table's catalog item; False when ``condition`` does not hold. The catalog never
        expires (an ``expiration`` left by an older version is removed): a table whose runs stopped must
        stay in the health check, growing stale, rather than drop out of it."""
        names = {"#table": "table", "#exp": EXPIRATION}
        vals: Values = {":table": key.table, **(values or {})}
        sets = ["#table = :table"]
        if key.scope is not None:
            fields = {"scope": key.scope.to_item(), "target_table": key.target_table, **fields}
        set_fields(fields, names, vals, sets)
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
        self._note(key, {"run_id": run_id, "started_at": int(at if at is not None else keys.now())})

    def note_schema_changes[R: Mapping[str, Any]](self, key: TableKey, records: list[R]) -> list[R]:
        """Schema changes a run followed without stopping the table (``target.evolution``), appended to
        the table's catalog item: what, when, which run (``replicate status`` shows them). A record the
        item already holds (the same change of the same column by the same run: a planning step retried)
        is not added again; returns the records added."""
        item = self.table.get_item(
            Key={"pk": CATALOG_PK, "sk": key.catalog_sk}, ConsistentRead=True, ProjectionExpression="schema_changes"
        ).get("Item", {})

        def same(r: Mapping[str, Any]) -> tuple[str, str, str]:
            return str(r.get("change")), str(r.get("column")), str(r.get("run"))

        held = {same(r) for r in item.get("schema_changes") or []}
        new = [r for r in records if same(r) not in held]
        if new:
            self.table.update_item(
                Key={"pk": CATALOG_PK, "sk": key.catalog_sk},
                UpdateExpression="SET #table = :table, #c = list_append(if_not_exists(#c, :none), :new)",
                ExpressionAttributeNames={"#table": "table", "#c": "schema_changes"},
                ExpressionAttributeValues={":table": key.table, ":none": [], ":new": new},
            )
        return new

    def set_column_versions(self, key: TableKey, versions: dict[str, Any]) -> None:
        """The table's column versions (``pipeline/column_fill.py``): per MySQL column, its target column
        now, the kept ones, and how far its fill got. Written by the run holding the table's lease."""
        self._note(key, {"column_versions": json.dumps(versions, sort_keys=True)})

    def note_watermark(self, held: Held, value: str) -> None:
        """The committed watermark, in the catalog: forward only, as the WATERMARK item."""
        fields = {"watermark": value, "watermark_run": held.run_id, "watermark_at": keys.now()}
        self._note(held.key, {**fields, "watermark_run_started_at": held.order}, *forward_condition("watermark", held))

    def note_table_finished(self, held: Held, summary: Mapping[str, Any]) -> None:
        """The table's run finished (published or failed). A published (validated) run moves the
        table's freshness to the oldest source state it copied: ``summary['source_as_of']`` when the
        finaliser knows it, else the moment the table's run started (after planning, before any chunk
        read its snapshot: a lower bound). Forward only: a run that started before the run the catalog
        names as the last one changes nothing."""
        key, run_id = held.key, held.run_id
        order, values = forward_condition("last_run", held)
        status = summary.get("status")
        fields = {"last_run": run_id, "last_status": status, "last_at": keys.now(), "last_run_started_at": held.order}
        for name in ("source_rows", "target_rows", "validation", "reason"):
            if summary.get(name) is not None:
                fields[name] = summary[name]
        if status == "published" and summary.get("table_rows") is not None:
            # what the target held after this run's commit: the next run checks the target against it
            # (``pipeline/target_check.py``)
            fields.update(table_rows=int(summary["table_rows"]), table_rows_run=run_id, table_rows_at=keys.now())
        if status == "published" and summary.get("key_high") is not None:
            # the largest key the run's planning read: a TRUNCATE makes the next one smaller (``planning._shrunk``)
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

    def catalog_entries(self, keys: list[TableKey]) -> dict[str, CatalogNote]:
        """The catalog items of ``keys`` that exist, by table name: one BatchGetItem per hundred tables
        (strongly consistent: a run reads what the previous run wrote)."""
        out: dict[str, CatalogNote] = {}
        name = self.table.name
        unique = list({k.catalog_sk: k for k in keys}.values())
        for i in range(0, len(unique), 100):
            wanted = [{"pk": CATALOG_PK, "sk": k.catalog_sk} for k in unique[i : i + 100]]
            request: dict[str, Any] = {name: {"Keys": wanted, "ConsistentRead": True}}
            while request:
                response = self.resource.batch_get_item(RequestItems=request, ReturnConsumedCapacity="TOTAL")
                meter.capacity("batch_get_item", response)
                for item in response.get("Responses", {}).get(name, []):
                    out[str(item["table"])] = plain(item)
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
            values: Values = {}
        else:
            condition = "audit_cursor = :from"
            values = {":from": cursor_from}
        fields: dict[str, Any] = {"audit_at": keys.now(), "audit_run": run_id, "audit_rows": rows}
        if cursor_from is None:
            fields["audit_cycle_at"] = Decimal(str(round(cycle_started_at, 3)))
        if cursor_to is None:  # the cycle is complete: the next slice starts from the beginning
            fields["verified_at"] = Decimal(str(round(cycle_started_at, 3)))
            fields["verified_run"] = run_id
        else:
            fields["audit_cursor"] = cursor_to
        names = {"#table": "table"}
        vals: Values = {":table": key.table, **values}
        sets = ["#table = :table"]
        set_fields(fields, names, vals, sets)
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

    def catalogued_tables(self, scope: Scope) -> list[str]:
        """The names of every catalogued table of ``scope`` (one query of its part of the CATALOG partition)."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": CATALOG_PK, ":t": catalog_prefix(scope)},
            ProjectionExpression="#t",
            ExpressionAttributeNames={"#t": "table"},
        )
        return sorted(str(i["table"]) for i in items if i.get("table"))

    def target_owners(self, always: bool = False) -> dict[tuple[str, str, str], set[str]]:
        """Each Snowflake table (database, schema, table) the catalog names, with the source databases copied
        into it; empty (and nothing read) until a request of several databases has run, unless ``always``:
        before one, each of the stack's scopes has a source database of its own and no two name one table."""
        return {where: set(dbs) for where, dbs in self.target_owner_mappings(always).items()}

    def target_owner_mappings(self, always: bool = False) -> dict[tuple[str, str, str], dict[str, str]]:
        """``target_owners`` with each source database's ``database_mapping`` ("" for the stack's own
        scope): what tells the databases merged into one shared table (``merge``) from a table copied whole."""
        if not always and self.table.get_item(Key={"pk": CATALOG_PK, "sk": SEVERAL_DATABASES}).get("Item") is None:
            return {}
        owners: dict[tuple[str, str, str], dict[str, str]] = {}
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": CATALOG_PK, ":t": "TABLE#"},
            ProjectionExpression="#s, target_table",
            ExpressionAttributeNames={"#s": "scope"},
        )
        for item in map(plain, items):
            scope = Scope.from_item(item.get("scope"))
            if scope is not None and item.get("target_table"):
                where = (scope.target_database, scope.target_schema, str(item["target_table"]))
                mappings = owners.setdefault(where, {})
                # a database copied both ways into one table: the whole copy (not merge) is the one that counts
                if mappings.get(scope.source_database, "merge") == "merge":
                    mappings[scope.source_database] = scope.mapping
        return owners

    def run_started_at(self, run_id: str, table: str) -> float | None:
        """When the table's part of a run started (``started_at``, else the table's or the run's
        ``created_at``): every chunk of it read its snapshot later."""
        where = run_table_key(run_id, table)  # the run's TABLE item (``runs``)
        item: TableItem = plain(self.table.get_item(Key=where, ConsistentRead=True).get("Item") or {})
        for key in ("started_at", "created_at"):
            if item.get(key) is not None:
                return float(item[key])
        run: RunItem = plain(self.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"}).get("Item") or {})
        return float(run["created_at"]) if run.get("created_at") is not None else None
