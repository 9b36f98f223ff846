"""Foreign keys whose action changes a child's rows inside MySQL (ON DELETE / ON UPDATE CASCADE, SET NULL):
MySQL does not write those changes to the binlog, so cdc must never publish a child's window over them. A
parent's delete or key change declines the child's window (its position stays) and its next run copies it
again; an update of other columns, or a foreign key that RESTRICTs, changes nothing of the streaming."""

from __future__ import annotations

from aurora_replication.pipeline.modes.cdc.reader import CdcTable
from compare import assert_same

SCHEMA = (
    "CREATE TABLE authors (id INT PRIMARY KEY, name VARCHAR(40))",
    "INSERT INTO authors SELECT seq, CONCAT('author ', seq) FROM seq_1_to_20",
    """CREATE TABLE books (id INT PRIMARY KEY, author_id INT NOT NULL, title VARCHAR(40),
       CONSTRAINT books_author FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE CASCADE ON UPDATE CASCADE)""",
    "INSERT INTO books SELECT seq, 1 + seq % 20, CONCAT('book ', seq) FROM seq_1_to_100",
    """CREATE TABLE notes (id INT PRIMARY KEY, author_id INT NULL, body VARCHAR(40),
       CONSTRAINT notes_author FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE SET NULL)""",
    "INSERT INTO notes SELECT seq, 1 + seq % 20, CONCAT('note ', seq) FROM seq_1_to_60",
    """CREATE TABLE reviews (id INT PRIMARY KEY, author_id INT NOT NULL, stars INT,
       CONSTRAINT reviews_author FOREIGN KEY (author_id) REFERENCES authors (id) ON DELETE RESTRICT)""",
    "INSERT INTO reviews SELECT seq, 1 + seq % 5, seq % 5 FROM seq_1_to_30",
)
TABLES = ("authors", "books", "notes", "reviews")


def _cdc(stack, tables: str = ",".join(TABLES)):
    return stack.run({"tables": tables, "mode": "cdc"}, workers=2, timeout=180)


def _states(outcome) -> dict:
    return outcome.run["table_states"]


def _exact(env) -> None:
    for t in TABLES:
        assert_same(env, t)


def test_a_parents_delete_or_key_change_sends_its_cascading_children_to_a_new_copy(env):
    env.sql(*SCHEMA)
    stack = env.start_stack()
    assert _cdc(stack).ok  # the initial copies

    # a parent's other columns updated, children's own changes: no cascade, every table streams
    env.sql(
        "UPDATE authors SET name = CONCAT(name, ' (ed.)') WHERE id <= 5",
        "UPDATE books SET title = 'retitled' WHERE id <= 3",
        "INSERT INTO notes VALUES (100, 7, 'new note')",
    )
    plain = _cdc(stack)
    assert plain.ok, _states(plain)
    assert all(_states(plain)[t]["mode"] == "cdc" for t in TABLES)
    _exact(env)

    # a parent deleted: its books deleted and its notes' author set NULL by InnoDB, not in the binlog
    env.sql("DELETE FROM reviews WHERE author_id = 3", "DELETE FROM authors WHERE id = 3")
    declined = _cdc(stack)
    states = _states(declined)
    assert not declined.ok
    assert states["authors"]["status"] == "published" and states["reviews"]["status"] == "published"
    for child in ("books", "notes"):
        assert states[child]["status"] == "declined", states[child]
        assert "does not write such cascaded changes to the binlog" in states[child]["reason"]
    copied = _cdc(stack)  # their next run copies them again
    assert copied.ok, _states(copied)
    assert _states(copied)["books"]["mode"] == "full" and _states(copied)["notes"]["mode"] == "full"
    assert "cascade" in " ".join(_states(copied)["books"].get("notes") or [])
    _exact(env)
    assert _cdc(stack).ok  # and they stream again

    # a parent's key changed: ON UPDATE CASCADE moves its books (notes' ON UPDATE is RESTRICT: none refer to it)
    env.sql("INSERT INTO authors VALUES (600, 'new author')", "INSERT INTO books VALUES (600, 600, 'debut')")
    assert _cdc(stack).ok
    env.sql("UPDATE authors SET id = 601 WHERE id = 600")
    moved = _cdc(stack)
    assert _states(moved)["books"]["status"] == "declined", _states(moved)["books"]
    assert _states(moved)["notes"]["status"] == "published"  # its delete rule only: a key change cannot cascade
    assert _cdc(stack).ok
    _exact(env)


def test_a_child_whose_parent_is_not_read_in_the_window_is_declined_not_published(env):
    env.sql(*SCHEMA)
    stack = env.start_stack()
    assert _cdc(stack, "authors,books").ok
    env.sql("DELETE FROM reviews WHERE author_id = 2", "DELETE FROM notes WHERE author_id = 2")
    env.sql("DELETE FROM authors WHERE id = 2")
    alone = _cdc(stack, "books")  # the parent is not read: nothing can show no cascade happened
    assert _states(alone)["books"]["status"] == "declined"
    assert "is not read in this window" in _states(alone)["books"]["reason"]
    together = _cdc(stack, "authors,books")  # read with its parent, the window sees the delete
    assert _states(together)["books"]["status"] == "declined"
    assert _cdc(stack, "authors,books").ok
    assert_same(env, "books") and assert_same(env, "authors")


def test_a_self_referencing_foreign_key_is_watched_on_its_own_table(env):
    env.sql(
        """CREATE TABLE staff (id INT PRIMARY KEY, boss_id INT NULL, name VARCHAR(20),
           CONSTRAINT staff_boss FOREIGN KEY (boss_id) REFERENCES staff (id) ON DELETE SET NULL)""",
        "INSERT INTO staff VALUES (1, NULL, 'boss'), (2, 1, 'a'), (3, 1, 'b'), (4, 2, 'c')",
    )
    stack = env.start_stack()
    assert _cdc(stack, "staff").ok
    env.sql("DELETE FROM staff WHERE id = 1")  # 2 and 3 lose their boss inside InnoDB
    out = _cdc(stack, "staff")
    assert _states(out)["staff"]["status"] == "declined"
    assert _cdc(stack, "staff").ok
    assert assert_same(env, "staff") == 3


def test_planning_reads_the_databases_cascading_foreign_keys_in_one_query(env):
    from aurora_replication.pipeline.modes.cdc.cascades import cascades_in

    env.sql(*SCHEMA)
    conn = env.db.connect(env.database)
    try:
        found = cascades_in(conn, env.database)
        assert set(found) == {"books", "notes"}  # reviews RESTRICTs: refused, not cascaded; authors has none
        assert [(c.name, c.parent, c.parent_columns, c.on_delete, c.on_update) for c in found["books"]] == [
            ("books_author", "authors", ("id",), "CASCADE", "CASCADE")
        ]
        assert [(c.on_delete, c.on_update) for c in found["notes"]] == [("SET NULL", "RESTRICT")]
        assert cascades_in(conn, env.database, "notes") == {"notes": found["notes"]}
        assert cascades_in(conn, env.database, "reviews") == {}
    finally:
        conn.close()
    assert "cascades" in CdcTable.__dataclass_fields__
