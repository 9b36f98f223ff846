"""History mode's statements (``target/history_sql.py``) run against the emulator on hand-made load tables:
the versions each builds, repeats, batches out of order, and the invariants query's counts."""

from __future__ import annotations

import datetime as dt

import pytest

from aurora_replication import typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.target.snowflake import cdc_sql, history_sql

PLAN = TablePlan(
    table="items",
    target_table="ITEMS",
    columns=[
        Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
        Column(name="name", kind=typemap.TEXT, warehouse_type="VARCHAR(40)", target="NAME"),
        Column(name="doc", kind=typemap.JSON, target="DOC"),
    ],
    key=["id"],
    mode="cdc",
    history=True,
)
LOAD = "_ASR_CDC_T_ITEMS"
T0 = 1_700_000_000


@pytest.fixture
def sf(env):
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS ANALYTICS")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS ANALYTICS.{env.schema}")
    cur.execute(f"USE SCHEMA ANALYTICS.{env.schema}")
    cur.execute(history_sql.create_history_table(PLAN))
    cur.execute(history_sql.create_current_view(PLAN))
    cur.execute(cdc_sql.create_load_table(PLAN, LOAD))
    yield cur
    conn.close()


def _stage(cur, chunk: int, changes: list[tuple[str, int, int, str | None, str | None]]) -> None:
    """(op, position, seconds after T0, name, doc) rows of one batch."""
    for op, pos, secs, name, doc in changes:
        cur.execute(
            f'INSERT INTO "{LOAD}" ("ID", "NAME", "DOC", "_ASR_OP", "_ASR_POS", "_ASR_AT", "_ASR_CHUNK", "_ASR_ATTEMPT") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 'cdc')",
            (1, name, doc, op, f"{pos:010d}", T0 + secs, chunk),
        )


def _apply(cur, chunk: int) -> None:
    cur.execute(history_sql.cdc_merge(PLAN, LOAD), (chunk, chunk))


def _versions(cur) -> list[tuple]:
    cur.execute(
        'SELECT "ID", "NAME", "_ASR_OP", "_ASR_POS", "_ASR_VALID_FROM", "_ASR_VALID_TO", "_ASR_IS_CURRENT" '
        'FROM "ITEMS" ORDER BY "ID", "_ASR_POS"'
    )
    return [tuple(r) for r in cur.fetchall()]


def _broken(cur) -> list[int]:
    cur.execute(history_sql.invariants(PLAN))
    return [int(v or 0) for v in cur.fetchone()]


def at(secs: int) -> dt.datetime:
    return dt.datetime(2023, 11, 14, 22, 13, 20) + dt.timedelta(seconds=secs)


EXPECTED = [
    (1, "a", "I", "0000000010", at(0), at(5), False),
    (1, "b", "U", "0000000020", at(5), at(9), False),
    (1, "b", "D", "0000000030", at(9), at(9), False),
    (1, "c", "I", "0000000040", at(12), None, True),
]


def test_cdc_batches_in_order_twice_and_out_of_order(sf):
    _stage(sf, 0, [("U", 10, 0, "a", '{"v": 1}'), ("U", 20, 5, "b", None)])
    _stage(sf, 1, [("D", 30, 9, "b", None), ("U", 40, 12, "c", '{"v": 2}')])
    # the later batch first, then the earlier one, then both again
    _apply(sf, 1)
    _apply(sf, 0)
    assert _versions(sf) == EXPECTED
    _apply(sf, 0)
    _apply(sf, 1)
    assert _versions(sf) == EXPECTED
    assert _broken(sf) == [0, 0, 0, 0, 0]
    sf.execute('SELECT "ID", "NAME", "DOC" FROM "ITEMS_CURRENT"')
    rows = sf.fetchall()
    assert len(rows) == 1 and rows[0][1] == "c"


def test_a_clock_that_goes_back_cannot_end_a_version_before_it_starts(sf):
    _stage(sf, 0, [("U", 10, 10, "a", None), ("U", 20, 3, "b", None)])
    _apply(sf, 0)
    assert [(v[4], v[5]) for v in _versions(sf)] == [(at(10), at(10)), (at(10), None)]
    assert _broken(sf) == [0, 0, 0, 0, 0]


def _truncate(cur, pos: int, secs: int) -> None:
    position = f"{pos:010d}"
    cur.execute(history_sql.truncate_markers(PLAN), (T0 + secs, T0 + secs, position, position, position))
    cur.execute(history_sql.rederive_truncated(PLAN), (position,))


@pytest.mark.parametrize("truncate_first", [False, True], ids=["batches-then-truncate", "truncate-between"])
def test_a_truncate_closes_every_live_key_at_its_position_as_a_delete_would(sf, truncate_first):
    """A TRUNCATE at position 30 (second 9) between versions 20 and 40 of a key gives the chain a delete at
    30 would: the version before it ends there, a marker holds its values, the next version is an insert.
    Whether the later batch is applied before the truncate or after it, and repeats, change nothing."""
    _stage(sf, 0, [("U", 10, 0, "a", '{"v": 1}'), ("U", 20, 5, "b", None)])
    _stage(sf, 1, [("U", 40, 12, "c", '{"v": 2}')])
    _apply(sf, 0)
    if truncate_first:
        _truncate(sf, 30, 9)
        _apply(sf, 1)
    else:
        _apply(sf, 1)
        _truncate(sf, 30, 9)
    assert _versions(sf) == EXPECTED
    _truncate(sf, 30, 9)
    _apply(sf, 1)
    assert _versions(sf) == EXPECTED
    assert _broken(sf) == [0, 0, 0, 0, 0]
    # a key already deleted before the truncate gets no second marker; a later truncate closes the insert
    _truncate(sf, 35, 10)
    assert _versions(sf) == EXPECTED
    _truncate(sf, 50, 20)
    assert _versions(sf)[-2:] == [
        (1, "c", "I", "0000000040", at(12), at(20), False),
        (1, "c", "D", "0000000050", at(20), at(20), False),
    ]
    assert _broken(sf) == [0, 0, 0, 0, 0]


def test_snapshot_merge_adds_versions_only_for_changed_rows(sf):
    load = "_ASR_INC_T_ITEMS"
    sf.execute(
        f'CREATE TRANSIENT TABLE "{load}" ("ID" NUMBER(10,0), "NAME" VARCHAR(40), "DOC" VARCHAR, "_ASR_CHUNK" NUMBER)'
    )
    rows = f'"{load}"."_ASR_CHUNK" = %s'
    merge = history_sql.snapshot_merge(PLAN, load, rows)

    def run(chunk: int, when: str, pos: str) -> None:
        sf.execute(merge, (when, when, pos, chunk) * 2)

    sf.execute(f"INSERT INTO \"{load}\" VALUES (1, 'a', '{{\"k\": 1}}', 0), (2, 'x', NULL, 0)")
    run(0, "2024-01-01 00:00:00", "r1")
    run(0, "2024-01-01 00:00:00", "r1")  # a repeat: nothing new
    sf.execute(f"INSERT INTO \"{load}\" VALUES (1, 'a', '{{\"k\": 1}}', 1), (2, 'y', NULL, 1)")
    run(1, "2024-01-02 00:00:00", "r2")  # key 1 unchanged, key 2 changed
    got = _versions(sf)
    assert got == [
        (1, "a", "I", "r1", dt.datetime(2024, 1, 1), None, True),
        (2, "x", "I", "r1", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), False),
        (2, "y", "U", "r2", dt.datetime(2024, 1, 2), None, True),
    ]
    # a full copy that no longer has key 2: its current version closes and a delete marker follows
    sf.execute(history_sql.close_absent(PLAN, load, rows), ("2024-01-03 00:00:00", "r3", 0) * 2)
    sf.execute(history_sql.close_absent(PLAN, load, rows), ("2024-01-03 00:00:00", "r3", 0) * 2)
    sf.execute(f"INSERT INTO \"{load}\" VALUES (1, 'a', '{{\"k\": 1}}', 3)")
    sf.execute(history_sql.close_absent(PLAN, load, rows), ("2024-01-03 00:00:00", "r3", 3) * 2)
    got = _versions(sf)
    assert got[-2:] == [
        (2, "y", "U", "r2", dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3), False),
        (2, "y", "D", "r3", dt.datetime(2024, 1, 3), dt.datetime(2024, 1, 3), False),
    ]
    assert _broken(sf) == [0, 0, 0, 0, 0]


def test_invariants_name_each_broken_rule(sf):
    sf.execute(
        'INSERT INTO "ITEMS" ("ID", "NAME", "_ASR_VALID_FROM", "_ASR_VALID_TO", "_ASR_IS_CURRENT", "_ASR_OP", "_ASR_POS") '
        "VALUES (1, 'a', '2024-01-01', NULL, TRUE, 'I', 'p1'), (1, 'b', '2024-01-02', NULL, TRUE, 'U', 'p2'), "
        "(2, 'c', '2024-01-01', NULL, TRUE, 'I', 'p1'), (2, 'c', '2024-01-01', NULL, TRUE, 'I', 'p1'), "
        "(3, 'd', '2024-01-02', '2024-01-01', FALSE, 'U', 'p1'), (4, 'e', '2024-01-02', '2024-01-02', TRUE, 'D', 'p1')"
    )
    counts = _broken(sf)
    assert counts[0] == 2  # key 2 twice at p1
    assert counts[1] == 4  # keys 1 and 2: two current each
    assert counts[2] == 2  # key 1's first version is open past the next one's start; key 2's first likewise
    assert counts[3] >= 2  # key 1's first version is current but not last; key 4's delete is current
    assert counts[4] == 1  # key 3 ends before it starts
    message = history_sql.describe_broken("items", counts)
    assert message and "versions of one key at one position" in message and "re-copy" in message
