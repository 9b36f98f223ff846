"""Change data capture end to end: initial copy, then windows of binlog changes, against MariaDB."""

from __future__ import annotations

import random
import threading
import time

import pytest

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
