"""A binlog window decoded by several processes (``source/binlog_parallel.py``) on a real MariaDB: the same
window one reader reads, whatever the cuts; a budget that ends it early still ends at a commit; a cdc run
with decoding processes lands equal to MySQL."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import binlog, binlog_parallel
from compare import assert_same

SERVER_ID = 4236301
NO_AUDIT = {"AUDIT_PERIOD_SECONDS": "86400", "AUDIT_MIN_ROWS": "100000000"}


def _settings(env) -> MySQLSettings:
    return MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)


def _position(env) -> binlog.Position:
    with env.mysql.cursor() as cur:
        cur.execute("SELECT 1")
    return binlog.current_position(env.mysql)


def _specs(env, start: binlog.Position) -> dict[str, binlog.TableSpec]:
    return {
        table: binlog.TableSpec(
            start=start, columns=list(binlog.column_facts(env.mysql, env.database, table).values()), key=[key]
        )
        for table, key in (("orders", "id"), ("notes", "k"))
    }


def _burst(env) -> None:
    """Transactions of both tables: inserts, updates, a key change, deletes, a TRUNCATE of one table in the
    middle (its own commit), more rows after it, and a transaction of several statements."""
    env.sql(
        "INSERT INTO orders SELECT seq, CONCAT('o', seq), seq * 1.25, '2024-01-01' + INTERVAL seq SECOND "
        "FROM seq_1_to_3000",
        "INSERT INTO notes SELECT seq, REPEAT('n', seq % 50) FROM seq_1_to_500",
        "UPDATE orders SET total = total + 1 WHERE id % 3 = 0 AND id <= 3000",
        "UPDATE orders SET id = id + 100000 WHERE id BETWEEN 10 AND 20",
        "DELETE FROM orders WHERE id % 7 = 0 AND id <= 3000",
        "TRUNCATE TABLE notes",
        "INSERT INTO notes SELECT seq, CONCAT('after ', seq) FROM seq_1_to_300",
        "UPDATE orders SET name = NULL WHERE id % 5 = 0 AND id <= 3000",
    )
    with env.mysql.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE notes SET body = 'in one transaction' WHERE k <= 100")
        cur.execute("DELETE FROM orders WHERE id BETWEEN 2901 AND 3000")
        cur.execute("COMMIT")


def _tables(env) -> None:
    env.sql(
        "CREATE TABLE orders (id INT PRIMARY KEY, name VARCHAR(40), total DECIMAL(12,2), placed DATETIME(3))",
        "CREATE TABLE notes (k INT PRIMARY KEY, body TEXT)",
    )


def _same(a: binlog.Window, b: binlog.Window) -> None:
    assert (a.end, a.reached_end, a.stopped_by) == (b.end, b.reached_end, b.stopped_by)
    assert a.truncated == b.truncated and a.broken == b.broken and a.unreadable == b.unreadable
    assert a.newest_event_at == b.newest_event_at
    for table in a.changes:
        assert a.changes[table] == b.changes[table], table


def test_a_window_read_in_segments_is_the_window_one_reader_reads(env):
    _tables(env)
    start = _position(env)
    _burst(env)
    stop = _position(env)
    settings, specs = _settings(env), _specs(env, start)
    one = binlog.read_window(settings, specs, stop, SERVER_ID, 60, 1 << 40)
    assert one.reached_end and one.truncated.keys() == {"notes"}
    commits = binlog_parallel.commits(settings, specs, stop, SERVER_ID, 1 << 40)
    assert len(commits) == 8 and commits[-1][0].key() == stop.key()  # 8 commits; the TRUNCATE is a statement of its own
    for processes in (2, 3, 6):
        assert len(binlog_parallel.cuts(commits, processes, 1)) == processes - 1  # the window is cut indeed
        several = binlog_parallel.read_window(settings, specs, stop, SERVER_ID, 60, 1 << 40, processes, min_bytes=1)
        _same(several, one)
    # a table whose stored position is past the window's start (it joined later) keeps its own start
    late = dict(specs)
    late["notes"] = binlog.TableSpec(start=commits[3][0], columns=specs["notes"].columns, key=["k"])
    _same(
        binlog_parallel.read_window(settings, late, stop, SERVER_ID, 60, 1 << 40, 3, min_bytes=1),
        binlog.read_window(settings, late, stop, SERVER_ID, 60, 1 << 40),
    )


def test_a_watched_tables_deletes_key_changes_and_updates_are_noted_alike_by_one_reader_and_by_segments(env):
    """A parent of a cascading foreign key (``TableSpec.watch_from``: ``pipeline/modes/cdc/cascades.py``): the
    last delete, key change and update, from the watch's start on, before the table's own start too (not
    decoded there: an update counts as a key change)."""
    _tables(env)
    start = _position(env)
    _burst(env)
    stop = _position(env)
    settings, specs = _settings(env), _specs(env, start)
    commits = binlog_parallel.commits(settings, specs, stop, SERVER_ID, 1 << 40)
    watched = {label: dataclasses.replace(spec, watch_from=start) for label, spec in specs.items()}
    one = binlog.read_window(settings, watched, stop, SERVER_ID, 60, 1 << 40)
    # the closing transaction updates notes, then deletes orders; before it, orders' updates, its key change
    assert one.updated["orders"] < one.updated["notes"] < one.deleted["orders"] < commits[-1][0].key()
    assert one.rekeyed["orders"] < one.deleted["orders"] and "notes" not in one.deleted  # a TRUNCATE: no rows
    assert "notes" not in one.rekeyed  # its updates keep their keys
    unwatched = binlog.read_window(settings, specs, stop, SERVER_ID, 60, 1 << 40)
    assert not unwatched.deleted and not unwatched.rekeyed and not unwatched.updated
    # notes joined later: before its start its rows are not decoded, so its update there may have changed a key
    late = dict(watched)
    late["notes"] = dataclasses.replace(watched["notes"], start=stop)
    early = binlog.read_window(settings, late, stop, SERVER_ID, 60, 1 << 40)
    assert early.rekeyed["notes"] == early.updated["notes"] == one.updated["notes"]
    for processes in (2, 3):
        for chosen, window in ((watched, one), (late, early)):
            several = binlog_parallel.read_window(
                settings, chosen, stop, SERVER_ID, 60, 1 << 40, processes, min_bytes=1
            )
            assert (several.deleted, several.rekeyed, several.updated) == (
                window.deleted,
                window.rekeyed,
                window.updated,
            )


def test_a_window_ending_with_a_statement_not_a_commit_is_read_to_its_end(env):
    _tables(env)
    start = _position(env)
    _burst(env)
    env.sql("TRUNCATE TABLE notes")  # the window's last event: a statement (its own commit), no XID after it
    stop = _position(env)
    settings, specs = _settings(env), _specs(env, start)
    one = binlog.read_window(settings, specs, stop, SERVER_ID, 60, 1 << 40)
    several = binlog_parallel.read_window(settings, specs, stop, SERVER_ID, 60, 1 << 40, 3, min_bytes=1)
    assert one.reached_end and one.changes["notes"] == {} and several.segments == 3
    _same(several, one)


def test_a_bytes_budget_ends_the_window_at_a_commit_as_one_reader_would_read_it(env):
    _tables(env)
    start = _position(env)
    _burst(env)
    stop = _position(env)
    settings, specs = _settings(env), _specs(env, start)
    commits = binlog_parallel.commits(settings, specs, stop, SERVER_ID, 1 << 40)
    budget = commits[len(commits) // 2][1]
    cut = binlog_parallel.read_window(settings, specs, stop, SERVER_ID, 60, budget, 2, min_bytes=1)
    assert not cut.reached_end and cut.stopped_by == "bytes"
    assert cut.end in [position for position, _ in commits[:-1]]
    # what it holds is what one reader reads up to that commit
    _same(cut, binlog.read_window(settings, specs, cut.end, SERVER_ID, 60, 1 << 40) | _as_stopped(cut))


class _as_stopped:
    """``window | _as_stopped(cut)``: a window read up to ``cut.end`` compared as stopped there by bytes."""

    def __init__(self, cut: binlog.Window) -> None:
        self.cut = cut

    def __ror__(self, window: binlog.Window) -> binlog.Window:
        assert window.reached_end and window.end == self.cut.end
        window.reached_end, window.stopped_by = False, "bytes"
        return window


def test_a_decoding_process_that_dies_fails_the_read_naming_its_segment(env, monkeypatch):
    _tables(env)
    start = _position(env)
    _burst(env)
    stop = _position(env)
    started = binlog_parallel._start

    def killed(args: tuple[Any, ...]) -> Any:
        process = started(args)
        process.kill()
        return process

    monkeypatch.setattr(binlog_parallel, "_start", killed)
    try:
        binlog_parallel.read_window(_settings(env), _specs(env, start), stop, SERVER_ID, 60, 1 << 40, 2, min_bytes=1)
    except binlog.BinlogUnavailableError as e:
        assert "segment 1" in str(e) and "ended without it" in str(e) and "CDC_DECODE_PROCESSES=1" in str(e)
    else:
        raise AssertionError("a dead decoding process must fail the read")


def test_cdc_runs_with_decoding_processes_land_equal_to_mysql(env):
    _tables(env)
    env.sql("INSERT INTO orders SELECT seq, CONCAT('o', seq), seq, '2024-01-01' FROM seq_200001_to_200100")
    stack = env.start_stack({**NO_AUDIT, "CDC_DECODE_PROCESSES": "3", "CDC_DECODE_MIN_BYTES": "1"})
    assert stack.run({"tables": "orders,notes", "mode": "cdc"}, workers=2, timeout=120).ok
    _burst(env)
    logged = stack.log_path.stat().st_size if stack.log_path.exists() else 0  # the log holds earlier tests' records
    run = stack.run({"tables": "orders,notes", "mode": "cdc"}, workers=2, timeout=180)
    states = run.run["table_states"]
    assert run.ok and states["orders"]["mode"] == "cdc" and states["orders"]["deletes"] > 0, states
    # the batch's MERGE was bounded by its own keys: 1 (inserted) to 100020 (a key changed to it); the rows
    # 200001-200100 beyond them, untouched, and every row inside, compare equal below
    assert [(b["key_low"], b["key_high"]) for b in states["orders"]["batches"]] == [(1, 100020)], states["orders"]
    assert [(b["key_low"], b["key_high"]) for b in states["notes"]["batches"]] == [(1, 300)], states["notes"]
    assert assert_same(env, "orders") > 2000 and assert_same(env, "notes") == 300
    with stack.log_path.open() as log:
        log.seek(logged)
        reads = [json.loads(line) for line in log if '"binlog window read"' in line]
    assert [r["segments"] for r in reads] == [3], reads  # the window was decoded by three processes
