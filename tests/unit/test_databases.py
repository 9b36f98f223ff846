"""Several source databases in one request: patterns, the mapping to Snowflake names, the runs' ids, and
the request's checks (pipeline/databases.py, models.RunRequest)."""

from __future__ import annotations

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import Scope
from aurora_replication.models import RUN_ID_PATTERN, parse_run_request
from aurora_replication.pipeline import databases

SERVER = ["billing", "shop", "tenant_1", "tenant_10", "tenant_2", "tenant_x.y", "tenants"]
BASE = Scope.of("shop", "analytics", "public", "upper")


def test_patterns_match_whole_names_with_star_and_question_mark_only() -> None:
    assert databases.match_databases(["tenant_*"], SERVER) == ["tenant_1", "tenant_10", "tenant_2", "tenant_x.y"]
    assert databases.match_databases(["tenant_?"], SERVER) == ["tenant_1", "tenant_2"]
    # '.' is itself, not any character; names and patterns together give each database once, in the server's order
    assert databases.match_databases(["tenant_x.y", "shop", "tenant_x?y"], SERVER) == ["shop", "tenant_x.y"]
    assert not databases.pattern_regex("tenant_x.y").fullmatch("tenant_xzy")


@pytest.mark.parametrize(
    ("requested", "error"),
    [
        (["shop", "nope"], r"unknown database\(s\) 'nope' on the source server; available: billing, shop"),
        (["zz*"], r"database pattern\(s\) 'zz\*' match no database"),
        (["mysql"], r"'mysql' are the server's own"),
        (["Shop"], r"unknown database\(s\) 'Shop'"),  # exact case, as MySQL names them on Linux
    ],
)
def test_a_database_that_is_not_there_refuses_the_request(requested: list[str], error: str) -> None:
    with pytest.raises(BadInputError, match=error):
        databases.match_databases(requested, SERVER)


def test_schema_and_prefix_mappings() -> None:
    schema = databases.scope_for(BASE, "tenant_1", "schema")
    assert (schema.source_database, schema.target_database, schema.target_schema) == (
        "tenant_1",
        "ANALYTICS",
        "TENANT_1",
    )
    assert schema.target_table("orders") == "ORDERS" and schema.table_prefix == ""
    prefix = databases.scope_for(BASE, "tenant_1", "prefix")
    assert (prefix.target_schema, prefix.target_table("orders")) == ("PUBLIC", "TENANT_1__ORDERS")
    # the prefix is part of the state key (its target table) and recorded with the run's scope
    assert prefix.key("orders").pk.endswith("#orders>TENANT_1__ORDERS")
    assert Scope.from_item(prefix.to_item()) == prefix
    assert "table_prefix" not in schema.to_item()  # a scope of one database is recorded as before


def test_the_merge_mapping_shares_each_table_between_the_databases() -> None:
    scopes = {d: databases.scope_for(BASE, d, "merge") for d in ("tenant_1", "tenant_2")}
    one, two = scopes["tenant_1"], scopes["tenant_2"]
    assert (one.target_schema, one.target_table("orders"), one.mapping) == ("PUBLIC", "ORDERS", "merge")
    assert one.target_table("orders") == two.target_table("orders")
    # state stays per source database: two keys for the one shared table
    assert one.key("orders").pk != two.key("orders").pk
    assert Scope.from_item(one.to_item()) == one
    # each database's items into the one ITEMS: not a clash under merge
    where = databases.target_names(scopes, {"tenant_1": ["items"], "tenant_2": ["items"]})
    assert set(where.values()) == {("PUBLIC", "ITEMS")}


def test_two_tables_on_one_snowflake_name_refuse_the_request() -> None:
    scopes = {d: databases.scope_for(BASE, d, "prefix") for d in ("a_", "a")}
    # a_.c and a._c would both be A___C
    with pytest.raises(BadInputError, match=r"tables a_\.c and a\._c both map to PUBLIC\.A___C"):
        databases.target_names(scopes, {"a_": ["c"], "a": ["_c"]})
    upper = {d: databases.scope_for(BASE, d, "schema") for d in ("Shop", "shop")}
    with pytest.raises(BadInputError, match=r"both map to SHOP\.ORDERS"):
        databases.target_names(upper, {"Shop": ["orders"], "shop": ["orders"]})
    long = {"d" * 40: databases.scope_for(BASE, "d" * 40, "prefix")}
    with pytest.raises(BadInputError, match="use database_mapping 'schema'"):
        databases.target_names(long, {"d" * 40: ["t" * 30]})
    fine = databases.target_names(scopes, {"a_": ["c"], "a": ["c"]})
    assert fine == {("a_", "c"): ("PUBLIC", "A___C"), ("a", "c"): ("PUBLIC", "A__C")}


def test_run_ids_of_the_databases() -> None:
    assert databases.child_run_id("r1", "tenant_1") == "r1-tenant_1"
    odd = databases.child_run_id("r1", "tenant x.y")
    assert RUN_ID_PATTERN.match(odd) and odd.startswith("r1-") and odd != databases.child_run_id("r1", "tenant x.z")
    long = databases.child_run_id("r" * 64, "tenant_1")
    assert RUN_ID_PATTERN.match(long) and len(long) == 64


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"tables": "*", "databases": ["a"]}, "databases needs database_mapping"),
        ({"tables": "*", "database_mapping": "schema"}, "database_mapping goes with databases"),
        (
            {"tables": "*", "databases": ["a"], "database_mapping": "merge", "mode": "cdc"},
            "not supported with mode 'cdc'",
        ),
        (
            {"tables": "*", "databases": ["a"], "database_mapping": "merge", "mode": "cdc"},
            "'merge' is not supported with mode 'cdc'",
        ),
        ({"tables": "*", "databases": ["a", "a"], "database_mapping": "schema"}, "database 'a' is listed twice"),
        ({"tables": "*", "databases": [], "database_mapping": "schema"}, "databases"),
        ({"tables": "*", "databases": ["a"], "database_mapping": "tables"}, "database_mapping"),
    ],
)
def test_the_request_fields(request_: dict[str, object], error: str) -> None:
    with pytest.raises(BadInputError, match=error):
        parse_run_request(request_, "auto")


def test_cdc_over_several_databases_is_a_request() -> None:
    for mapping in ("schema", "prefix"):
        request = parse_run_request(
            {"tables": "*", "databases": ["a", "b*"], "database_mapping": mapping, "mode": "cdc"}, "auto"
        )
        assert request.mode == "cdc" and request.databases == ["a", "b*"]


def test_databases_as_the_schedule_gives_them() -> None:
    request = parse_run_request({"tables": "*", "databases": "tenant_*, shop", "database_mapping": "prefix"}, "auto")
    assert request.databases == ["tenant_*", "shop"]


def test_the_schema_statements_quote_the_name() -> None:
    from aurora_replication.target.snowflake import sql

    assert sql.create_schema('TENANT"7') == 'CREATE SCHEMA IF NOT EXISTS "TENANT""7"'
    assert sql.use_schema("TENANT_7") == 'USE SCHEMA "TENANT_7"'
