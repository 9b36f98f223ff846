"""MySQL's employees sample database, a schema written by others, copied exactly in full, reconcile, auto and cdc.

The fixture (tests/fixtures/employees/, its origin, licence and edits in each file's header) keeps the whole
schema and a slice of the rows: composite primary keys that end in a DATE (salaries (emp_no, from_date),
titles (emp_no, title, from_date)), CHAR(4) keys (departments.dept_no, in dept_emp's and dept_manager's keys),
an ENUM, a UNIQUE key (dept_name), a nullable DATE (titles.to_date), two views, no watermark column, and
every child table with ``FOREIGN KEY ... ON DELETE CASCADE`` to employees or departments. Deleting an
employee deletes their rows in four tables inside InnoDB, and none of those deletes is in the binlog: cdc
declines those children's window and copies them again (docs/cdc.md#foreign-keys-that-cascade). Every table
is compared with MySQL value by value after each run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aurora_replication.errors import BadInputError
from compare import assert_same
from sql_script import statements

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "employees"
TABLES = ["departments", "dept_emp", "dept_manager", "employees", "salaries", "titles"]
CHILDREN = {"dept_emp", "dept_manager", "salaries", "titles"}  # ON DELETE CASCADE to employees
VIEWS = ["current_dept_emp", "dept_emp_latest_date"]
CHUNK_ROWS = 400  # salaries (2,871 rows, ~10 an employee) is cut inside an employee's dates: bounds with a DATE

LEAVER = 10017  # promoted before the first copy, so their delete cascades to all four children
PROMOTION = (
    "UPDATE dept_manager SET to_date = '2002-06-01' WHERE dept_no = 'd005' AND to_date = '9999-01-01'",
    f"INSERT INTO dept_manager VALUES ({LEAVER}, 'd005', '2002-06-01', '9999-01-01')",
)
# what the company does in a year: raises, a promotion, a leaver, a hire, a department renamed
CHANGES = [
    "UPDATE salaries SET to_date = '2003-01-01' WHERE to_date = '9999-01-01' AND emp_no BETWEEN 10001 AND 10040",
    "INSERT INTO salaries SELECT emp_no, salary + 2500, '2003-01-01', '9999-01-01' FROM salaries "
    "WHERE to_date = '2003-01-01' AND emp_no BETWEEN 10001 AND 10040",
    "UPDATE titles SET to_date = '2003-01-01' WHERE emp_no = 10004 AND to_date = '9999-01-01'",
    "INSERT INTO titles VALUES (10004, 'Technique Leader', '2003-01-01', NULL)",  # a title with no end
    "UPDATE titles SET to_date = NULL WHERE emp_no = 10005 AND to_date = '9999-01-01'",
    f"DELETE FROM employees WHERE emp_no = {LEAVER}",  # InnoDB deletes their rows in the four children
    "UPDATE departments SET dept_name = 'Customer Success' WHERE dept_no = 'd009'",  # the UNIQUE key
    "INSERT INTO employees VALUES (500000, '1980-02-29', 'Zoë', 'Ndiaye', 'F', '2003-01-01')",
    "INSERT INTO dept_emp VALUES (500000, 'd009', '2003-01-01', '9999-01-01')",
    "INSERT INTO titles VALUES (500000, 'Staff', '2003-01-01', '9999-01-01')",
    "INSERT INTO salaries VALUES (500000, 61000, '2003-01-01', '9999-01-01')",
    "UPDATE employees SET gender = 'F', last_name = 'Facello-Simmel' WHERE emp_no = 10001",  # the ENUM
]


def load_employees(env) -> None:
    for name in ("employees-schema.sql", "employees-data.sql"):
        env.sql(*statements((FIXTURE / name).read_text()))
    env.sql(*PROMOTION)
    env.mysql.commit()
    with env.mysql.cursor() as cur:
        cur.execute("SHOW FULL TABLES")
        kinds = dict(cur.fetchall())
    assert sorted(t for t, k in kinds.items() if k == "BASE TABLE") == TABLES
    assert sorted(t for t, k in kinds.items() if k == "VIEW") == VIEWS


def leaver_rows(env) -> dict[str, int]:
    """How many rows the leaver has in each child: the rows their delete removes inside InnoDB."""
    counts = {}
    with env.mysql.cursor() as cur:
        for table in sorted(CHILDREN):
            cur.execute(f"SELECT COUNT(*) FROM {table} WHERE emp_no = %s", [LEAVER])
            counts[table] = cur.fetchone()[0]
    assert all(counts.values()), counts
    return counts


def change(env) -> None:
    env.sql(*CHANGES)
    env.mysql.commit()


def assert_every_table_same(env, tables=TABLES) -> None:
    for table in tables:
        assert_same(env, table)


def published_ok(outcome, tables=TABLES) -> None:
    states = outcome.run["table_states"]
    assert sorted(states) == TABLES, sorted(states)  # every base table, no view
    for table in tables:
        assert states[table]["status"] == "published", (table, states[table])
        # a copy is compared by the run; a cdc window is not (`replicate validate` compares): assert_same does
        compared = "not compared (cdc window" if states[table]["mode"] == "cdc" else "ok"
        assert states[table]["validation"].startswith(compared), (table, states[table])


def test_full_then_reconcile_then_auto(env):
    load_employees(env)
    stack = env.start_stack()
    request = {"tables": "*", "chunk_rows": CHUNK_ROWS}
    full = stack.run({**request, "mode": "full"}, workers=2)
    assert full.ok
    published_ok(full)
    assert int(full.run["table_states"]["salaries"]["chunk_count"]) > 5
    assert_every_table_same(env)

    cascaded = leaver_rows(env)
    change(env)
    # no table has a column a watermark can be: incremental refuses the request, naming each table and the fix
    with pytest.raises(BadInputError) as refused:
        stack.run({**request, "mode": "incremental"}, workers=2)
    for table in TABLES:
        assert f"table {table!r} has no watermark column, so it cannot be copied incrementally; use mode" in str(
            refused.value
        )

    # reconcile finds the rows InnoDB deleted in the children, as it finds the parent's
    reconcile = stack.run({**request, "mode": "reconcile"}, workers=2)
    assert reconcile.ok, reconcile.run["table_states"]
    reconciled = {t: s.get("reconciled_rows") for t, s in reconcile.run["table_states"].items()}
    assert {t: n for t, n in reconciled.items() if n} == {"employees": 1, **cascaded}
    # auto: each table in full (no watermark column), and every change is there
    auto = stack.run({**request, "mode": "auto"}, workers=2)
    published_ok(auto)
    assert {s["mode"] for s in auto.run["table_states"].values()} == {"full"}
    assert_every_table_same(env)


def test_cdc_declines_the_children_of_a_deleted_employee_then_copies_them_again(env):
    load_employees(env)
    stack = env.start_stack()
    request = {"tables": "*", "mode": "cdc", "chunk_rows": CHUNK_ROWS}
    first = stack.run(request, workers=2, timeout=180)
    assert first.ok
    published_ok(first)
    assert_every_table_same(env)

    change(env)
    second = stack.run(request, workers=2, timeout=180)
    states = second.run["table_states"]
    assert not second.ok  # four tables declined, not published over deletes the binlog does not hold
    published_ok(second, ["departments", "employees"])
    assert states["employees"]["changes"] and states["departments"]["changes"]
    for child in CHILDREN:
        assert states[child]["status"] == "declined", (child, states[child])
        assert (
            f"the foreign key '{child}_ibfk_1' of '{child}' on 'employees' (ON DELETE CASCADE)"
            in states[child]["reason"]
        )
        assert "does not write such cascaded changes to the binlog" in states[child]["reason"], states[child]
    assert_every_table_same(env, ["departments", "employees"])

    third = stack.run(request, workers=2, timeout=180)  # the children copied again, at a new position
    assert third.ok, third.run["table_states"]
    published_ok(third)
    assert {t for t, s in third.run["table_states"].items() if s["mode"] == "full"} == CHILDREN
    assert_every_table_same(env)

    change_after = "UPDATE salaries SET salary = salary + 1 WHERE emp_no = 10002 AND to_date = '9999-01-01'"
    env.sql(change_after)
    env.mysql.commit()
    fourth = stack.run(request, workers=2, timeout=180)  # and every table streams again
    assert fourth.ok, fourth.run["table_states"]
    published_ok(fourth)
    assert {s["mode"] for s in fourth.run["table_states"].values()} == {"cdc"}
    assert fourth.run["table_states"]["salaries"]["changes"]
    assert_every_table_same(env)
