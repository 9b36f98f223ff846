"""MySQL's Sakila sample database, a schema written by others, copied exactly in full, incremental and cdc.

The fixture (tests/fixtures/sakila/, its origin, licence and edits in each file's header) keeps every table,
view, trigger, procedure and function, and a slice of the rows: a GEOMETRY column with a SPATIAL index,
ENUM, SET, YEAR, a BLOB (a PNG), TIMESTAMP ... ON UPDATE CURRENT_TIMESTAMP on every table but one, composite
primary keys, small unsigned keys, a FULLTEXT table filled by triggers and seven views. Every table is
compared with MySQL value by value after each run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aurora_replication.errors import BadInputError
from compare import assert_same
from sql_script import statements

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sakila"
TABLES = [
    "actor",
    "address",
    "category",
    "city",
    "country",
    "customer",
    "film",
    "film_actor",
    "film_category",
    "film_text",
    "inventory",
    "language",
    "payment",
    "rental",
    "staff",
    "store",
]
VIEWS = [
    "actor_info",
    "customer_list",
    "film_list",
    "nicer_but_slower_film_list",
    "sales_by_film_category",
    "sales_by_store",
    "staff_list",
]
CHUNK_ROWS = 300  # several chunks for the larger tables, composite and unsigned keys among them

# every kind of column Sakila has, changed; deletes, inserts, a composite key changed, and triggers firing
CHANGES = [
    "UPDATE address SET location = ST_GeomFromText('POINT(-73.9857 40.7484)'), address2 = 'Suite 5' "
    "WHERE address_id IN (1, 2, 3)",
    "INSERT INTO address (address_id, address, district, city_id, postal_code, phone, location) VALUES "
    "(9001, '1 New Road', 'Nowhere', 300, '12345', '555', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 1,0 0))'))",
    "UPDATE film SET rating = 'NC-17', special_features = 'Trailers,Behind the Scenes', release_year = 1999, "
    "title = CONCAT(title, ' II') WHERE film_id IN (1, 2)",  # upd_film rewrites film_text
    "UPDATE film SET special_features = NULL, rating = NULL, release_year = 2155, description = NULL WHERE film_id = 3",
    "UPDATE film SET special_features = '', release_year = 1901, description = 'café, \"q\"\\nline' WHERE film_id = 4",
    "INSERT INTO film (film_id, title, description, release_year, language_id, rating, special_features) VALUES "
    "(1001, 'NEW FILM', 'déjà vu', 2024, 1, 'R', 'Commentaries,Deleted Scenes')",  # ins_film adds to film_text
    "INSERT INTO film (film_id, title, description, language_id) VALUES (1002, 'SHORT LIVED', 'x', 2)",
    "DELETE FROM film WHERE film_id = 1002",  # del_film removes it from film_text
    "UPDATE staff SET picture = UNHEX('00FF000D0A5C'), password = NULL WHERE staff_id = 1",
    "UPDATE staff SET picture = REPEAT(UNHEX('89504E47'), 3000), email = NULL WHERE staff_id = 2",
    "DELETE FROM payment WHERE payment_id IN (SELECT * FROM (SELECT payment_id FROM payment ORDER BY payment_id "
    "LIMIT 5) first_five)",
    "DELETE FROM film_actor WHERE actor_id = 1 AND film_id = 1",
    "INSERT INTO film_actor (actor_id, film_id) VALUES (1, 1001), (2, 1001)",
    "UPDATE film_category SET category_id = 2 WHERE film_id = 1",  # a key column: in MySQL, delete + insert
    "INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date, staff_id) VALUES "
    "(20000, '2024-02-29 23:59:59', 1, 1, NULL, 1)",
    "INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date) VALUES "
    "(20000, 1, 1, 20000, 999.99, NOW())",
    "UPDATE rental SET return_date = NULL WHERE rental_id = (SELECT * FROM (SELECT MIN(rental_id) FROM rental) r)",
    "UPDATE customer SET active = 0, email = NULL WHERE customer_id = 1",
    "UPDATE actor SET first_name = 'ZOË' WHERE actor_id = 2",
    "INSERT INTO language (name) VALUES ('Klingon')",
    "UPDATE country SET country = 'Türkiye' WHERE country = 'Turkey'",
    "UPDATE inventory SET store_id = 2 WHERE inventory_id = 1",
]


def load_sakila(env) -> None:
    for name in ("sakila-schema.sql", "sakila-data.sql"):
        env.sql(*statements((FIXTURE / name).read_text()))
    env.mysql.commit()
    with env.mysql.cursor() as cur:
        cur.execute("SHOW FULL TABLES")
        kinds = dict(cur.fetchall())
        cur.execute("SELECT COUNT(*) FROM film_text")  # filled by the ins_film trigger as film loaded
        assert cur.fetchone()[0] == 200
    assert sorted(t for t, k in kinds.items() if k == "BASE TABLE") == TABLES
    assert sorted(t for t, k in kinds.items() if k == "VIEW") == VIEWS


def assert_every_table_same(env, tables: list[str] = TABLES) -> None:
    for table in tables:
        assert_same(env, table)


def published_ok(outcome, tables: list[str] = TABLES) -> None:
    states = outcome.run["table_states"]
    assert sorted(states) == TABLES, sorted(states)  # every base table, no view
    for table in tables:
        assert states[table]["status"] == "published", (table, states[table])
        assert states[table]["validation"] == "ok", (table, states[table])


def snowflake_keys(env, table: str, column: str) -> set[int]:
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT "{column.upper()}" FROM "{table.upper()}"')
        return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def test_full_then_incremental_then_reconcile(env):
    load_sakila(env)
    stack = env.start_stack()
    # views are not copied: '*' leaves them out, and one named is refused as a view
    with pytest.raises(BadInputError, match="'film_list' in database '.*' is a view, and views are not copied"):
        stack.invoke("SchedulerFunction", {"tables": "actor,film_list", "mode": "full"})

    full = stack.run({"tables": "*", "mode": "full", "chunk_rows": CHUNK_ROWS}, workers=2)
    assert full.ok
    published_ok(full)
    assert int(full.run["table_states"]["film_actor"]["chunk_count"]) > 1
    assert_every_table_same(env)

    with env.mysql.cursor() as cur:
        cur.execute("SELECT payment_id FROM payment ORDER BY payment_id LIMIT 5")
        deleted_payments = {r[0] for r in cur.fetchall()}
    env.sql(*CHANGES)
    env.mysql.commit()
    incremental = stack.run({"tables": "*", "mode": "incremental", "chunk_rows": CHUNK_ROWS}, workers=2)
    states = incremental.run["table_states"]
    # film_text has no watermark column: refused with the reason and the fix, the other tables go on
    assert states["film_text"]["status"] == "failed"
    assert "has no watermark column" in states["film_text"]["reason"]
    published_ok(incremental, [t for t in TABLES if t != "film_text"])
    # an incremental run cannot see deletes (docs/run-requests.md): only the deleted keys are left over
    unchanged_keys = {"payment", "film_actor", "film_category", "film_text"}
    assert_every_table_same(env, [t for t in TABLES if t not in unchanged_keys])
    assert deleted_payments <= snowflake_keys(env, "payment", "payment_id")

    reconcile = stack.run({"tables": "*", "mode": "reconcile", "chunk_rows": CHUNK_ROWS}, workers=2)
    assert reconcile.ok
    assert {t: s["reconciled_rows"] for t, s in reconcile.run["table_states"].items() if s.get("reconciled_rows")} == {
        "payment": 5,
        "film_actor": 1,
        "film_category": 1,
    }
    # auto: incremental where it can, film_text (no watermark) in full
    auto = stack.run({"tables": "*", "mode": "auto", "chunk_rows": CHUNK_ROWS}, workers=2)
    published_ok(auto)
    assert auto.run["table_states"]["film_text"]["mode"] == "full"
    assert_every_table_same(env)


def test_cdc_initial_copy_then_changes(env):
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    load_sakila(env)
    stack = env.start_stack()
    request = {"tables": "*", "mode": "cdc", "chunk_rows": CHUNK_ROWS}
    first = stack.run(request, workers=2)
    assert first.ok
    published_ok(first)
    assert_every_table_same(env)

    env.sql(*CHANGES)
    env.mysql.commit()
    second = stack.run(request, workers=2)
    assert second.ok, second.run["table_states"]
    states = second.run["table_states"]
    assert {t for t, s in states.items() if s["changes"]} == set(TABLES) - {"category", "city", "store"}
    assert_every_table_same(env)
    # a cdc window is not compared by the run; `replicate validate` compares, and agrees
    load_settings.cache_clear()
    reports = validate.validate_tables(Services.from_settings(load_settings()), ["*"])
    assert {r["table"]: r["result"] for r in reports} == dict.fromkeys(TABLES, "ok")

    third = stack.run(request, workers=2)  # nothing new: an empty window
    assert third.ok and not any(s["changes"] for s in third.run["table_states"].values())
    assert_every_table_same(env)
