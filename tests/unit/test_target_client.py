"""Snowflake statements go through target.client.Target; the scheduler's schema look-ups included."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aurora_replication.pipeline.scheduler import TargetColumns
from aurora_replication.target import client as target
from aurora_replication.target import sql as snowflake_sql


class RecordingConnection:
    """A connector connection that records (statement, params) and answers from ``answers``."""

    def __init__(self, answers: dict[str, list[tuple[Any, ...]]] | None = None) -> None:
        self.statements: list[tuple[str, Any]] = []
        self.answers = answers or {}
        self.closed = False

    def cursor(self) -> Any:
        conn = self

        class Cursor:
            rows: list[tuple[Any, ...]] = []

            def execute(self, statement: str, params: Any = None) -> None:
                conn.statements.append((statement, params))
                self.rows = conn.answers.get(statement, [])

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


def test_the_schedulers_target_columns_open_one_connection_lazily_and_close_it():
    opened: list[RecordingConnection] = []

    def snowflake() -> RecordingConnection:
        opened.append(RecordingConnection({snowflake_sql.target_columns(): COLUMNS}))
        return opened[-1]

    services = SimpleNamespace(snowflake=snowflake, settings=SimpleNamespace(stage_name="STAGE"))
    columns = TargetColumns(services)  # type: ignore[arg-type]
    columns.execute([])  # nothing to alter: no connection
    assert opened == []
    assert columns("ORDERS") == COLUMNS
    assert columns("CUSTOMERS") == COLUMNS
    columns.execute(['ALTER TABLE "ORDERS" ADD COLUMN "X" VARCHAR'])
    assert len(opened) == 1
    assert [p for _, p in opened[0].statements] == [("ORDERS",), ("CUSTOMERS",), None]
    columns.close()
    assert opened[0].closed


def test_close_without_a_look_up_opens_nothing():
    columns = TargetColumns(SimpleNamespace(snowflake=lambda: 1 / 0))  # type: ignore[arg-type]
    columns.close()
