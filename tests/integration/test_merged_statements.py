"""The statements of a merged table (``target/merged_sql.py``) run against the emulator on hand-made load
tables: three databases' rows in one shared table; a full copy of one database replaces its rows and
leaves the others' as they were; an incremental merge keys on the database too; a load table that lost
its validated rows fails the replacement and changes nothing."""

from __future__ import annotations

import pytest

from aurora_replication import typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.target.snowflake import merged_sql, sql

PLAN = TablePlan(
    table="items",
    target_table="ITEMS",
    columns=[
        Column(name="id", kind=typemap.INTEGER, precision=10, scale=0, target="ID"),
        Column(name="name", kind=typemap.TEXT, warehouse_type="VARCHAR(40)", target="NAME"),
    ],
    key=["id"],
    mode="full",
)
LOAD = "_ASR_LOAD_ITEMS"
DATABASES = ("tenant_a", "tenant_b", "tenant_c")


@pytest.fixture
def sf(env):
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute("CREATE DATABASE IF NOT EXISTS ANALYTICS")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS ANALYTICS.{env.schema}")
    cur.execute(f"USE SCHEMA ANALYTICS.{env.schema}")
    cur.execute(merged_sql.create_shared_table(PLAN))
    yield cur
    conn.close()


def _load(cur, attempt: str, rows: list[tuple[int, str]]) -> sql.Attempts:
    """A fresh load table holding ``rows`` as chunk 0's ``attempt``, and the attempts that validate it."""
    cur.execute(sql.drop_table(LOAD))
    cur.execute(sql.create_load_table(PLAN, LOAD))
    for id_, name in rows:
        cur.execute(
            f'INSERT INTO "{LOAD}" ("ID", "NAME", "_ASR_CHUNK", "_ASR_ATTEMPT") VALUES (%s, %s, 0, %s)',
            (id_, name, attempt),
        )
    return sql.attempts_inline("tok", [(0, attempt)])


def _replace(cur, database: str, rows: list[tuple[int, str]], attempt: str = "a1") -> None:
    attempts = _load(cur, attempt, rows)
    statement = merged_sql.replace_database_rows(PLAN, LOAD, attempts, database)
    cur.execute(statement, (*attempts.params, *attempts.params, *attempts.params, len(rows)))


def _rows(cur) -> dict[str, list[tuple[int, str]]]:
    cur.execute('SELECT "_ASR_SOURCE_DATABASE", "ID", "NAME" FROM "ITEMS" ORDER BY 1, 2')
    out: dict[str, list[tuple[int, str]]] = {}
    for db, id_, name in cur.fetchall():
        out.setdefault(db, []).append((int(id_), name))
    return out


def _initial(cur) -> dict[str, list[tuple[int, str]]]:
    expected = {db: [(i, f"{db}-{i}") for i in range(1, 5)] for db in DATABASES}
    for db, rows in expected.items():
        _replace(cur, db, rows)
    return expected


def test_full_copies_of_three_databases_share_one_table_by_key_and_database(sf) -> None:
    expected = _initial(sf)
    assert _rows(sf) == expected  # the same source keys 1..4 three times, told apart by the database
    for db in DATABASES:
        sf.execute(merged_sql.database_row_count(PLAN.target_table, db))
        assert sf.fetchone()[0] == 4


def test_a_full_copy_of_one_database_replaces_only_its_rows(sf) -> None:
    expected = _initial(sf)
    # tenant_b: id 1 changed, id 2 and 4 gone, id 3 as it was, id 9 new
    new_b = [(1, "b-changed"), (3, "tenant_b-3"), (9, "b-new")]
    _replace(sf, "tenant_b", new_b, attempt="a2")
    expected["tenant_b"] = new_b
    assert _rows(sf) == expected
    # the same copy again changes nothing
    _replace(sf, "tenant_b", new_b, attempt="a3")
    assert _rows(sf) == expected
    # an empty copy of tenant_c empties tenant_c only
    _replace(sf, "tenant_c", [], attempt="a4")
    del expected["tenant_c"]
    assert _rows(sf) == expected


def test_a_replacement_whose_load_table_lost_its_rows_fails_and_changes_nothing(sf) -> None:
    expected = _initial(sf)
    attempts = _load(sf, "a2", [(1, "x"), (2, "y")])
    sf.execute(f'DELETE FROM "{LOAD}" WHERE "ID" = 2')  # a concurrent finaliser's doing, say
    statement = merged_sql.replace_database_rows(PLAN, LOAD, attempts, "tenant_a")
    with pytest.raises(Exception, match=sql.GUARD_TEXT):
        sf.execute(statement, (*attempts.params, *attempts.params, *attempts.params, 2))
    assert _rows(sf) == expected


def test_an_incremental_merge_keys_on_the_database_too(sf) -> None:
    expected = _initial(sf)
    attempts = _load(sf, "i1", [(2, "a-two"), (7, "a-seven")])
    sf.execute(merged_sql.merge_database_rows(PLAN, LOAD, attempts, "tenant_a"), attempts.params)
    expected["tenant_a"] = [(1, "tenant_a-1"), (2, "a-two"), (3, "tenant_a-3"), (4, "tenant_a-4"), (7, "a-seven")]
    assert _rows(sf) == expected  # tenant_b's and tenant_c's id 2 untouched, no id 7 of theirs


def test_two_databases_replaced_at_once_keep_each_others_rows(env, sf) -> None:
    """Two databases' full copies publishing into the shared table at the same moment, several times over:
    each MERGE takes the table's lock, and each keeps to its database's rows, so neither loses the other's."""
    import threading

    _initial(sf)
    rounds = 4
    errors: list[BaseException] = []

    def replace(database: str) -> None:
        conn = env.snowflake()
        try:
            cur = conn.cursor()
            cur.execute(f"USE SCHEMA ANALYTICS.{env.schema}")
            load = f"_ASR_LOAD_{database.upper()}"
            cur.execute(sql.create_load_table(PLAN, load))
            for r in range(rounds):
                attempt = f"r{r}"
                rows = [(i, f"{database}-{r}-{i}") for i in range(1, 6 + r)]
                for id_, name in rows:
                    cur.execute(
                        f'INSERT INTO "{load}" ("ID", "NAME", "_ASR_CHUNK", "_ASR_ATTEMPT") VALUES (%s, %s, 0, %s)',
                        (id_, name, attempt),
                    )
                attempts = sql.attempts_inline("tok", [(0, attempt)])
                statement = merged_sql.replace_database_rows(PLAN, load, attempts, database)
                cur.execute(statement, (*attempts.params, *attempts.params, *attempts.params, len(rows)))
        except BaseException as e:  # reported by the test below
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=replace, args=(db,)) for db in ("tenant_a", "tenant_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    last = rounds - 1
    got = _rows(sf)
    for db in ("tenant_a", "tenant_b"):
        assert got[db] == [(i, f"{db}-{last}-{i}") for i in range(1, 6 + last)], db
    assert got["tenant_c"] == [(i, f"tenant_c-{i}") for i in range(1, 5)]


def test_a_column_dropped_in_mysql_is_null_in_the_replaced_databases_rows_only(sf) -> None:
    _initial(sf)
    sf.execute('ALTER TABLE "ITEMS" ADD COLUMN "OLD" VARCHAR(10)')
    sf.execute('UPDATE "ITEMS" SET "OLD" = \'kept\'')
    attempts = _load(sf, "d1", [(1, "a-one"), (2, "a-two")])
    statement = merged_sql.replace_database_rows(PLAN, LOAD, attempts, "tenant_a", dropped=["OLD"])
    sf.execute(statement, (*attempts.params, *attempts.params, *attempts.params, 2))
    sf.execute('SELECT "_ASR_SOURCE_DATABASE", COUNT(*), COUNT("OLD") FROM "ITEMS" GROUP BY 1 ORDER BY 1')
    assert [tuple(r) for r in sf.fetchall()] == [("tenant_a", 2, 0), ("tenant_b", 4, 4), ("tenant_c", 4, 4)]
