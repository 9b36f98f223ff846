"""What the work costs, counted where it happens: one ``Meter`` per unit of work (a worker's SQS
record, a scheduler invocation), held in a context variable so that the code doing the work (the
state store's DynamoDB calls, the Snowflake statements, the SQS sends) adds to it without being
passed anything. Figures are kept per table; a figure counted when no table is in scope goes to
the meter's unattributed bucket (``""``), which the flush spreads over the unit's tables.

Nothing here talks to AWS or Snowflake: ``cost/settle.py`` starts meters in the handlers and
writes their figures to the ledger (``cost/ledger.py``); ``cost/estimate.py`` turns figures into money.
The counters (all additive; docs/cost.md says how each is measured):

  lambda_gb_seconds_<function>, lambda_requests_<function>   duration x configured memory; invocations
  sqs_messages_sent, sqs_messages_received, sqs_requests     SendMessageBatch, ChangeMessageVisibility,
                                                             and the event source mapping's receive and delete
  dynamodb_read_units, dynamodb_write_units                  ReturnConsumedCapacity of the state calls
  snowflake_statements, snowflake_seconds                    our statements and their elapsed time
  snowflake_bytes_staged                                     bytes PUT to the stage
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

APP_TAG = "aurora-snowflake-replication"
TAG_LIMIT = 2000  # Snowflake's maximum QUERY_TAG length
READS = frozenset({"get_item", "query", "scan", "batch_get_item"})
WRITES = frozenset({"put_item", "update_item", "delete_item"})
UNATTRIBUTED = ""


def query_tag(run_id: str, table: str, step: str) -> str:
    """The QUERY_TAG of a statement: JSON naming the application, the run, the table and the step,
    so ``QUERY_HISTORY`` and ``QUERY_ATTRIBUTION_HISTORY`` can be grouped by any of them
    (``TRY_PARSE_JSON(query_tag):run``). A long table name is shortened to keep the tag within
    Snowflake's 2,000 characters; the run and the step always fit."""
    body = {"app": APP_TAG, "run": run_id[:200], "table": table, "step": step[:100]}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text) > TAG_LIMIT:
        body["table"] = table[: max(0, len(table) - (len(text) - TAG_LIMIT))]
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return text


@dataclass
class Meter:
    """The figures of one unit of work, by table; ``table`` and ``step`` are what is in scope now."""

    function: str
    run_id: str | None = None
    table: str | None = None
    step: str = ""
    started: float = field(default_factory=time.perf_counter)
    by_table: dict[str, dict[str, float]] = field(default_factory=dict)
    # every Snowflake statement with the query tag in force for it, when a test asks (record_statements)
    statements: list[tuple[str, str]] | None = field(default_factory=lambda: _recorder)

    def add(self, name: str, value: float, table: str | None = None) -> None:
        if not value:
            return
        key = table if table is not None else (self.table or UNATTRIBUTED)
        bucket = self.by_table.setdefault(key, {})
        bucket[name] = bucket.get(name, 0.0) + value

    def tag(self) -> str | None:
        if self.run_id is None:
            return None
        return query_tag(self.run_id, self.table or "*", self.step or self.function)

    def tables(self) -> list[str]:
        return sorted(t for t in self.by_table if t != UNATTRIBUTED)


_current: ContextVar[Meter | None] = ContextVar("cost_meter", default=None)
_recorder: list[tuple[str, str]] | None = None


def record_statements(sink: list[tuple[str, str]] | None) -> None:
    """Tests: every meter made from now on appends (query tag, statement) of each Snowflake
    statement to ``sink`` (None: stop)."""
    global _recorder
    _recorder = sink


def current() -> Meter | None:
    return _current.get()


@contextmanager
def metered(function: str, run_id: str | None = None, table: str | None = None, step: str = "") -> Iterator[Meter]:
    """A new meter for the block (the unit of work): everything metered inside adds to it."""
    m = Meter(function, run_id, table, step)
    token = _current.set(m)
    try:
        yield m
    finally:
        _current.reset(token)


@contextmanager
def scope(run_id: str | None = None, table: str | None = None, step: str | None = None) -> Iterator[None]:
    """Within the block, figures (and query tags) name this run, table or step; a no-op without a meter."""
    m = _current.get()
    if m is None:
        yield
        return
    saved = (m.run_id, m.table, m.step)
    m.run_id = run_id if run_id is not None else m.run_id
    m.table = table if table is not None else m.table
    m.step = step if step is not None else m.step
    try:
        yield
    finally:
        m.run_id, m.table, m.step = saved


def set_run(run_id: str) -> None:
    """The unit's run, once it is known (the scheduler learns it while it works)."""
    m = _current.get()
    if m is not None:
        m.run_id = run_id


def set_unit(run_id: str, table: str | None, step: str) -> None:
    """The unit of work the current meter measures (a worker learns it when its message parses)."""
    m = _current.get()
    if m is not None:
        m.run_id, m.table, m.step = run_id, table, step


def focus(table: str | None, step: str | None = None) -> None:
    """From here on, figures and query tags name ``table`` (None: no table) and ``step``."""
    m = _current.get()
    if m is not None:
        m.table = table
        if step is not None:
            m.step = step


def add(name: str, value: float, table: str | None = None) -> None:
    m = _current.get()
    if m is not None:
        m.add(name, value, table)


def current_tag() -> str | None:
    """The QUERY_TAG the next Snowflake statement should carry (None outside a run's work)."""
    m = _current.get()
    return m.tag() if m is not None else None


def statement(text: str, seconds: float, tag: str | None) -> None:
    """One of our Snowflake statements ran for ``seconds`` (elapsed, as the client saw it)."""
    m = _current.get()
    if m is None:
        return
    m.add("snowflake_statements", 1)
    m.add("snowflake_seconds", seconds)
    if m.statements is not None:
        m.statements.append((tag or "", text))


def capacity(operation: str, response: Any) -> None:
    """The consumed capacity DynamoDB returned for a state call (``ReturnConsumedCapacity``)."""
    m = _current.get()
    if m is None or not isinstance(response, dict):
        return
    consumed = response.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
    units = sum(float(e.get("CapacityUnits", 0)) for e in entries if isinstance(e, dict))
    m.add("dynamodb_read_units" if operation in READS else "dynamodb_write_units", units)


# a conditional write whose condition fails still consumes write capacity, but DynamoDB's error
# response carries no ConsumedCapacity: it is counted as one unit (our items are far below 1 KB)
FAILED_WRITE_UNITS = 1.0


class MeteredTable:
    """A boto3 DynamoDB ``Table`` whose item calls ask for and count their consumed capacity. Every
    other attribute is the table's own (``batch_writer``, ``meta``, ...)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._table, name)
        if name not in READS and name not in WRITES:
            return attr
        return self._metered(name, attr)

    @staticmethod
    def _metered(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def metered_call(**kwargs: Any) -> Any:
            if _current.get() is None:
                return call(**kwargs)
            kwargs.setdefault("ReturnConsumedCapacity", "TOTAL")
            try:
                response = call(**kwargs)
            except Exception as e:
                code = getattr(e, "response", {}).get("Error", {}).get("Code")
                if code == "ConditionalCheckFailedException":
                    add("dynamodb_write_units", FAILED_WRITE_UNITS)
                raise
            capacity(name, response)
            return response

        return metered_call
