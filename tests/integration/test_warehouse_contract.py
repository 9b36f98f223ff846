"""The warehouse interface's contract (``target/warehouse.py``), run against each implementation through
the interface alone: Snowflake's (``target/snowflake/``, on the emulator) today; a second warehouse adds
itself to ``WAREHOUSES`` and must pass the same cases.

What the pipeline relies on: every loaded row carries its chunk and attempt, and only the attempts a
finaliser validated are ever read (counted, checksummed, published), whatever else the load table holds;
a publish guarded by the expected row count leaves the target as it was when the count is wrong."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.pipeline import staging
from aurora_replication.schema_changes import SchemaChange
from aurora_replication.source import discover as source_discover
from aurora_replication.source import read as source_read
from aurora_replication.target.names import load_table_name
from aurora_replication.target.snowflake import client as snowflake_client
from aurora_replication.target.snowflake.client import RowCountMismatch
from aurora_replication.target.warehouse import Warehouse

RUN = "20261206T170000Z-c0ffee"
# each implementation: how to open it on the test's servers
WAREHOUSES: dict[str, Callable[[Any], tuple[Warehouse, Callable[[], None]]]] = {
    "snowflake": lambda env: _snowflake(env),
}


def _snowflake(env: Any) -> tuple[Warehouse, Callable[[], None]]:
    conn = env.snowflake()
    return snowflake_client.Target(conn, "CONTRACT_STAGE", set()), conn.close


@pytest.fixture(params=sorted(WAREHOUSES))
def warehouse(request: pytest.FixtureRequest, env: Any) -> Iterator[Warehouse]:
    w, close = WAREHOUSES[request.param](env)
    try:
        yield w
    finally:
        close()


def _plan_and_rows(env: Any) -> tuple[Any, list[list[Any]]]:
    env.sql(
        "CREATE TABLE contract (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2), doc JSON)",
        "INSERT INTO contract VALUES (1, 'one', 1.50, '{\"a\": 1}'), (2, NULL, -2.00, NULL), (3, 'three', 0.00, '[]')",
    )
    plan = source_discover.discover_table(env.mysql, env.database, "contract")
    with env.mysql.cursor() as cur:
        cur.execute("SELECT `id`, `name`, `amount`, `doc` FROM contract ORDER BY id")
        rows = staging.bound_rows(plan, [tuple(None if v is None else str(v) for v in r) for r in cur.fetchall()])
    return plan, rows


def test_the_implementation_has_exactly_the_interfaces_methods() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            n: inspect.signature(f)
            for n, f in inspect.getmembers(cls, callable)
            if not n.startswith("_") and n not in {"register"}
        }

    ours = public(snowflake_client.Target)
    declared = {n: s for n, s in public(Warehouse).items() if n in Warehouse.__dict__}
    assert set(ours) == set(declared), set(ours) ^ set(declared)
    # the same parameters (a context manager's return type is spelled two ways: the decorator's and the type's)
    assert {n for n in ours if ours[n].parameters != declared[n].parameters} == set()


def test_only_validated_attempts_are_read(env, warehouse: Warehouse) -> None:
    plan, rows = _plan_and_rows(env)
    load = load_table_name(plan, RUN)
    warehouse.load_rows(plan, load, 0, "a-old", rows[:1])  # an earlier attempt of the chunk, left behind
    warehouse.load_rows(plan, load, 0, "a-new", rows)
    sums = warehouse.attempt_sums(plan, load, 0, "a-new")
    source = source_read.chunk_checksum(env.mysql, plan, None, None, None)
    assert (sums["target_rows"], sums["target_checksum"]) == source
    attempts = warehouse.record_attempts(plan, RUN, "t1", [(0, "a-new")])
    assert warehouse.checksums_of_attempts(plan, load, attempts) == {0: source}


def test_a_publish_guarded_by_a_wrong_count_leaves_the_target_as_it_was(env, warehouse: Warehouse) -> None:
    plan, rows = _plan_and_rows(env)
    load = load_table_name(plan, RUN)
    warehouse.load_rows(plan, load, 0, "a1", rows)
    warehouse.load_rows(plan, load, 0, "a2", rows)  # a duplicate attempt: never published
    attempts = warehouse.record_attempts(plan, RUN, "t1", [(0, "a1")])
    warehouse.publish(plan, load, attempts, expected_rows=3)
    assert warehouse.exists(plan.target_table) and warehouse.row_count(plan.target_table) == 3
    with pytest.raises(RowCountMismatch):
        warehouse.overwrite(plan, load, attempts, expected_rows=4)
    assert warehouse.row_count(plan.target_table) == 3
    warehouse.drop(load)
    assert not warehouse.exists(load)


def _nothing(change: SchemaChange) -> bool:
    """The target already is what the plan says: nothing to add, widen or drop, and no conflict."""
    return not (change.add or change.widen or change.gone or change.conflicts or change.conflicting)


def test_schema_evolution_through_the_interface(env, warehouse: Warehouse) -> None:
    """The warehouse compares a plan with its table and follows it: a column added in MySQL is added, one
    renamed is seen as a rename and renamed in place; the change it finds is the neutral ``SchemaChange``."""
    plan, _ = _plan_and_rows(env)
    warehouse.ensure_target_table(plan)
    columns = warehouse.columns(plan.target_table)
    assert warehouse.shape_mismatch(plan, columns) is None and not warehouse.is_history_table(columns)
    assert _nothing(warehouse.schema_diff(plan, columns))
    env.sql("ALTER TABLE contract ADD COLUMN note VARCHAR(10)")
    wider = source_discover.discover_table(env.mysql, env.database, "contract")
    change = warehouse.schema_diff(wider, columns)
    assert [c.name for c in change.add] == ["note"] and not change.conflicts and not change.gone
    warehouse.alter(warehouse.alter_statements(wider, change))
    assert _nothing(warehouse.schema_diff(wider, warehouse.columns(plan.target_table)))
    env.sql("ALTER TABLE contract RENAME COLUMN note TO remark")
    renamed = source_discover.discover_table(env.mysql, env.database, "contract")
    existing = warehouse.columns(plan.target_table)
    swapped = warehouse.renamed_column(renamed, existing, warehouse.schema_diff(renamed, existing))
    assert swapped == ("NOTE", "REMARK")
    warehouse.alter([warehouse.rename_statement(plan.target_table, *swapped)])
    assert _nothing(warehouse.schema_diff(renamed, warehouse.columns(plan.target_table)))
    assert warehouse.widens_losslessly("int(11)", "bigint(20)") and not warehouse.widens_losslessly("int", "varchar(5)")


def test_the_validated_rows_and_the_diagnosis_queries_read_what_was_loaded(env, warehouse: Warehouse) -> None:
    plan, rows = _plan_and_rows(env)
    load = load_table_name(plan, RUN)
    warehouse.load_rows(plan, load, 0, "a1", rows)
    warehouse.load_rows(plan, load, 0, "a2", rows[:1])  # another attempt: not validated
    attempts = warehouse.record_attempts(plan, RUN, "t1", [(0, "a1")])
    picked = warehouse.validated(load, attempts)
    assert warehouse.checksum(plan, load, load_table=True, where=picked, params=attempts.params, json_text=True) == (
        source_read.chunk_checksum(env.mysql, plan, None, None, None)
    )
    assert warehouse.own_rows(plan, "") == ""  # not a merged table: every row is the plan's
    d = warehouse.diagnosis()
    count = d.query(f"SELECT COUNT(*) FROM {q(load)} WHERE {d.chunk_filter()} AND {d.attempt_filter()}", [0, "a2"])
    assert count == [(1,)]
    assert warehouse.order_safe(plan)  # an INT key orders alike in both engines


def test_schemas_are_made_once(env, warehouse: Warehouse) -> None:
    warehouse.ensure_schemas(["CONTRACT_SCHEMA_A", "CONTRACT_SCHEMA_A"])
    warehouse.ensure_schemas(["CONTRACT_SCHEMA_A"])  # there already: nothing to make
    there = {str(r[0]) for r in warehouse.diagnosis().query("SELECT schema_name FROM information_schema.schemata")}
    assert "CONTRACT_SCHEMA_A" in there
