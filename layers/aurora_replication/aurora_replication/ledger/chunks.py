"""A run's chunks: each chunk's entry (CHUNK: the attempt that stands for it, both sides' counts and
checksums), the key ranges in pages (BOUNDS), and each attempt's timeline for the run report (ATTEMPT)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypedDict

from aurora_replication.ledger import keys
from aurora_replication.ledger.base import Ledger
from aurora_replication.ledger.items import StoredItem, Values, if_condition_holds, plain, set_fields
from aurora_replication.ledger.keys import (
    BOUNDS_PAGE,
    BOUNDS_PAGE_BYTES,
    CHUNK_FIELDS,
    EXPIRATION,
    Bounds,
    run_table_key,
)
from aurora_replication.ledger.status import not_final_condition


class ChunkInfo(TypedDict, total=False):
    """What a worker records of a chunk it copied (``keys.CHUNK_FIELDS``; ``mark_chunk_done`` keeps
    these only)."""

    attempt: int
    rows: int
    bytes: int
    seconds: float
    source_rows: int
    source_checksum: Any
    snapshot_at: float
    source_position: Any
    target_rows: int
    target_checksum: Any
    target_checksum_no_json: Any


class ChunkItem(ChunkInfo, total=False):
    """A CHUNK item (``RUN#<run>`` / ``CHUNK#<table>#<id>``), as ``get_chunks`` gives it."""

    pk: str
    sk: str
    table: str
    chunk: int
    round: int  # the heal round the chunk was copied in
    need_round: int  # the heal round a heal asked it to be copied in
    done_at: int
    expiration: int


def chunk_is_done(chunk: ChunkItem | None, heal_round: int) -> bool:
    """The chunk has a completed copy in the round it is due: copied, and not asked again by a heal of a
    round up to ``heal_round`` (the table's). A ``need_round`` above the table's round belongs to a heal
    whose finaliser died before moving the round on: it does not count until a finaliser of the round
    reopens the chunk again."""
    if chunk is None:
        return False
    return int(chunk.get("round", -1)) >= min(int(chunk.get("need_round", 0)), heal_round)


class AttemptItem(TypedDict, total=False):
    """An ATTEMPT item (``RUN#<run>`` / ``ATTEMPT#<table>#<chunk>#<attempt>``): one attempt of a chunk or of
    a table's finalise, for the run report (``pipeline/timeline.py`` writes it, ``ops/report.py`` reads it)."""

    pk: str
    sk: str
    table: str
    expiration: int
    chunk: int | str  # a chunk id, or "final" (the table's finalise)
    attempt: str
    kind: str
    round: int
    worker: str
    start: float
    seconds: float
    steps: str  # JSON text: each step's offset and duration
    status: str
    error: str
    rows: int | None  # None: not written (``record_attempts`` leaves out what is None)


class Chunks(Ledger):
    """A run's chunks: each chunk's entry (CHUNK: the attempt that stands for it, both sides' counts and."""

    def _chunk_key(self, run_id: str, table: str, chunk_id: int) -> dict[str, str]:
        return {"pk": f"RUN#{run_id}", "sk": f"CHUNK#{table}#{chunk_id:06d}"}

    def mark_chunk_done(
        self, run_id: str, table: str, chunk_id: int, round: int, info: Mapping[str, Any]
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
        values: Values = {":r": round, ":now": keys.now(), ":exp": self._expires()}
        sets = ["#rd = :r", "done_at = :now", "#exp = :exp"]
        set_fields({k: v for k, v in info.items() if k in CHUNK_FIELDS and v is not None}, names, values, sets)
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
            Key=run_table_key(run_id, table),
            UpdateExpression="ADD done_count :one, rows_copied :delta DELETE dead_lettered :c SET progress_at = :now",
            ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(heal_round) OR heal_round = :r)",
            ExpressionAttributeValues={
                ":one": 1,
                ":delta": delta,
                ":c": {str(chunk_id)},
                ":now": keys.now(),
                ":r": round,
            },
            ReturnValues="UPDATED_NEW",
        )
        if counted is None:
            return recorded, -1
        return recorded, int(str(counted["Attributes"]["done_count"]))

    def get_chunks(self, run_id: str, table: str, count: int | None = None) -> dict[int, ChunkItem]:
        """Every CHUNK item of the table in the run, by chunk id (one paged query; a table of ``count``
        1, one consistent read of its item)."""
        if count == 1:
            item = self.table.get_item(Key=self._chunk_key(run_id, table, 0), ConsistentRead=True).get("Item")
            return {0: plain(item)} if item else {}
        prefix = f"CHUNK#{table}#"
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":prefix": prefix},
        )
        out: dict[int, ChunkItem] = {}
        for item in items:
            rest = str(item["sk"])[len(prefix) :]
            if rest.isdigit():  # not a table whose name continues with '#...'
                out[int(rest)] = plain(item)
        return out

    @staticmethod
    def outstanding(chunks: dict[int, ChunkItem], count: int, heal_round: int) -> list[int]:
        """Chunk ids without a completed copy in the round they are due (``chunk_is_done``)."""
        return [i for i in range(count) if not chunk_is_done(chunks.get(i), heal_round)]

    def mark_dead_lettered(self, run_id: str, table: str, chunk_id: int, error: str) -> None:
        """The chunk failed its last receive and is going to the DLQ: the table is reported failed
        (``dead_lettered``) until a redrive copies the chunk (``mark_chunk_done`` clears it)."""
        self.table.update_item(
            Key=run_table_key(run_id, table),
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

    def _bounds_pages(self, run_id: str, table: str, bounds: list[Bounds]) -> list[StoredItem]:
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

    def reopen_chunks(
        self,
        run_id: str,
        table: str,
        chunk_ids: list[int],
        expected_round: int,
        chunk_count: int,
        **fields: Any,
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
        values: Values = {
            ":expected": expected_round,
            ":next": nxt,
            ":done": chunk_count - len(set(chunk_ids)),
            ":now": keys.now(),
        }
        sets = ["heal_round = :next", "done_count = :done", "progress_at = :now"]
        set_fields(fields, names, values, sets)
        return self._update_if(
            run_id,
            table,
            "SET " + ", ".join(sets),
            f"attribute_exists(pk) AND {not_final_condition(values)} AND "
            "(attribute_not_exists(heal_round) OR heal_round = :expected)",
            names,
            values,
        )

    def record_attempts(self, run_id: str, table: str, attempts: list[AttemptItem]) -> None:
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

    def get_attempts(self, run_id: str) -> list[AttemptItem]:
        """Every recorded attempt of the run's chunks and finalise steps."""
        items = self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":c": "ATTEMPT#"},
        )
        return [plain(i) for i in items]
