"""A table's state key (``ledger.keys.TableKey``): the source database and table and the target database,
schema and table, each part written so that no two different tables share a key."""

from __future__ import annotations

import pytest

from aurora_replication.ledger.keys import Scope, TableKey

SHOP = Scope.of("shop", "analytics", "public", "upper")


def test_the_key_names_source_and_target() -> None:
    key = SHOP.key("orders")
    assert key.pk == "TABLE#shop>ANALYTICS.PUBLIC#orders>ORDERS"
    assert key.catalog_sk == key.pk
    assert key.item("WATERMARK") == {"pk": key.pk, "sk": "WATERMARK"}
    assert key.target_table == "ORDERS"
    assert "source database 'shop' into ANALYTICS.PUBLIC.ORDERS" in key.describe()


@pytest.mark.parametrize(
    "a, b",
    [
        (("shop", "DB", "S"), ("shop2", "DB", "S")),  # another source database
        (("shop", "DB", "S"), ("shop", "DB", "T")),  # another target schema
        (("shop", "DB", "S"), ("shop", "DB2", "S")),  # another target database
        (("a.b", "DB", "S"), ("a", "B", "S")),  # separators inside names are not separators
        (("shop", "A.B", "C"), ("shop", "A", "B.C")),
        (("s>x", "DB", "S"), ("s", "X", "S")),
        (("shop", "DB", "S#t"), ("shop", "DB", "S")),
    ],
)
def test_different_scopes_never_share_a_key(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    one, other = Scope.of(*a, "upper"), Scope.of(*b, "upper")
    assert one.key("t").pk != other.key("t").pk
    # the health check lists a scope's tables by its prefix: another scope's tables are not among them
    assert not one.key("t").pk.startswith(f"TABLE#{other.text}#")
    assert not other.key("t").pk.startswith(f"TABLE#{one.text}#")


def test_table_names_with_separators_stay_apart() -> None:
    keys = {SHOP.key(t).pk for t in ("a#b", "a", "a>B", "a.b", "a%23b")}
    assert len(keys) == 5
    assert SHOP.key("a#b").pk == "TABLE#shop>ANALYTICS.PUBLIC#a%23b>A%23B"


def test_the_target_table_name_rule_is_part_of_the_key() -> None:
    upper = Scope.of("shop", "DB", "S", "upper").key("orders")
    preserve = Scope.of("shop", "DB", "S", "preserve").key("orders")
    assert (upper.target_table, preserve.target_table) == ("ORDERS", "orders")
    assert upper.pk != preserve.pk


def test_snowflake_names_resolve_as_the_session_does() -> None:
    # a plain name is an unquoted identifier (upper case in Snowflake); a quoted one is kept as written
    assert Scope.of("shop", "analytics", "Public", "upper") == Scope.of("shop", "ANALYTICS", "PUBLIC", "upper")
    assert Scope.of("shop", '"Mixed"', "my schema", "upper").to_item()["target_database"] == "Mixed"
    assert Scope.of("shop", "db", "my schema", "upper").target_schema == "my schema"
    # MySQL's database name is kept as it is (case-sensitive on Aurora)
    assert Scope.of("Shop", "db", "s", "upper").key("t").pk != Scope.of("shop", "db", "s", "upper").key("t").pk


def test_a_run_records_its_scope_and_a_run_without_one_keeps_the_unscoped_key() -> None:
    item = {"table": "orders", "scope": SHOP.to_item()}
    assert TableKey.of_run_table(item) == SHOP.key("orders")
    assert Scope.from_item(SHOP.to_item()) == SHOP
    legacy = TableKey.of_run_table({"table": "orders"})
    assert legacy.scope is None and legacy.pk == "TABLE#orders"
    assert SHOP.key("orders").unscoped() == legacy
