"""Per-table options in cdc: the target a table's changes build equals the one a full copy with the same
options builds (exclude, rename, mask, cast, ``where`` on the row image, a Python transform)."""

from __future__ import annotations

import hashlib

import pytest

OPTIONS = {
    "people": {
        "exclude": ["secret"],
        "rename": {"name": "full_name"},
        "mask": {"email": "sha256", "born": "md5"},
        "cast": {"balance": "FLOAT", "at": "VARCHAR", "note": "VARCHAR(200)"},
        # 'secret' is excluded and still filtered on; status compares case-insensitively (its collation)
        "where": "status <> 'deleted' AND (secret LIKE 's%' OR secret IS NULL) AND id < 1000",
        "transform": "shout_names",
    }
}
COLUMNS = '"ID", "EMAIL", "FULL_NAME", "STATUS", "BALANCE", "BORN", "AT", "NOTE"'


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100) CHARACTER SET utf8mb4, name VARCHAR(50),
           secret VARCHAR(20), status VARCHAR(10) COLLATE utf8mb4_general_ci, balance DECIMAL(10,2), born DATE,
           at DATETIME(3), note TEXT)""",
        """INSERT INTO people SELECT seq, CONCAT('p', seq, IF(seq % 5 = 0, '😀', ''), '@example.com'), CONCAT('n', seq),
           IF(seq % 7 = 0, 'x', CONCAT('s', seq)), IF(seq % 4 = 0, 'deleted', 'active'), seq * 1.25,
           IF(seq % 3 = 0, NULL, '2001-02-03' + INTERVAL seq DAY), '2024-01-01 00:00:00.5' + INTERVAL seq SECOND,
           IF(seq % 2 = 0, 'it''s "q"', NULL) FROM seq_1_to_60""",
    )


def _rows(env) -> list[tuple]:
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute(f'SELECT {COLUMNS} FROM "PEOPLE" ORDER BY "ID"')
    rows = cur.fetchall()
    sf.close()
    return rows


def test_cdc_changes_build_the_target_a_full_copy_with_the_same_options_builds(env):
    _seed(env)
    stack = env.start_stack({"TRANSFORM_MODULES": "sample_transforms"})
    run = {"tables": "people", "table_options": OPTIONS}
    first = stack.run({**run, "mode": "cdc"}, workers=2, timeout=180)
    assert first.ok, first.run["table_states"]
    env.sql(
        "UPDATE people SET status = 'Deleted' WHERE id IN (1, 2)",  # matched before, not after: deleted
        "UPDATE people SET status = 'active', note = 'back' WHERE id IN (4, 8)",  # the reverse: inserted
        "UPDATE people SET secret = 'zz' WHERE id = 3",  # an excluded column decides: deleted
        "UPDATE people SET secret = 's7' WHERE id = 7",  # ... and inserted
        "UPDATE people SET email = 'new@example.com', name = 'renamed', balance = 9.99, born = '1999-12-31' "
        "WHERE id = 5",
        "UPDATE people SET status = 'deleted' WHERE id = 6",
        "UPDATE people SET status = 'active' WHERE id = 6",  # out and back in within one window
        "INSERT INTO people VALUES (100, 'in@example.com', 'in', 's', 'active', 1, '2020-01-01', '2024-01-01', 'n'), "
        "(101, 'out@example.com', 'out', 's', 'deleted', 2, NULL, '2024-01-01', NULL), "
        "(2000, 'key@example.com', 'k', 's', 'active', 3, NULL, '2024-01-01', NULL)",
        "UPDATE people SET id = 1001 WHERE id = 9",  # the new key fails the where: the old row goes
        "UPDATE people SET id = 200 WHERE id = 10",  # a key change the where keeps
        "DELETE FROM people WHERE id IN (11, 12)",
    )
    second = stack.run({**run, "mode": "cdc"}, workers=2, timeout=180)
    t = second.run["table_states"]["people"]
    assert second.ok and t["mode"] == "cdc", t
    by_cdc = _rows(env)
    ids = [r[0] for r in by_cdc]
    assert 1 not in ids and 2 not in ids and 3 not in ids and 9 not in ids and 1001 not in ids and 2000 not in ids
    assert {4, 7, 8, 6, 100, 200} <= set(ids) and 101 not in ids and 11 not in ids
    five = next(r for r in by_cdc if r[0] == 5)
    assert five[1] == hashlib.sha256(b"new@example.com").hexdigest() and five[2] == "RENAMED"
    assert five[5] == hashlib.md5(b"1999-12-31").hexdigest() and five[4] == 9.99
    full = stack.run({**run, "mode": "full"}, workers=2, timeout=180)
    assert full.ok, full.run["table_states"]
    assert _rows(env) == by_cdc


@pytest.mark.parametrize(
    "options, message",
    [
        ({"mask": {"ratio": "md5"}}, "cdc cannot mask column 'ratio'"),
        ({"mask": {"lat": "sha256"}}, "cdc cannot mask column 'lat'"),
        ({"where": "tag = 'a'"}, "cannot compare column 'tag'"),
    ],
)
def test_an_option_cdc_cannot_apply_exactly_is_refused_before_anything_starts(env, options, message):
    env.sql(
        "CREATE TABLE odd (id INT PRIMARY KEY, ratio DOUBLE, lat VARCHAR(10) CHARACTER SET latin1, tag ENUM('a','b'))",
        "INSERT INTO odd VALUES (1, 0.5, 'é', 'a')",
    )
    stack = env.start_stack()
    with pytest.raises(Exception, match=message):
        stack.invoke("SchedulerFunction", {"tables": "odd", "mode": "cdc", "table_options": {"odd": options}})
    assert stack.queue_depth(stack.queue_url) == (0, 0)


def test_salted_masks_take_the_secrets_salt_in_the_copy_and_in_cdc(env):
    from aurora_replication_dev.local.stack import parse_source_url

    env.sql(
        "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(50), age INT)",
        "INSERT INTO users VALUES (1, 'a@x.io', 30), (2, NULL, 40), (3, 'ü@x.io', NULL)",
    )
    salt = "pepper 'n\\ salt ✓"
    options = {"users": {"mask": {"email": "salted_sha256", "age": "salted_sha256"}}}
    unsalted = env.start_stack()
    with pytest.raises(Exception, match='needs a salt: add "mask_salt"'):
        unsalted.invoke("SchedulerFunction", {"tables": "users", "mode": "cdc", "table_options": options})
    stack = env.start_stack(source_secret={**parse_source_url(env.source_url), "mask_salt": salt})
    run = {"tables": "users", "table_options": options}
    assert stack.run({**run, "mode": "cdc"}, workers=1, timeout=120).ok
    env.sql("UPDATE users SET email = 'b@x.io' WHERE id = 1", "INSERT INTO users VALUES (4, 'é@x.io', 7)")
    cdc = stack.run({**run, "mode": "cdc"}, workers=1, timeout=120)
    assert cdc.ok and cdc.run["table_states"]["users"]["mode"] == "cdc", cdc.run["table_states"]
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "EMAIL", "AGE" FROM "USERS" ORDER BY "ID"')
    by_cdc = cur.fetchall()

    def salted(text: str) -> str:
        return hashlib.sha256(salt.encode() + text.encode()).hexdigest()

    assert by_cdc == [
        (1, salted("b@x.io"), salted("30")),
        (2, None, salted("40")),
        (3, salted("ü@x.io"), None),
        (4, salted("é@x.io"), salted("7")),
    ]
    assert stack.run({**run, "mode": "full"}, workers=1, timeout=120).ok
    cur.execute('SELECT "ID", "EMAIL", "AGE" FROM "USERS" ORDER BY "ID"')
    assert cur.fetchall() == by_cdc
    sf.close()


def test_a_table_without_a_key_is_refused_with_what_to_add(env):
    env.sql(
        "CREATE TABLE loose (a INT, b VARCHAR(5))",
        "INSERT INTO loose VALUES (1, 'x'), (1, 'x')",
        "CREATE TABLE keyed (id INT PRIMARY KEY)",
        "INSERT INTO keyed VALUES (1)",
    )
    stack = env.start_stack()
    with pytest.raises(Exception, match="table 'loose' has no key to match its changes to rows.*ADD PRIMARY KEY"):
        stack.invoke("SchedulerFunction", {"tables": "loose", "mode": "cdc"})
    assert stack.queue_depth(stack.queue_url) == (0, 0)
    both = stack.run({"tables": "loose,keyed", "mode": "cdc"}, workers=1, timeout=120)  # the other table goes on
    states = both.run["table_states"]
    assert states["keyed"]["status"] == "published" and states["loose"]["status"] == "failed", states
    assert "unique index over NOT NULL columns" in states["loose"]["reason"]


def test_a_where_on_a_date_column_holding_zero_dates_answers_as_the_copy(env):
    env.sql(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE zd (id INT PRIMARY KEY, d DATE NULL, t DATETIME NULL)",
        "INSERT INTO zd VALUES (1, '2001-01-01', '2001-01-01 10:00:00'), (2, NULL, NULL)",
    )
    options = {"zd": {"where": "d IS NULL OR d < '2000-01-01' OR t < '2000-01-01'"}}
    stack = env.start_stack()
    run = {"tables": "zd", "table_options": options}
    assert stack.run({**run, "mode": "cdc"}, workers=1, timeout=120).ok
    with env.mysql.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("INSERT INTO zd VALUES (3, '0000-00-00', '0000-00-00 00:00:00'), (4, '2001-00-00', NULL)")
        cur.execute("UPDATE zd SET d = '0000-00-00' WHERE id = 1")
    cdc = stack.run({**run, "mode": "cdc"}, workers=1, timeout=120)
    assert cdc.ok, cdc.run["table_states"]
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "D", "T" FROM "ZD" ORDER BY 1')
    by_cdc = cur.fetchall()
    assert stack.run({**run, "mode": "full"}, workers=1, timeout=120).ok
    cur.execute('SELECT "ID", "D", "T" FROM "ZD" ORDER BY 1')
    assert cur.fetchall() == by_cdc, by_cdc
    sf.close()


def test_with_mark_a_row_leaving_the_where_stays_marked_and_the_live_rows_are_the_full_copys(env):
    env.sql(
        "CREATE TABLE m (id INT PRIMARY KEY, status VARCHAR(10), v INT)",
        "INSERT INTO m SELECT seq, IF(seq % 3 = 0, 'gone', 'live'), seq FROM seq_1_to_12",
    )
    options = {"m": {"where": "status = 'live'", "mask": {"v": "md5"}}}
    stack = env.start_stack({"RECONCILE_ACTION": "mark"})
    run = {"tables": "m", "table_options": options}
    assert stack.run({**run, "mode": "cdc"}, workers=1, timeout=120).ok
    env.sql("UPDATE m SET status = 'gone' WHERE id IN (1, 2)", "UPDATE m SET status = 'live', v = 0 WHERE id = 3")
    assert stack.run({**run, "mode": "cdc"}, workers=1, timeout=120).ok
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "_ASR_DELETED_AT" IS NOT NULL FROM "M" WHERE "ID" <= 3 ORDER BY 1')
    assert cur.fetchall() == [(1, True), (2, True), (3, False)]
    cur.execute('SELECT "ID", "STATUS", "V" FROM "M" WHERE "_ASR_DELETED_AT" IS NULL ORDER BY 1')
    live = cur.fetchall()
    assert stack.run({**run, "mode": "full"}, workers=1, timeout=120).ok
    cur.execute('SELECT "ID", "STATUS", "V" FROM "M" ORDER BY 1')
    assert cur.fetchall() == live and len(live) == 7
    sf.close()
