"""Several source databases of one server into one warehouse (``databases``, ``database_mapping``):
three databases with the same table, matched by a pattern, copied in full then incrementally, each into a
schema of its own or into one schema with prefixed names; state per source database; what is refused."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Scope
from aurora_replication.ledger.store import StateStore
from aurora_replication.ops import report
from aurora_replication_dev import cli
from compare import assert_same
from several_databases import WITH_WATERMARK, landing, make_databases, mysql_rows, snowflake_rows

TABLE = (
    "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
)
SIZES = {"t1": 12, "t2": 20, "t3": 7}


def _databases(env: Any) -> dict[str, str]:
    """Three databases beside the test's own, ``<db>_t1`` to ``_t3``, each with ``items`` of its own rows."""
    return make_databases(env, TABLE, SIZES, WITH_WATERMARK)


def _mysql(env: Any, database: str) -> list[tuple[Any, ...]]:
    return mysql_rows(env, database, "id, v")


def _snowflake(env: Any, schema: str, table: str) -> list[tuple[Any, ...]]:
    return snowflake_rows(env, schema, table, '"ID", "V"')


def _where(env: Any, mapping: str, database: str) -> tuple[str, str]:
    """The Snowflake schema and table ``database``.items lands in."""
    return landing(env, mapping, database)


@pytest.mark.parametrize("mapping", ["prefix", "schema"])
def test_three_databases_into_one_target_full_then_incremental(env, mapping: str) -> None:
    names = _databases(env)
    stack = env.start_stack()
    request = {"tables": "items", "mode": "auto", "databases": [f"{env.database}_t*"], "database_mapping": mapping}
    first = stack.run(request, workers=2)
    assert first.ok, {d: r.run.get("table_states") for d, r in first.runs.items()}
    assert list(first.runs) == list(names.values())  # the pattern matched the three, in the server's order
    for database, outcome in first.runs.items():
        t = outcome.run["table_states"]["items"]
        assert t["mode"] == "full" and int(t["rows_copied"]) == SIZES[database[-2:]], t
        assert outcome.run_id.endswith(f"-{database}")
        assert _snowflake(env, *_where(env, mapping, database)) == _mysql(env, database)
        # the run's report names its source database and target
        page = report.build(StateStore(stack.table_name, stack.session.resource("dynamodb")), outcome.run_id)
        assert f"source database <b>{database}</b>" in page
    # the health check (replicate status) lists each database's table by its database and name
    tables = stack.invoke("HealthFunction", {})["checks"]["replication"]["tables"]
    for database, outcome in first.runs.items():
        assert tables[f"{database}.items"]["last_run"] == outcome.run_id, tables

    # the second run is incremental in each database, from that database's own watermark
    env.sql(f"UPDATE `{names['t2']}`.items SET v = 'changed' WHERE id <= 3")
    env.sql(f"INSERT INTO `{names['t3']}`.items (id, v) VALUES (100, 'new')")
    second = stack.run(request, workers=2)
    assert second.ok
    for database, outcome in second.runs.items():
        t = outcome.run["table_states"]["items"]
        assert t["mode"] == "incremental", t
        assert _snowflake(env, *_where(env, mapping, database)) == _mysql(env, database)
    assert ("3", "changed") not in [(str(i), v) for i, v in _snowflake(env, *_where(env, mapping, names["t1"]))]

    # state (watermark) is kept per source database and target table
    for database in names.values():
        scope = (
            Scope.of(database, "ANALYTICS", database, "upper")
            if mapping == "schema"
            else replace(Scope.of(database, "ANALYTICS", env.schema, "upper"), table_prefix=f"{database}__")
        )
        item = stack.dynamodb.get_item(
            TableName=stack.table_name, Key={"pk": {"S": scope.key("items").pk}, "sk": {"S": "WATERMARK"}}
        ).get("Item")
        assert item is not None and item["run_id"]["S"] == second.runs[database].run_id, (database, item)

    # a request of the stack's own database on the same warm connections reads and writes its own again
    env.sql(TABLE, "INSERT INTO items (id, v) VALUES (1, 'own'), (2, 'own')")
    own = stack.run({"tables": "items", "mode": "full"}, workers=2)
    assert own.ok and not own.runs
    assert assert_same(env, "items") == 2


def test_replicate_run_with_databases(env, capsys, tmp_path) -> None:
    names = _databases(env)
    page = tmp_path / "report.html"
    out_json = tmp_path / "run.json"
    code = cli.main(
        [
            "--home",
            str(env.home),
            "run",
            "--source",
            env.source_url,
            "--target",
            env.target_url,
            "--tables",
            "items",
            "--mode",
            "full",
            "--databases",
            f"{names['t1']},{names['t3']}",
            "--database-mapping",
            "prefix",
            "--report",
            str(page),
            "--json",
            str(out_json),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    runs = json.loads(out_json.read_text())["runs"]
    assert list(runs) == [names["t1"], names["t3"]]
    for database in (names["t1"], names["t3"]):
        assert f"database {database}: run {runs[database]['run_id']}" in out
        assert (tmp_path / f"report-{database}.html").exists()
        assert _snowflake(env, *_where(env, "prefix", database)) == _mysql(env, database)

    # replicate validate compares each database's table with where it was copied
    urls = ["--source", env.source_url, "--target", env.target_url]
    validate = ["--home", str(env.home), "validate", *urls, "--tables", "items", "--database-mapping", "prefix"]
    assert cli.main([*validate, "--databases", f"{names['t1']},{names['t3']}"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{names[s]}\.items\s.*\sok\s*$", out, re.M) for s in ("t1", "t3")), out
    sf = env.snowflake()
    try:
        schema, table = _where(env, "prefix", names["t3"])
        sf.cursor().execute(f'DELETE FROM "{schema}"."{table}" WHERE "ID" = 1')
    finally:
        sf.close()
    assert cli.main([*validate, "--databases", f"{env.database}_t*"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"^{names['t1']}\.items\s.*\sok\s*$", out, re.M), out
    assert re.search(rf"^{names['t2']}\.items\s.*missing in Snowflake\s*$", out, re.M), out
    assert re.search(rf"^{names['t3']}\.items\s.*count differs\s*$", out, re.M), out


def _refused(stack: Any, request: dict[str, Any], match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        stack.invoke("SchedulerFunction", request)


def test_a_wrong_database_request_is_refused_with_nothing_written(env) -> None:
    names = _databases(env)
    env.sql(f"CREATE TABLE `{names['t1']}`.only_here (id INT PRIMARY KEY)")
    stack = env.start_stack()
    base = {"tables": "items", "mode": "full", "database_mapping": "prefix"}
    _refused(stack, {**base, "databases": [f"{env.database}_zz*"]}, r"match no database")
    _refused(stack, {**base, "databases": [names["t1"], "no_such_db"]}, r"unknown database\(s\) 'no_such_db'")
    _refused(stack, {**base, "databases": ["mysql"]}, r"the server's own")
    _refused(stack, {**base, "tables": "only_here", "databases": [f"{env.database}_t*"]}, r"unknown table\(s\)")
    _refused(
        stack,
        {**base, "databases": [f"{env.database}_t*"], "table_options": {"only_here": {"history": False}}},
        rf"table_options name unknown table\(s\) 'only_here' in database '{names['t2']}'",
    )
    _refused(
        stack,
        {**base, "mode": "cdc", "database_mapping": "merge", "databases": [names["t1"]]},
        r"'merge' is not supported with mode 'cdc'",
    )
    _refused(stack, {"tables": "items", "databases": [names["t1"]]}, r"databases needs database_mapping")
    # two databases whose names differ only in case map to one schema under TARGET_IDENTIFIER_CASE=upper
    env.sql(
        f"CREATE DATABASE `{env.database.upper()}_T1`",
        f"CREATE TABLE `{env.database.upper()}_T1`.items (id INT PRIMARY KEY)",
    )
    _refused(
        stack,
        {**base, "database_mapping": "schema", "databases": [names["t1"], f"{env.database.upper()}_T1"]},
        r"both map to",
    )
    assert stack.dynamodb.scan(TableName=stack.table_name)["Items"] == []
    assert stack.queue_depth(stack.queue_url) == (0, 0)


def test_a_database_is_never_copied_over_another_databases_table(env) -> None:
    # a source database named like the target secret's schema: under mapping 'schema' its tables land in
    # the schema the stack copies its own database to
    twin = env.schema.lower()
    env.sql(
        TABLE,
        "INSERT INTO items (id, v) VALUES (1, 'own')",
        f"CREATE DATABASE `{twin}`",
        f"CREATE TABLE `{twin}`.items (id INT PRIMARY KEY, v VARCHAR(20))",
        f"INSERT INTO `{twin}`.items VALUES (1, 'twin')",
        f"CREATE TABLE `{twin}`.other (id INT PRIMARY KEY)",
        f"INSERT INTO `{twin}`.other VALUES (7)",
    )
    stack = env.start_stack()
    assert stack.run({"tables": "items", "mode": "full"}, workers=1).ok
    before = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    _refused(
        stack,
        {"tables": "items", "mode": "full", "databases": [twin], "database_mapping": "schema"},
        rf"table {twin}\.items would be copied into ANALYTICS\.{env.schema.upper()}\.ITEMS, which holds the copy of "
        rf"database '{env.database}'",
    )
    assert stack.dynamodb.scan(TableName=stack.table_name)["Items"] == before  # nothing written
    assert _snowflake(env, env.schema.upper(), "ITEMS") == [(1, "own")]
    # the other way round: the twin's table copied first, then the stack's own run of a table of that name
    other = stack.run({"tables": "other", "mode": "full", "databases": [twin], "database_mapping": "schema"})
    assert other.ok
    env.sql("CREATE TABLE other (id INT PRIMARY KEY)", "INSERT INTO other VALUES (8)")
    _refused(stack, {"tables": "other", "mode": "full"}, rf"holds the copy of database '{twin}'")
