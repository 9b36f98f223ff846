"""Snowflake statements go through target.client.Target; the scheduler's schema look-ups included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from aurora_replication.pipeline.planning import TargetColumns
from aurora_replication.target.snowflake import client as target
from aurora_replication.target.snowflake import sql as snowflake_sql


class RecordingConnection:
    """A connector connection that records (statement, params) and answers from ``answers``."""

    def __init__(self, answers: dict[str, list[tuple[Any, ...]]] | None = None, rows: int | None = None) -> None:
        """``rows``: what every ``SELECT COUNT(*)`` not in ``answers`` answers."""
        self.rows = rows
        self.statements: list[tuple[str, Any]] = []
        self.statement_params: list[dict[str, str] | None] = []  # sent with each statement (its tag)
        self.answers = answers or {}
        self.closed = False

    def cursor(self) -> Any:
        conn = self

        class Cursor:
            rows: list[tuple[Any, ...]] = []

            def execute(
                self, statement: str, params: Any = None, _statement_params: dict[str, str] | None = None
            ) -> None:
                conn.statements.append((statement, params))
                conn.statement_params.append(_statement_params)
                self.rows = conn.answers.get(statement, [])
                if (
                    statement not in conn.answers
                    and statement.startswith("SELECT COUNT(*) FROM ")
                    and conn.rows is not None
                ):
                    self.rows = [(conn.rows,)]

            def fetchall(self) -> list[tuple[Any, ...]]:
                return self.rows

            def close(self) -> None:
                pass

        return Cursor()

    def close(self) -> None:
        self.closed = True


COLUMNS = [("ID", "NUMBER", 10, 0), ("NAME", "TEXT", None, None)]


def test_columns_binds_the_table_name_and_alter_runs_each_statement_in_order():
    conn = RecordingConnection({snowflake_sql.target_columns(): COLUMNS})
    t = target.Target(conn, "STAGE")  # type: ignore[arg-type]
    assert t.columns('OR"DERS') == COLUMNS
    assert conn.statements == [(snowflake_sql.target_columns(), ('OR"DERS',))]
    t.alter(['ALTER TABLE "T" ADD COLUMN "A" VARCHAR', 'ALTER TABLE "T" ADD COLUMN "B" VARCHAR'])
    assert [s for s, _ in conn.statements[1:]] == [
        'ALTER TABLE "T" ADD COLUMN "A" VARCHAR',
        'ALTER TABLE "T" ADD COLUMN "B" VARCHAR',
    ]


def test_a_few_validated_pairs_need_no_attempts_table_and_many_are_written_to_it():
    plan = SimpleNamespace(target_table="ORDERS")
    conn = RecordingConnection()
    t = target.Target(conn, "STAGE")  # type: ignore[arg-type]
    few = t.record_attempts(plan, "r1", "tok", [(0, "a0")])  # type: ignore[arg-type]
    assert conn.statements == [] and few.table is None  # bound into the statements that read them
    t.checksums_of_attempts(SimpleNamespace(columns=[], key=[]), "L", few)  # type: ignore[arg-type]
    (statement, params), *_ = conn.statements
    assert "FROM VALUES (%s, %s, %s)" in statement and tuple(params) == ("tok", 0, "a0", "tok")
    conn.statements.clear()
    pairs = [(i, f"a{i}") for i in range(snowflake_sql.INLINE_ATTEMPTS + 1)]
    many = t.record_attempts(plan, "r1", "tok", pairs)  # type: ignore[arg-type]
    assert many.table == "_ASR_OK_r1_ORDERS" and many.params == ("tok",)
    assert [s.split(" (")[0] for s, _ in conn.statements] == [
        'CREATE TRANSIENT TABLE IF NOT EXISTS "_ASR_OK_r1_ORDERS"',
        'INSERT INTO "_ASR_OK_r1_ORDERS"',
    ]


def test_the_schedulers_target_columns_borrow_one_connection_lazily_and_give_it_back():
    from aurora_replication.services.connections import Lent

    opened: list[RecordingConnection] = []
    given_back: list[tuple[Lent, bool]] = []

    def lend_target() -> Lent:
        opened.append(RecordingConnection({snowflake_sql.target_columns(): COLUMNS}))
        return Lent(opened[-1], "target", warm=True)

    services = SimpleNamespace(
        settings=SimpleNamespace(stage_name="STAGE"),
        connections=SimpleNamespace(
            lend_target=lend_target,
            give_back=lambda lent, failed: given_back.append((lent, failed)),
            warehouse=lambda conn: target.Target(conn, "STAGE"),
        ),
    )
    columns = TargetColumns(services)  # type: ignore[arg-type]
    columns.execute([])  # nothing to alter: no connection
    assert opened == []
    assert columns("ORDERS") == COLUMNS
    assert columns("CUSTOMERS") == COLUMNS
    columns.execute(['ALTER TABLE "ORDERS" ADD COLUMN "X" VARCHAR'])
    assert len(opened) == 1
    assert [p for _, p in opened[0].statements] == [("ORDERS",), ("CUSTOMERS",), None]
    columns.close()
    assert [(lent.conn, failed) for lent, failed in given_back] == [(opened[0], False)]
    columns.close()  # once
    assert len(given_back) == 1


def test_close_without_a_look_up_opens_nothing():
    columns = TargetColumns(SimpleNamespace(snowflake=lambda: 1 / 0))  # type: ignore[arg-type]
    columns.close()


def _plan() -> Any:
    from aurora_replication.models import Column, TablePlan

    return TablePlan(
        table="orders",
        target_table="ORDERS",
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="name", kind="text", target="NAME"),
        ],
        key=["id"],
        mode="full",
    )


PLAN = _plan()


def _full_commit(
    existing: list[tuple[Any, ...]], fail_on: str = "", rows: int = 5, validated: int = 5
) -> tuple[RecordingConnection, dict[str, Any]]:
    """A full commit of ``validated`` rows where the target (or the counted copy) then holds ``rows``."""
    from aurora_replication.pipeline.modes import Commit, get

    plan = PLAN
    conn = RecordingConnection({snowflake_sql.target_columns(): existing}, rows=rows)
    if fail_on:
        record = conn.cursor

        def cursor() -> Any:
            inner = record()
            execute = inner.execute

            def failing(statement: str, params: Any = None, **kwargs: Any) -> None:
                execute(statement, params, **kwargs)
                if statement.startswith(fail_on):
                    raise RuntimeError("warehouse suspended")

            inner.execute = failing
            return inner

        conn.cursor = cursor  # type: ignore[method-assign]
    t = target.Target(conn, "STAGE")  # type: ignore[arg-type]
    attempts = snowflake_sql.attempts_in_table("A", "tok")
    c = Commit(t, plan, "L", attempts, None, None, loaded_rows=validated)  # type: ignore[arg-type]
    try:
        return conn, get("full").commit(c)
    except RuntimeError:
        return conn, {}


def test_a_full_commit_overwrites_an_existing_target_in_one_guarded_statement_and_never_replaces_it():
    conn, result = _full_commit(COLUMNS)
    statements = [s for s, _ in conn.statements]
    assert statements[0] == snowflake_sql.target_columns()
    # one statement, its own transaction (it can run asynchronously: a transaction ends with its session),
    # guarded by the validated rows' count, bound last
    assert statements[1:] == [snowflake_sql.overwrite(PLAN, "L", snowflake_sql.attempts_in_table("A", "tok"))]
    assert conn.statements[1][1] == ("tok", "tok", 5)
    assert not any(s.startswith(("CREATE", "DROP", 'ALTER TABLE "ORDERS" DROP', "BEGIN")) for s in statements)
    assert result["publish"] == "rows overwritten in place"


def test_a_failed_overwrite_changes_nothing_more_and_a_missing_target_is_created_first():
    conn, _ = _full_commit(COLUMNS, fail_on="INSERT OVERWRITE")
    assert [s.split(" ")[0] for s, _ in conn.statements][1:] == ["INSERT"]
    conn, _ = _full_commit([])
    statements = [s for s, _ in conn.statements]
    assert statements[1].startswith('CREATE TABLE IF NOT EXISTS "ORDERS"')
    assert statements[2].startswith("INSERT OVERWRITE")


def test_an_overwrite_whose_guard_fails_is_a_row_count_mismatch():
    """A finaliser that validated before a concurrent one published and dropped the load table (which a
    straggling chunk then created again, empty) must not overwrite the target with nothing: the statement's
    guard fails it (Snowflake: "Numeric value '...' is not recognized"), which says how many rows it found."""
    import snowflake.connector

    class GuardFails(RecordingConnection):
        def cursor(self) -> Any:
            inner = super().cursor()
            execute = inner.execute

            def failing(statement: str, params: Any = None, **kwargs: Any) -> None:
                execute(statement, params, **kwargs)
                raise snowflake.connector.errors.ProgrammingError(
                    msg=f"Numeric value '{snowflake_sql.GUARD_TEXT}: 0 rows' is not recognized", errno=100038
                )

            inner.execute = failing
            return inner

    t = target.Target(GuardFails(), "STAGE")  # type: ignore[arg-type]
    with pytest.raises(target.RowCountMismatch, match="would hold 0 rows where the validated chunks carry 5"):
        t.overwrite(PLAN, "L", snowflake_sql.attempts_in_table("A", "tok"), 5)


def test_a_recreated_target_is_built_from_a_counted_copy_of_the_validated_rows():
    conn, result = _full_commit([("ID", "TEXT", None, None), ("NAME", "TEXT", None, None)])
    statements = [s for s, _ in conn.statements]
    copy = statements[1].split('"')[1]
    assert statements[1].startswith(f'CREATE TRANSIENT TABLE "{copy}" AS SELECT') and copy.startswith("L_NEW_")
    assert statements[2] == snowflake_sql.row_count(copy)
    assert statements[3] == f'CREATE OR REPLACE TABLE "ORDERS" COPY GRANTS AS SELECT "ID", "NAME" FROM "{copy}"'
    assert statements[4] == f'DROP TABLE IF EXISTS "{copy}"'
    # a copy short of the validated rows (the load table went): the target is left as it was
    conn, result = _full_commit([("ID", "TEXT", None, None), ("NAME", "TEXT", None, None)], rows=0)
    statements = [s for s, _ in conn.statements]
    assert not any(s.startswith('CREATE OR REPLACE TABLE "ORDERS"') for s in statements)
    assert statements[-1] == f'DROP TABLE IF EXISTS "{copy_of(statements)}"' and result == {}


def copy_of(statements: list[str]) -> str:
    return statements[1].split('"')[1]


def test_a_full_commit_adds_new_columns_and_recreates_only_for_a_type_it_cannot_change():
    conn, result = _full_commit([("ID", "NUMBER", 10, 0)])
    statements = [s for s, _ in conn.statements]
    assert statements[1] == 'ALTER TABLE "ORDERS" ADD COLUMN "NAME" VARCHAR'
    assert statements[2].startswith("INSERT OVERWRITE")
    assert result["schema_notes"]
    conn, result = _full_commit([("ID", "TEXT", None, None), ("NAME", "TEXT", None, None)])
    statements = [s for s, _ in conn.statements]
    assert statements[1].startswith('CREATE TRANSIENT TABLE "L_NEW_')
    assert statements[3].startswith('CREATE OR REPLACE TABLE "ORDERS" COPY GRANTS AS SELECT')
    assert result["publish"].startswith("target recreated") and "'id'" in result["publish"]
