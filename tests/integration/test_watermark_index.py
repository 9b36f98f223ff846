"""The scheduler never starts a statement it cannot finish: a watermark column is used only where
``MAX(column)`` is an index dive (an index starts with it) or the table is small enough to scan
(``FULL_SCAN_MAX_ROWS``); otherwise the plan says which column was passed over and what to add."""

from __future__ import annotations

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.source import discover
from aurora_replication.source import read as source_read


def _tables(env) -> None:
    env.sql(
        # ON UPDATE column without an index; a usual name with one
        """CREATE TABLE two (id INT PRIMARY KEY, v VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
           modified_at DATETIME(6) NOT NULL, KEY ix_modified (modified_at, id))""",
        "INSERT INTO two (id, v, updated_at, modified_at) SELECT seq, 'v', '2024-01-01', '2024-01-01' "
        "FROM seq_1_to_3000",
        """CREATE TABLE bare (id INT PRIMARY KEY, v VARCHAR(20),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
           KEY ix_later (v, updated_at))""",  # an index on it, not led by it: MAX would still scan
        "INSERT INTO bare (id, v, updated_at) SELECT seq, 'v', '2024-01-01' FROM seq_1_to_3000",
        "ANALYZE TABLE two",
        "ANALYZE TABLE bare",
    )


def test_a_watermark_needs_an_index_led_by_it_on_a_table_above_the_scan_limit(env):
    _tables(env)
    plan = discover.discover_table(env.mysql, env.database, "two", full_scan_max_rows=1000)
    assert plan.watermark == "modified_at"  # the ON UPDATE column comes first, but has no index
    assert any("'updated_at' is not used as a watermark" in n and "add an index" in n for n in plan.notes), plan.notes

    plan = discover.discover_table(env.mysql, env.database, "bare", full_scan_max_rows=1000)
    assert plan.watermark is None
    note = next(n for n in plan.notes if "updated_at" in n)
    assert "no index starts with it" in note and "FULL_SCAN_MAX_ROWS=1,000" in note, note

    # a table within the limit is scanned in seconds: its candidate is used as before
    assert discover.discover_table(env.mysql, env.database, "bare", full_scan_max_rows=10_000).watermark == "updated_at"


def test_a_watermark_named_explicitly_is_refused_above_the_limit_without_an_index(env):
    _tables(env)
    with pytest.raises(BadInputError, match=r"no index starts with watermark column 'updated_at'.*refused; add an"):
        discover.discover_table(env.mysql, env.database, "bare", watermark="updated_at", full_scan_max_rows=1000)
    explicit = discover.discover_table(env.mysql, env.database, "two", watermark="modified_at", full_scan_max_rows=1)
    assert explicit.watermark == "modified_at"  # led by its index: one dive at any size
    small = discover.discover_table(env.mysql, env.database, "bare", watermark="updated_at", full_scan_max_rows=5000)
    assert small.watermark == "updated_at"


def test_the_scheduler_reads_no_max_of_an_unindexed_column_of_a_large_table(env, monkeypatch):
    _tables(env)
    maxed: list[tuple[str, str]] = []
    original, with_key = source_read.max_watermark, source_read.max_watermark_and_key

    def recording(conn, table, column):
        maxed.append((table, column))
        return original(conn, table, column)

    def recording_with_key(conn, table, column, key):  # the MAX that also reads the largest key (a TRUNCATE)
        maxed.append((table, column))
        return with_key(conn, table, column, key)

    monkeypatch.setattr(source_read, "max_watermark", recording)
    monkeypatch.setattr(source_read, "max_watermark_and_key", recording_with_key)
    stack = env.start_stack({"FULL_SCAN_MAX_ROWS": "1000"})
    for _ in range(2):  # the second run would be incremental if bare had a watermark
        outcome = stack.run({"tables": "two,bare", "mode": "auto", "chunk_rows": 1000}, workers=2)
        assert outcome.ok, outcome.run
    states = outcome.run["table_states"]
    assert states["two"]["mode"] == "incremental" and states["bare"]["mode"] == "full"
    assert any("'updated_at' is not used as a watermark" in n for n in states["bare"]["notes"]), states["bare"]
    assert set(maxed) == {("two", "modified_at")}, maxed
