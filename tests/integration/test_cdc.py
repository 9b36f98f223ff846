"""Change data capture end to end: initial copy, then windows of binlog changes, against MariaDB."""

from __future__ import annotations

import random
import threading
import time

from compare import assert_same


def _seed(env, rows: int = 200) -> None:
    env.sql(
        """CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, qty INT,
           price DECIMAL(10,2), tag ENUM('a','b','c'), flags SET('x','y','z'), doc JSON NULL, at DATETIME(3),
           seen TIMESTAMP(6) NULL, day DATE NULL, blob_ VARBINARY(8) NULL, ratio DOUBLE NULL)""",
        f"""INSERT INTO items SELECT seq, CONCAT('item ', seq, IF(seq % 7 = 0, ' 😀 "q", \\\\ ', '')), seq % 13,
           seq * 1.25, ELT(1 + seq % 3, 'a', 'b', 'c'), IF(seq % 2 = 0, 'x,z', ''),
           IF(seq % 3 = 0, JSON_OBJECT('k', seq, 'n', 'é'), NULL), '2024-01-01 00:00:00' + INTERVAL seq SECOND,
           '2024-06-01 00:00:00.123456' + INTERVAL seq MINUTE, IF(seq % 4 = 0, NULL, '2020-02-29'),
           IF(seq % 5 = 0, x'00ff10', NULL), seq / 3 FROM seq_1_to_{rows}""",
    )


def _cdc(stack, tables: str = "items", **extra):
    return stack.run({"tables": tables, "mode": "cdc", **extra}, workers=2, timeout=180)


def test_initial_copy_then_changes_deletes_and_key_changes(env):
    _seed(env)
    stack = env.start_stack()
    first = _cdc(stack)
    assert first.ok, first.run["table_states"]
    assert first.run["table_states"]["items"]["mode"] == "full"
    env.sql(
        "UPDATE items SET qty = qty + 100, name = 'changed ✓' WHERE id % 10 = 0",
        "DELETE FROM items WHERE id % 9 = 0",
        "INSERT INTO items (id, name, qty, tag, flags) VALUES (1000, 'new', 1, 'b', 'y'), (1001, 'newer', 2, 'c', 'x,y')",
        "UPDATE items SET id = 5000 WHERE id = 11",
        "UPDATE items SET qty = 7 WHERE id = 1000",
        "DELETE FROM items WHERE id = 1001",
    )
    second = _cdc(stack)
    assert second.ok, second.run["table_states"]
    t = second.run["table_states"]["items"]
    assert t["mode"] == "cdc" and t["deletes"] > 0 and t["upserts"] > 0
    assert assert_same(env, "items") == 200 - 22 + 1 - 0
    third = _cdc(stack)  # nothing new: an empty window, the position stays
    assert third.ok and third.run["table_states"]["items"]["changes"] == 0
    assert_same(env, "items")


class BoundedWriter(threading.Thread):
    """Inserts, updates, deletes and key changes on loopback: at most ``rate`` statements a second, for
    at most ``seconds``; it stops by itself."""

    def __init__(self, env, seconds: float = 8.0, rate: float = 40.0, first_id: int = 10_000) -> None:
        super().__init__(daemon=True)
        self.env, self.seconds, self.rate, self.next_id = env, seconds, rate, first_id
        self.counts = {"insert": 0, "update": 0, "delete": 0, "key": 0}
        self.error: BaseException | None = None

    def run(self) -> None:
        rnd = random.Random(13)
        conn = self.env.db.connect(self.env.database)
        deadline = time.monotonic() + self.seconds
        try:
            with conn.cursor() as cur:
                while time.monotonic() < deadline:
                    op = rnd.choice(["insert", "update", "update", "delete", "key"])
                    target = rnd.randint(1, 250)
                    if op == "insert":
                        self.next_id += 1
                        cur.execute(
                            "INSERT INTO items (id, name, qty, tag, flags, doc) VALUES (%s, %s, %s, 'b', 'y', %s)",
                            (self.next_id, f"w{self.next_id}", rnd.randint(0, 9), '{"w": true}'),
                        )
                    elif op == "update":
                        cur.execute(
                            "UPDATE items SET qty = %s, name = CONCAT(name, '+') WHERE id = %s",
                            (rnd.randint(0, 999), target),
                        )
                    elif op == "delete":
                        cur.execute("DELETE FROM items WHERE id = %s", (target,))
                    else:
                        self.next_id += 1
                        cur.execute("UPDATE items SET id = %s WHERE id = %s", (self.next_id, target))
                    self.counts[op] += 1
                    time.sleep(1.0 / self.rate)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            conn.close()


def test_changes_while_a_writer_runs_then_exact_without_reconcile(env):
    _seed(env, 300)
    stack = env.start_stack()
    assert _cdc(stack).ok
    writer = BoundedWriter(env, seconds=8, rate=40)
    writer.start()
    runs = 0
    while writer.is_alive() or runs < 2:
        outcome = _cdc(stack)
        assert outcome.ok, outcome.run["table_states"]
        runs += 1
    writer.join()
    assert writer.error is None, writer.error
    assert all(writer.counts.values()), writer.counts
    final = _cdc(stack)
    assert final.ok, final.run["table_states"]
    assert_same(env, "items")


def test_mark_deletes_keeps_deleted_rows_marked(env):
    _seed(env, 50)
    stack = env.start_stack({"RECONCILE_ACTION": "mark"})
    assert _cdc(stack).ok
    env.sql("DELETE FROM items WHERE id <= 5", "INSERT INTO items (id, name) VALUES (3, 'back')")
    assert _cdc(stack).ok
    sf = env.snowflake()
    cur = sf.cursor()
    cur.execute('SELECT "ID", "_ASR_DELETED_AT" IS NOT NULL FROM "ITEMS" WHERE "ID" <= 5 ORDER BY 1')
    assert cur.fetchall() == [(1, True), (2, True), (3, False), (4, True), (5, True)]
    cur.execute('SELECT COUNT(*) FROM "ITEMS" WHERE "_ASR_DELETED_AT" IS NULL')
    assert cur.fetchone()[0] == 46
    sf.close()


def test_schema_changes_between_runs(env):
    _seed(env, 40)
    stack = env.start_stack()
    assert _cdc(stack).ok
    env.sql(
        "UPDATE items SET qty = 1 WHERE id = 1",
        "ALTER TABLE items ADD COLUMN note VARCHAR(30) NULL, MODIFY qty BIGINT",
        "UPDATE items SET note = 'after ddl', qty = 9000000000 WHERE id = 2",
        "INSERT INTO items (id, name, note) VALUES (100, 'new', 'n')",
    )
    outcome = _cdc(stack)
    assert outcome.ok, outcome.run["table_states"]
    assert any("NOTE" in n for n in outcome.run["table_states"]["items"]["notes"])
    assert_same(env, "items")
    # a column added with a default: the rows no event touched hold it in MySQL only, so it is filled from
    # MySQL by key (tests/integration/test_cdc_added_columns.py), without a stop or a re-copy
    env.sql(
        "ALTER TABLE items ADD COLUMN region CHAR(2) NOT NULL DEFAULT 'EU'", "UPDATE items SET qty = 3 WHERE id = 3"
    )
    added = _cdc(stack)
    t = added.run["table_states"]["items"]
    assert added.ok and t["mode"] == "cdc", t
    assert [(c["change"], c["column"]) for c in t["schema_changes"]] == [("column added, filled", "REGION")], t
    assert t["column_version"].endswith("filled"), t  # 41 rows: one page
    env.sql("UPDATE items SET region = 'US' WHERE id = 4")
    assert _cdc(stack).ok
    assert_same(env, "items")


def test_position_older_than_the_retained_binlogs(env):
    _seed(env, 30)
    stack = env.start_stack()
    assert _cdc(stack).ok
    env.sql("UPDATE items SET qty = 0 WHERE id = 1")
    health = stack.invoke("HealthFunction", {})["checks"]["cdc"]
    assert health["ok"] and health["tables"]["items"]["status"] == "snapshot"
    with env.mysql.cursor() as cur:
        deadline = time.monotonic() + 60
        while True:  # MariaDB keeps a binlog until its InnoDB checkpoint has passed: rotate and purge until gone
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            current = cur.fetchone()[0]
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            if [r[0] for r in cur.fetchall()] == [current] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    health = stack.invoke("HealthFunction", {})["checks"]["cdc"]
    assert not health["ok"], health
    assert "re-snapshot" in health["detail"] and health["tables"]["items"]["retained"] is False
    outcome = _cdc(stack)
    t = outcome.run["table_states"]["items"]
    assert t["status"] == "failed" and "older than the oldest binlog" in t["reason"]
    assert _cdc(stack, resnapshot=True).ok
    env.sql("DELETE FROM items WHERE id = 2")
    assert _cdc(stack).ok
    assert_same(env, "items")
    health = stack.invoke("HealthFunction", {})["checks"]["cdc"]
    assert health["ok"], health
    assert health["tables"]["items"]["cdc_lag_seconds"] >= 0


def test_tables_at_different_positions_share_one_window(env):
    _seed(env, 30)
    env.sql("CREATE TABLE other (k VARCHAR(10) PRIMARY KEY, v INT)", "INSERT INTO other VALUES ('a', 1), ('b', 2)")
    stack = env.start_stack()
    assert _cdc(stack, "items").ok
    env.sql("UPDATE items SET qty = 99 WHERE id = 1", "UPDATE other SET v = 10 WHERE k = 'a'")
    both = _cdc(stack, "items,other")  # items applies its change; other takes its initial copy
    assert both.ok, both.run["table_states"]
    assert both.run["table_states"]["other"]["mode"] == "full"
    env.sql("DELETE FROM other WHERE k = 'b'", "INSERT INTO other VALUES ('c', 3)", "DELETE FROM items WHERE id = 2")
    again = _cdc(stack, "items,other")
    assert again.ok, again.run["table_states"]
    assert assert_same(env, "other") == 2
    assert_same(env, "items")


def test_changes_of_every_value_class_land_as_the_chunk_path_lands_them(env):
    """A row changed through the binlog is staged and loaded as a chunk would load it (NULL an empty
    field, '' and text that looks like NULL as text, FLOAT as its exact double, YEAR 0, geometries as
    EWKB, JSON with a duplicate key): after the changes ``replicate validate`` finds the target equal
    to MySQL, every column compared (JSON value by value)."""
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    env.sql(
        """CREATE TABLE vals (id INT PRIMARY KEY, t VARCHAR(20) CHARACTER SET utf8mb4 NULL,
           lat VARCHAR(20) CHARACTER SET latin1 NULL, f FLOAT NULL, d DOUBLE NULL, y YEAR NULL,
           g GEOMETRY NULL, js JSON NULL, b BLOB NULL)""",
        "INSERT INTO vals (id, t) VALUES (1, 'seed')",
    )
    stack = env.start_stack()
    assert _cdc(stack, "vals").ok
    env.sql(
        """INSERT INTO vals VALUES
           (2, '', 'café', 0.1, 0.1, 0, ST_GeomFromText('POINT(1 2)', 4326), '{"a": 1, "a": 2}', X''),
           (3, 'NULL', NULL, 3.40282e38, -5e-324, 2155, ST_GeomFromText('LINESTRING(0 0, 1 1)'), '[]', X'00FF'),
           (4, '\\\\N', 'x', NULL, NULL, NULL, NULL, NULL, NULL)""",
        "UPDATE vals SET t = NULL, f = 1.5, y = 1901 WHERE id = 1",
    )
    second = _cdc(stack, "vals")
    assert second.ok, second.run["table_states"]
    assert assert_same(env, "vals") == 4
    [report] = validate.validate_tables(Services.from_settings(load_settings()), ["vals"])
    assert report["result"] == "ok" and "differences" not in report, report
