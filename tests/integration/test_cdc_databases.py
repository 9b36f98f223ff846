"""Change data capture over several source databases in one request (``databases`` with ``mode`` cdc):
each database's initial copy, then inserts, updates and deletes in each database applied by one binlog
window shared by all, each table equal to its own database's in MySQL, state per source database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Scope
from several_databases import landing, make_databases, mysql_rows, snowflake_rows

TABLE = "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), n INT)"
SIZES = {"c1": 15, "c2": 9, "c3": 4}


def _databases(env: Any) -> dict[str, str]:
    """Three databases beside the test's own, ``<db>_c1`` to ``_c3``, each with ``items`` of its own rows."""
    return make_databases(
        env, TABLE, SIZES, "INSERT INTO items SELECT seq, CONCAT('{suffix}-', seq), seq FROM seq_1_to_{n}"
    )


def _mysql(env: Any, database: str) -> list[tuple[Any, ...]]:
    return mysql_rows(env, database, "id, v, n")


def _snowflake(env: Any, schema: str, table: str) -> list[tuple[Any, ...]]:
    return snowflake_rows(env, schema, table, '"ID", "V", "N"')


def _where(env: Any, mapping: str, database: str) -> tuple[str, str]:
    """The Snowflake schema and table ``database``.items lands in."""
    return landing(env, mapping, database)


def _scope(env: Any, mapping: str, database: str) -> Scope:
    if mapping == "schema":
        return Scope.of(database, "ANALYTICS", database, "upper")
    return replace(Scope.of(database, "ANALYTICS", env.schema, "upper"), table_prefix=f"{database}__")


def _equal(env: Any, mapping: str, names: dict[str, str]) -> None:
    for database in names.values():
        assert _snowflake(env, *_where(env, mapping, database)) == _mysql(env, database), database


@pytest.mark.parametrize("mapping", ["prefix", "schema"])
def test_cdc_over_three_databases(env, mapping: str) -> None:
    names = _databases(env)
    stack = env.start_stack()
    request = {"tables": "items", "mode": "cdc", "databases": [f"{env.database}_c*"], "database_mapping": mapping}
    first = stack.run(request, workers=2, timeout=180)
    assert first.ok, {d: r.run.get("table_states") for d, r in first.runs.items()}
    assert list(first.runs) == list(names.values())
    for database, outcome in first.runs.items():
        t = outcome.run["table_states"]["items"]
        assert t["mode"] == "full" and int(t["rows_copied"]) == SIZES[database[-2:]], t
    _equal(env, mapping, names)
    # each (database, table) has its own position, recorded before its own initial copy
    for database in names.values():
        key = _scope(env, mapping, database).key("items")
        item = stack.dynamodb.get_item(TableName=stack.table_name, Key={"pk": {"S": key.pk}, "sk": {"S": "CDC"}})
        assert item.get("Item", {}).get("snapshot_run", {}).get("S") == first.runs[database].run_id, database

    # changes in every database, the same keys in each (one database's change must not reach another's table)
    c1, c2, c3 = names["c1"], names["c2"], names["c3"]
    env.sql(
        f"UPDATE `{c1}`.items SET v = 'one', n = n + 100 WHERE id <= 3",
        f"DELETE FROM `{c1}`.items WHERE id IN (4, 5)",
        f"INSERT INTO `{c1}`.items VALUES (100, 'c1-new', 1)",
        f"INSERT INTO `{c2}`.items VALUES (100, 'c2-new', 2), (101, 'c2-newer', 3)",
        f"UPDATE `{c2}`.items SET v = 'two' WHERE id = 1",
        f"DELETE FROM `{c3}`.items WHERE id = 1",
        f"UPDATE `{c3}`.items SET id = 50 WHERE id = 2",  # a key change: the old key deleted
        # a table of the same name in the stack's own database: not followed by this request
        TABLE,
        "INSERT INTO items VALUES (1, 'own', 0)",
    )
    second = stack.run(request, workers=2, timeout=180)
    assert second.ok, {d: r.run.get("table_states") for d, r in second.runs.items()}
    states = {d: r.run["table_states"]["items"] for d, r in second.runs.items()}
    assert all(t["mode"] == "cdc" for t in states.values()), states
    assert (int(states[c1]["upserts"]), int(states[c1]["deletes"])) == (4, 2), states[c1]
    assert (int(states[c2]["upserts"]), int(states[c2]["deletes"])) == (3, 0), states[c2]
    assert (int(states[c3]["upserts"]), int(states[c3]["deletes"])) == (1, 2), states[c3]
    # one binlog read served the three: their windows were read at one moment and end at one position
    tables = [
        stack.dynamodb.get_item(
            TableName=stack.table_name, Key={"pk": {"S": f"RUN#{r.run_id}"}, "sk": {"S": "TABLE#items"}}
        )["Item"]
        for r in second.runs.values()
    ]
    assert len({t["window_read_at"]["N"] for t in tables}) == 1, [t["window_read_at"] for t in tables]
    assert len({str(t["cdc_to"]) for t in tables}) == 1
    _equal(env, mapping, names)

    # another window: changes in one database only; the others' windows are empty
    env.sql(f"UPDATE `{c2}`.items SET n = -1 WHERE id = 100", f"DELETE FROM `{c2}`.items WHERE id = 3")
    third = stack.run(request, workers=2, timeout=180)
    assert third.ok
    changes = {d: int(r.run["table_states"]["items"]["changes"]) for d, r in third.runs.items()}
    assert changes == {c1: 0, c2: 2, c3: 0}, changes
    _equal(env, mapping, names)
    # the health check's cdc part lists each database's table by its database and name, with its lag
    cdc = stack.invoke("HealthFunction", {})["checks"]["cdc"]["tables"]
    for database in names.values():
        assert cdc[f"{database}.items"]["status"] == "streaming", cdc
        assert "cdc_lag_seconds" in cdc[f"{database}.items"], cdc
    # the stack's own table was never written: it is no table of the request
    sf = env.snowflake()
    try:
        own = sf.cursor().execute(
            "SELECT COUNT(*) FROM ANALYTICS.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'ITEMS'",
            (env.schema.upper(),),
        )
        assert own.fetchone()[0] == 0
    finally:
        sf.close()


def test_cdc_of_several_databases_keeps_the_overwrite_guard(env) -> None:
    """A cdc request of several databases refuses a table that would land on the stack's own copy of another
    database's table, and a cdc run of the stack's own database refuses one another database was copied into."""
    twin = env.schema.lower()
    env.sql(
        TABLE,
        "INSERT INTO items VALUES (1, 'own', 0)",
        f"CREATE DATABASE `{twin}`",
        f"CREATE TABLE `{twin}`.items (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
        f"INSERT INTO `{twin}`.items VALUES (1, 'twin', 0)",
        f"CREATE TABLE `{twin}`.other (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "items", "mode": "cdc"}, workers=1, timeout=120).ok
    before = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    with pytest.raises(BadInputError, match=rf"table {twin}\.items would be copied into .*{env.database}"):
        stack.invoke(
            "SchedulerFunction", {"tables": "items", "mode": "cdc", "databases": [twin], "database_mapping": "schema"}
        )
    assert stack.dynamodb.scan(TableName=stack.table_name)["Items"] == before  # nothing written
    assert _snowflake(env, env.schema.upper(), "ITEMS") == [(1, "own", 0)]
    # the other way round: the twin's table streamed first, then a cdc run of the stack's own of that name
    request = {"tables": "other", "mode": "cdc", "databases": [twin], "database_mapping": "schema"}
    assert stack.run(request, workers=1, timeout=120).ok
    env.sql("CREATE TABLE other (id INT PRIMARY KEY)")
    with pytest.raises(BadInputError, match=rf"holds the copy of database '{twin}'"):
        stack.invoke("SchedulerFunction", {"tables": "other", "mode": "cdc"})
    # merge stays refused under cdc, with its reason
    with pytest.raises(BadInputError, match=r"'merge' is not supported with mode 'cdc'"):
        stack.invoke(
            "SchedulerFunction", {"tables": "other", "mode": "cdc", "databases": [twin], "database_mapping": "merge"}
        )
