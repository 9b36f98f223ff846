"""The local stack's moto parses an UpdateExpression once and makes its expression-only checks once
(``local/moto_server.install_update_expression_cache``), with exactly the results moto gives
otherwise: the same items, ReturnValues, errors and failed conditions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from state_table import STATE_TABLE

from aurora_replication_dev.local import moto_server

KEY = {"pk": {"S": "P"}, "sk": {"S": "S"}}
SEED = {
    **KEY,
    "n": {"N": "5"},
    "tags": {"SS": ["a", "b", "c"]},
    "nums": {"NS": ["1", "2"]},
    "lst": {"L": [{"S": "x"}, {"S": "y"}, {"S": "z"}]},
    "m": {"M": {"inner": {"M": {"deep": {"N": "1"}}}, "s": {"S": "v"}}},
    "state": {"S": "RUN"},
}

# (UpdateExpression, ConditionExpression or None, names, values, ReturnValues)
UPDATES: list[tuple[str, str | None, dict[str, str], dict[str, Any], str]] = [
    ("SET a = :v", None, {}, {":v": {"S": "one"}}, "ALL_NEW"),
    ("SET a = :v", None, {}, {":v": {"S": "two"}}, "UPDATED_OLD"),  # the same expression, another value
    (
        "ADD n :d, nums :ns DELETE tags :t SET at = :now",
        None,
        {},
        {":d": {"N": "3"}, ":ns": {"NS": ["7"]}, ":t": {"SS": ["b"]}, ":now": {"N": "100"}},
        "UPDATED_NEW",
    ),
    (
        "ADD n :d, nums :ns DELETE tags :t SET at = :now",
        None,
        {},
        {":d": {"N": "-1"}, ":ns": {"NS": ["8"]}, ":t": {"SS": ["c"]}, ":now": {"N": "101"}},
        "ALL_OLD",
    ),
    (
        "SET m.inner.deep = m.inner.deep + :one, m.#s = :s",
        None,
        {"#s": "s"},
        {":one": {"N": "1"}, ":s": {"S": "w"}},
        "ALL_NEW",
    ),
    (
        "SET lst = list_append(lst, :more), c = if_not_exists(c, :zero)",
        None,
        {},
        {":more": {"L": [{"S": "q"}]}, ":zero": {"N": "0"}},
        "UPDATED_NEW",
    ),
    (
        "SET lst = list_append(lst, :more), c = if_not_exists(c, :zero)",
        None,
        {},
        {":more": {"L": [{"N": "9"}]}, ":zero": {"N": "4"}},
        "ALL_NEW",
    ),
    ("SET lst[1] = :v REMOVE a, m.s", None, {}, {":v": {"S": "Y"}}, "ALL_NEW"),
    ("REMOVE lst[0], lst[2]", None, {}, {}, "UPDATED_OLD"),
    ("SET #st = :new", "#st = :old", {"#st": "state"}, {":new": {"S": "DONE"}, ":old": {"S": "RUN"}}, "ALL_NEW"),
    (
        "SET #st = :new",
        "#st = :old",
        {"#st": "state"},
        {":new": {"S": "AGAIN"}, ":old": {"S": "RUN"}},
        "ALL_NEW",
    ),  # fails now
    (
        "SET #st = :new",
        "#st = :old",
        {"#st": "other"},
        {":new": {"S": "X"}, ":old": {"S": "RUN"}},
        "NONE",
    ),  # other names
    (
        "ADD k :one",
        "attribute_exists(pk) AND (attribute_not_exists(r) OR r = :r)",
        {},
        {":one": {"N": "1"}, ":r": {"N": "0"}},
        "ALL_NEW",
    ),
    (
        "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(15)),
        "attribute_exists(pk)",
        {f"#f{i}": f"field{i}" for i in range(15)},
        {f":f{i}": {"S": f"v{i}"} for i in range(15)},
        "ALL_NEW",
    ),
    (
        "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(15)),
        "attribute_exists(pk)",
        {f"#f{i}": f"field{i}" for i in range(15)},
        {f":f{i}": {"N": str(i)} for i in range(15)},
        "UPDATED_OLD",
    ),
]

INVALID: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("SET a = :v SET b = :v", {}, {":v": {"N": "1"}}),  # two SET clauses
    ("SET a = :v, a = :w", {}, {":v": {"N": "1"}, ":w": {"N": "2"}}),  # the same path twice
    ("SET m.inner = :v, m.inner.deep = :w", {}, {":v": {"N": "1"}, ":w": {"N": "2"}}),  # overlapping paths
    ("SET #k = :v", {"#k": "pk"}, {":v": {"S": "other"}}),  # a key attribute
    ("SET sk = :v", {}, {":v": {"S": "other"}}),
    ("SET a = :missing, b = :v", {}, {":v": {"N": "1"}}),  # an undefined value
    ("SET #x = :v", {}, {":v": {"N": "1"}}),  # an undefined name
    ("SET a = nope + :v", {}, {":v": {"N": "1"}}),  # a path that is not in the item
    ("SET n = n + :v", {}, {":v": {"S": "text"}}),  # arithmetic on a string
    ("SET lst = list_append(n, :v)", {}, {":v": {"L": []}}),
    ("SET a = = :v", {}, {":v": {"N": "1"}}),  # does not parse
    ("SET size = :v", {}, {":v": {"N": "1"}}),  # a reserved word
    ("ADD tags :v", {}, {":v": {"N": "1"}}),  # a number added to a string set
]


@pytest.fixture
def unpatched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's own UpdateItem during the test and after it, whatever the test installs."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    monkeypatch.setattr(UpdateExpressionParser, "make", UpdateExpressionParser.__dict__["make"])
    monkeypatch.setattr(validators, "deepcopy", validators.deepcopy)
    monkeypatch.setattr(validators.Validator, "validate", validators.Validator.validate)
    monkeypatch.setattr(DepthFirstTraverser, "nodes_to_be_processed", DepthFirstTraverser.nodes_to_be_processed)
    monkeypatch.setattr(DepthFirstTraverser, "process", DepthFirstTraverser.process)
    monkeypatch.setattr(moto_server, "_update_cache_installed", False)
    monkeypatch.setattr(moto_server, "_parsed_updates", {})
    monkeypatch.setattr(moto_server, "_static_passed", set())
    yield


def _client() -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(**STATE_TABLE)
    return client


def _update(
    client: Any,
    key: dict[str, Any],
    expression: str,
    condition: str | None,
    names: dict[str, str],
    values: dict[str, Any],
    returns: str = "ALL_NEW",
    **extra: Any,
) -> Any:
    request: dict[str, Any] = {
        "TableName": "state",
        "Key": key,
        "UpdateExpression": expression,
        "ReturnValues": returns,
        **extra,
    }
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    try:
        response = client.update_item(**request)
    except ClientError as e:
        return ("error", e.response["Error"].get("Code"), e.response["Error"].get("Message"), e.response.get("Item"))
    except Exception as e:  # noqa: BLE001 - moto itself fails on some invalid requests (an undefined name)
        return ("error", type(e).__name__, str(e), None)
    return ("ok", response.get("Attributes"))


def _scenario() -> list[Any]:
    """Every update and invalid update above, on a fresh moto: each answer, and the items after."""
    with mock_aws():
        client = _client()
        client.put_item(TableName="state", Item=SEED)
        seen: list[Any] = []
        for expression, condition, names, values, returns in UPDATES:
            seen.append(_update(client, KEY, expression, condition, names, values, returns))
            seen.append(client.get_item(TableName="state", Key=KEY)["Item"])
        for expression, names, values in INVALID:
            seen.append(_update(client, KEY, expression, None, names, values))
            seen.append(client.get_item(TableName="state", Key=KEY)["Item"])
        # a new item: the update creates it (moto validates the expression twice on this path)
        new = {"pk": {"S": "N"}, "sk": {"S": "1"}}
        seen.append(
            _update(
                client, new, "ADD n :d SET lst = if_not_exists(lst, :l)", None, {}, {":d": {"N": "2"}, ":l": {"L": []}}
            )
        )
        seen.append(_update(client, {"pk": {"S": "N"}, "sk": {"S": "2"}}, "SET a = nope", None, {}, {}))
        # a failed condition, with and without the old item in the error
        for on_failure in ("ALL_OLD", "NONE"):
            seen.append(
                _update(
                    client,
                    KEY,
                    "SET a = :v",
                    "attribute_not_exists(pk)",
                    {},
                    {":v": {"N": "1"}},
                    ReturnValuesOnConditionCheckFailure=on_failure,
                )
            )
        seen.append(client.scan(TableName="state")["Items"])
        return seen


def test_updates_give_what_moto_gives(unpatched: None) -> None:
    before = _scenario()
    moto_server.install_update_expression_cache()
    after = _scenario()
    again = _scenario()  # every expression cached now, and every check that passed
    assert after == before
    assert again == before
    errors = [s for s in before if isinstance(s, tuple) and s[0] == "error"]
    assert len(errors) >= len(INVALID) + 3, "the invalid updates and the failed conditions should fail"
    assert moto_server._parsed_updates and moto_server._static_passed


def test_a_cached_expression_takes_each_request_values(unpatched: None) -> None:
    moto_server.install_update_expression_cache()
    expression = "ADD done_count :one, rows_copied :delta DELETE dead_lettered :c SET progress_at = :now"
    with mock_aws():
        client = _client()
        for i in range(5):
            key = {"pk": {"S": f"P{i}"}, "sk": {"S": "S"}}
            client.put_item(TableName="state", Item={**key, "dead_lettered": {"SS": ["a", "b", f"c{i}"]}})
        for i in range(5):
            key = {"pk": {"S": f"P{i}"}, "sk": {"S": "S"}}
            values = {
                ":one": {"N": "1"},
                ":delta": {"N": str(10 * i)},
                ":c": {"SS": [f"c{i}"]},
                ":now": {"N": str(1000 + i)},
            }
            got = _update(client, key, expression, "attribute_exists(pk)", {}, values)
            assert got == (
                "ok",
                {
                    **key,
                    "done_count": {"N": "1"},
                    "rows_copied": {"N": str(10 * i)},
                    "dead_lettered": {"SS": ["a", "b"]},
                    "progress_at": {"N": str(1000 + i)},
                },
            )
        assert len(moto_server._parsed_updates) == 1


def test_an_invalid_expression_fails_every_time(unpatched: None) -> None:
    moto_server.install_update_expression_cache()
    with mock_aws():
        client = _client()
        client.put_item(TableName="state", Item=SEED)
        for expression, names, values in INVALID:
            first = _update(client, KEY, expression, None, names, values)
            assert first[0] == "error", expression
            assert _update(client, KEY, expression, None, names, values) == first
        # a valid expression whose names make it update a key: checked again, not taken as passed
        good = _update(client, KEY, "SET #k = :v", None, {"#k": "other"}, {":v": {"S": "1"}})
        bad = _update(client, KEY, "SET #k = :v", None, {"#k": "sk"}, {":v": {"S": "1"}})
        assert good[0] == "ok" and bad[0] == "error" and "sk" in bad[2]


def test_the_cached_tree_is_never_handed_out(unpatched: None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    moto_server.install_update_expression_cache()
    first = UpdateExpressionParser.make("SET a = :v REMOVE b")
    second = UpdateExpressionParser.make("SET a = :v REMOVE b")
    cached = moto_server._parsed_updates["SET a = :v REMOVE b"]
    assert first is not second and cached not in (first, second)
    first.children = []  # a caller changing its tree changes no other
    assert UpdateExpressionParser.make("SET a = :v REMOVE b").children
    assert repr(_shape(second)) == repr(_shape(cached))


def _shape(node: Any) -> Any:
    if not hasattr(node, "children"):
        return node
    return (type(node).__name__, [_shape(c) for c in node.children or []])
