"""Several source databases merged into one table (``database_mapping: merge``): three databases' ``items``
in one Snowflake table with ``_ASR_SOURCE_DATABASE``, copied in full, then incrementally with changes in one
database only, then a full copy of one database that leaves the others' rows as they were; each database's
rows equal to MySQL's after every step; ``replicate validate`` per database; what is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication_dev import cli
from several_databases import WITH_WATERMARK, make_databases, mysql_rows

TABLE = (
    "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20), "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
)
SIZES = {"t1": 12, "t2": 20, "t3": 7}


def _databases(env: Any) -> dict[str, str]:
    """Three databases beside the test's own, ``<db>_t1`` to ``_t3``, each with ``items`` keyed 1..n: the
    same keys in each, told apart only by the database."""
    return make_databases(env, TABLE, SIZES, WITH_WATERMARK)


def _mysql(env: Any, database: str) -> list[tuple[Any, ...]]:
    return mysql_rows(env, database, "id, v")


def _merged(env: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The merged table's rows, by source database."""
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT "_ASR_SOURCE_DATABASE", "ID", "V" FROM "ANALYTICS"."{env.schema}"."ITEMS" ORDER BY 1, 2')
        out: dict[str, list[tuple[Any, ...]]] = {}
        for db, id_, v in cur.fetchall():
            out.setdefault(db, []).append((id_, v))
        return out
    finally:
        conn.close()


def _equal_per_database(env: Any, names: dict[str, str]) -> None:
    merged = _merged(env)
    assert sorted(merged) == sorted(names.values())
    for database in names.values():
        assert merged[database] == _mysql(env, database), database


def test_three_databases_merged_full_then_incremental_then_one_database_again(env) -> None:
    names = _databases(env)
    stack = env.start_stack()
    request = {"tables": "items", "mode": "auto", "databases": [f"{env.database}_t*"], "database_mapping": "merge"}
    first = stack.run(request, workers=2)
    assert first.ok, {d: r.run.get("table_states") for d, r in first.runs.items()}
    for database, outcome in first.runs.items():
        t = outcome.run["table_states"]["items"]
        assert t["mode"] == "full" and int(t["rows_copied"]) == SIZES[database[-2:]], t
    _equal_per_database(env, names)

    # changes in t2 only: each database's run is incremental; t1's and t3's rows stay as they were
    env.sql(f"UPDATE `{names['t2']}`.items SET v = 'changed' WHERE id <= 3")
    env.sql(f"INSERT INTO `{names['t2']}`.items (id, v) VALUES (100, 'new')")
    second = stack.run(request, workers=2)
    assert second.ok, {d: r.run.get("table_states") for d, r in second.runs.items()}
    for outcome in second.runs.values():
        assert outcome.run["table_states"]["items"]["mode"] == "incremental"
    _equal_per_database(env, names)

    # a full copy of t3 alone (a row deleted, one changed): its rows replaced, t1's and t2's intact
    env.sql(f"DELETE FROM `{names['t3']}`.items WHERE id = 2", f"UPDATE `{names['t3']}`.items SET v = 'x' WHERE id = 5")
    before = _merged(env)
    third = stack.run({**request, "mode": "full", "databases": [names["t3"]]}, workers=2)
    assert third.ok, {d: r.run.get("table_states") for d, r in third.runs.items()}
    after = _merged(env)
    assert after[names["t1"]] == before[names["t1"]] and after[names["t2"]] == before[names["t2"]]
    _equal_per_database(env, names)

    # the whole-target check counts each database's rows: a t1 row deleted in Snowflake is t1's drift only
    sf = env.snowflake()
    try:
        sf.cursor().execute(
            f'DELETE FROM "ANALYTICS"."{env.schema}"."ITEMS" WHERE "_ASR_SOURCE_DATABASE" = %s AND "ID" = 4',
            (names["t1"],),
        )
    finally:
        sf.close()
    fourth = stack.run(request, workers=2)
    assert fourth.ok
    modes = {d[-2:]: o.run["table_states"]["items"]["mode"] for d, o in fourth.runs.items()}
    assert modes == {"t1": "full", "t2": "incremental", "t3": "incremental"}, modes
    _equal_per_database(env, names)

    # reconcile: a key deleted in t1 goes from t1's rows only (t2 and t3 have the same key 6)
    env.sql(f"DELETE FROM `{names['t1']}`.items WHERE id = 6")
    fifth = stack.run({**request, "mode": "reconcile"}, workers=2)
    assert fifth.ok, {d: r.run.get("table_states") for d, r in fifth.runs.items()}
    removed = {d[-2:]: int(o.run["table_states"]["items"]["reconciled_rows"]) for d, o in fifth.runs.items()}
    assert removed == {"t1": 1, "t2": 0, "t3": 0}, removed
    _equal_per_database(env, names)
    assert (6, "t2-6") in _merged(env)[names["t2"]]


def test_replicate_validate_compares_each_merged_database(env, capsys, tmp_path) -> None:
    names = _databases(env)
    out_json = tmp_path / "run.json"
    urls = ["--source", env.source_url, "--target", env.target_url]
    merge = ["--database-mapping", "merge", "--databases", f"{env.database}_t*"]
    run = ["--home", str(env.home), "run", *urls, "--tables", "items", "--mode", "full", *merge]
    assert cli.main([*run, "--json", str(out_json)]) == 0, capsys.readouterr().out
    assert list(json.loads(out_json.read_text())["runs"]) == list(names.values())
    _equal_per_database(env, names)
    validate = ["--home", str(env.home), "validate", *urls, "--tables", "items", *merge]
    assert cli.main(validate) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{names[s]}\.items\s.*\sok\s*$", out, re.M) for s in SIZES), out
    sf = env.snowflake()
    try:
        sf.cursor().execute(
            f'DELETE FROM "ANALYTICS"."{env.schema}"."ITEMS" WHERE "_ASR_SOURCE_DATABASE" = %s AND "ID" = 1',
            (names["t3"],),
        )
    finally:
        sf.close()
    assert cli.main(validate) == 1
    out = capsys.readouterr().out
    assert re.search(rf"^{names['t1']}\.items\s.*\sok\s*$", out, re.M), out
    assert re.search(rf"^{names['t2']}\.items\s.*\sok\s*$", out, re.M), out
    assert re.search(rf"^{names['t3']}\.items\s.*count differs\s*$", out, re.M), out


def _refused(stack: Any, request: dict[str, Any], match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        stack.invoke("SchedulerFunction", request)


def test_what_a_merge_request_refuses(env) -> None:
    names = _databases(env)
    stack = env.start_stack()
    both = [names["t1"], names["t2"]]
    base = {"tables": "items", "mode": "full", "databases": both, "database_mapping": "merge"}
    _refused(stack, {**base, "mode": "cdc"}, r"not supported with mode 'cdc'")
    history = {**base, "table_options": {"items": {"history": True}}}
    _refused(stack, history, r"history mode is not supported with database_mapping 'merge'")
    env.sql(f"CREATE TABLE `{names['t1']}`.nokey (v INT)", f"CREATE TABLE `{names['t2']}`.nokey (v INT)")
    _refused(stack, {**base, "tables": "nokey"}, r"table 'nokey' has no primary or unique key.*'merge'")
    # the tables differ between the databases: refused, naming the table, the databases and the column
    env.sql(f"ALTER TABLE `{names['t2']}`.items ADD COLUMN extra INT")
    _refused(stack, base, rf"table 'items' differs between databases '{names['t1']}' and '{names['t2']}'.*'extra'")
    env.sql(f"ALTER TABLE `{names['t2']}`.items DROP COLUMN extra")
    # once merged, a whole copy of the stack's own database's items into the same table is refused
    done = stack.run(base, workers=2)
    assert done.ok
    env.sql(TABLE)
    _refused(stack, {"tables": "items", "mode": "full"}, r"holds the rows of databases merged into it")
    # nor does cdc of it stream into the merged table
    _refused(stack, {"tables": "items", "mode": "cdc"}, r"holds the rows of databases merged into it")
    # a column added in t1 alone: a merge of t1 alone is compared with t2, merged into the table before
    env.sql(f"ALTER TABLE `{names['t1']}`.items ADD COLUMN extra INT")
    alone = {**base, "databases": [names["t1"]]}
    _refused(stack, alone, rf"table 'items' differs between databases '{names['t1']}' and '{names['t2']}'.*'extra'")
    _equal_per_database(env, {k: v for k, v in names.items() if k in ("t1", "t2")})
