"""Per-table transformation hooks: exclude, rename, mask, cast, where, and a registered Python function."""

from __future__ import annotations

import hashlib
import json

import pytest


def _seed(env) -> None:
    env.sql(
        """CREATE TABLE people (id INT PRIMARY KEY, email VARCHAR(100), name VARCHAR(50), secret VARCHAR(20),
           status VARCHAR(10), balance DECIMAL(10,2))""",
        "INSERT INTO people VALUES (1, 'Ann@Example.com', 'ann', 's1', 'active', 10.50), "
        "(2, 'bob@example.com', 'bob', 's2', 'deleted', 0), (3, NULL, 'cy', 's3', 'active', NULL), "
        "(4, 'd%x@example.com', 'dee', 's4', 'it''s', 1)",
    )


def _select(env, sql: str) -> list[tuple]:
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    conn.close()
    return rows


def test_exclude_rename_mask_cast_and_where(env):
    _seed(env)
    options = {
        "people": {
            "exclude": ["secret"],
            "rename": {"name": "full_name"},
            "mask": {"email": "sha256"},
            "cast": {"balance": "FLOAT"},
            "where": "status <> 'deleted' AND (email LIKE '%@example.com' OR email IS NULL)",
        }
    }
    outcome = env.start_stack().run({"tables": "people", "mode": "full", "table_options": options}, workers=1)
    state = outcome.run["table_states"]["people"]
    assert outcome.ok, state
    rows = _select(env, 'SELECT * FROM "PEOPLE" ORDER BY "ID"')
    cols = [
        r[0]
        for r in _select(
            env,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "CURRENT_SCHEMA() AND table_name = 'PEOPLE' ORDER BY ordinal_position",
        )
    ]
    assert cols == ["ID", "EMAIL", "FULL_NAME", "STATUS", "BALANCE"]
    sha = hashlib.sha256(b"d%x@example.com").hexdigest()
    assert [r[0] for r in rows] == [1, 3, 4]
    assert rows[1] == (3, None, "cy", "active", None)
    assert rows[2][1] == sha and rows[2][3] == "it's" and rows[2][4] == 1.0
    assert state["source_rows"] == 3 and state["validation"] == "ok"


def test_options_from_a_file_and_a_python_transform(env, tmp_path):
    _seed(env)
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"people": {"transform": "shout_names", "exclude": ["secret"]}}))
    stack = env.start_stack({"TABLE_OPTIONS_FILE": str(path), "TRANSFORM_MODULES": "sample_transforms"})
    outcome = stack.run({"tables": "people", "mode": "full"}, workers=1)
    state = outcome.run["table_states"]["people"]
    assert outcome.ok, state
    assert state["validation"] == "not compared (python transform)"
    assert [r[0] for r in _select(env, 'SELECT "NAME" FROM "PEOPLE" ORDER BY "ID"')] == ["ANN", "BOB", "CY", "DEE"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"where": "1=1; DROP TABLE people"}, "unexpected text"),
        ({"where": "id IN (SELECT id FROM people)"}, "'SELECT' is not a column"),
        ({"where": "sleep(5) = 0"}, "'sleep' is not a column"),
        ({"where": "(status = 'x'"}, "unbalanced"),
        ({"exclude": ["id"]}, "cannot be excluded"),
        ({"mask": {"nope": "md5"}}, "does not have"),
        ({"cast": {"balance": "NUMBER(10,2); DROP"}}, "not a supported"),
        ({"transform": "missing_hook"}, "no transform named 'missing_hook'"),
    ],
)
def test_bad_options_are_rejected_before_anything_is_written(env, options, message):
    _seed(env)
    stack = env.start_stack()
    with pytest.raises(Exception, match=message):
        stack.invoke("SchedulerFunction", {"tables": "people", "mode": "full", "table_options": {"people": options}})
    assert stack.queue_depth(stack.queue_url) == (0, 0)
