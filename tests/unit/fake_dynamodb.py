"""An in-memory stand-in for a boto3 DynamoDB ``Table``, for ledger tests at a scale moto cannot
reach on a small machine (moto costs milliseconds per call and grows with the table).

It implements what ``StateStore`` uses, with DynamoDB's documented rules where they matter here:
condition and update expressions (SET, ADD, DELETE, REMOVE; comparisons, AND/OR/NOT, IN,
``attribute_exists``, ``attribute_not_exists``, ``begins_with``), ``ReturnValues``, query pages of at
most 1 MB, and the 400 KB item size limit (attribute names plus values, as DynamoDB counts them).
The same expressions run against moto in the integration tests; this fake only adds scale.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

ITEM_LIMIT = 400 * 1024
PAGE_LIMIT = 1024 * 1024
TOKEN = re.compile(r"\s*(<>|<=|>=|[=<>(),]|#\w+|:\w+|[A-Za-z_][\w.]*)")
KEY_PREFIX = re.compile(r"^pk = (:\w+) AND begins_with\(sk, (:\w+)\)$")
KEY_FROM = re.compile(r"^pk = (:\w+) AND sk >= (:\w+)$")
KEY_BETWEEN = re.compile(r"^pk = (:\w+) AND sk BETWEEN (:\w+) AND (:\w+)$")


@lru_cache(maxsize=256)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(TOKEN.findall(text))


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "FakeDynamoDB")


def value_size(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, bool) or v is None:
        return 1
    if isinstance(v, (int, float, Decimal)):
        digits = len(str(Decimal(str(v))).replace("-", "").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    if isinstance(v, (set, frozenset)):
        return sum(value_size(x) for x in v)
    if isinstance(v, dict):
        return 3 + sum(len(k.encode()) + value_size(x) + 1 for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return 3 + sum(value_size(x) + 1 for x in v)
    raise TypeError(type(v))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def _number(v: Any) -> Any:
    return Decimal(str(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class _Expr:
    """A tiny recursive-descent evaluator of condition expressions."""

    def __init__(self, text: str, names: dict[str, str], values: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.names = names
        self.values = values

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.tokens[self.pos]
        if expected is not None and tok.upper() != expected:
            raise ValueError(f"expected {expected}, got {tok}")
        self.pos += 1
        return tok

    def name(self, tok: str) -> str:
        return self.names[tok] if tok.startswith("#") else tok

    def operand(self, item: dict[str, Any], tok: str) -> Any:
        if tok.startswith(":"):
            return _number(self.values[tok])
        return item.get(self.name(tok))

    def parse_or(self, item: dict[str, Any]) -> bool:
        result = self.parse_and(item)
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self.parse_and(item)
            result = result or right
        return result

    def parse_and(self, item: dict[str, Any]) -> bool:
        result = self.parse_not(item)
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self.parse_not(item)
            result = result and right
        return result

    def parse_not(self, item: dict[str, Any]) -> bool:
        if (self.peek() or "").upper() == "NOT":
            self.take()
            return not self.parse_not(item)
        return self.parse_atom(item)

    def parse_atom(self, item: dict[str, Any]) -> bool:
        tok = self.take()
        if tok == "(":
            result = self.parse_or(item)
            self.take(")")
            return result
        low = tok.lower()
        if low in ("attribute_exists", "attribute_not_exists", "begins_with"):
            self.take("(")
            path = self.take()
            if low == "begins_with":
                self.take(",")
                prefix = self.operand(item, self.take())
                self.take(")")
                v = self.operand(item, path)
                return isinstance(v, str) and v.startswith(prefix)
            self.take(")")
            exists = self.name(path) in item
            return exists if low == "attribute_exists" else not exists
        left = self.operand(item, tok)
        op = self.take()
        if op.upper() == "IN":
            self.take("(")
            options = [self.operand(item, self.take())]
            while self.peek() == ",":
                self.take()
                options.append(self.operand(item, self.take()))
            self.take(")")
            return left in options
        right = self.operand(item, self.take())
        if left is None or right is None:
            return op == "<>" and left != right
        try:
            return {
                "=": left == right,
                "<>": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[op]
        except TypeError:
            return False


def _check(condition: str | None, item: dict[str, Any], names: dict[str, str], values: dict[str, Any]) -> None:
    if condition and not _Expr(condition, names, values).parse_or(item):
        raise _error("ConditionalCheckFailedException", "The conditional request failed")


def _apply_update(item: dict[str, Any], update: str, names: dict[str, str], values: dict[str, Any]) -> set[str]:
    """Apply SET/ADD/DELETE/REMOVE clauses; returns the names of the attributes touched."""
    touched: set[str] = set()
    parts = re.split(r"\b(SET|ADD|DELETE|REMOVE)\b", update)
    for i in range(1, len(parts), 2):
        clause, body = parts[i], parts[i + 1]
        for action in (a.strip() for a in body.split(",") if a.strip()):
            if clause == "SET":
                path, value = (x.strip() for x in action.split("=", 1))
                attr = names.get(path, path)
                item[attr] = _number(values[value])
            elif clause == "REMOVE":
                attr = names.get(action, action)
                item.pop(attr, None)
            else:
                path, value = action.split()
                attr = names.get(path, path)
                v = values[value]
                if clause == "ADD" and isinstance(v, (set, frozenset)):
                    item[attr] = set(item.get(attr, set())) | set(v)
                elif clause == "ADD":
                    item[attr] = Decimal(str(item.get(attr, 0))) + Decimal(str(v))
                else:
                    left = set(item.get(attr, set())) - set(v)
                    if left:
                        item[attr] = left
                    else:
                        item.pop(attr, None)
            touched.add(attr)
    return touched


class FakeTable:
    def __init__(self, name: str) -> None:
        self.name = name
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls = 0
        self.largest = 0

    def _store(self, item: dict[str, Any]) -> None:
        size = item_size(item)
        if size > ITEM_LIMIT:
            raise _error("ValidationException", f"Item size has exceeded the maximum allowed size ({size} bytes)")
        self.largest = max(self.largest, size)
        self.items[(item["pk"], item["sk"])] = item

    def put_item(self, Item: dict[str, Any], ConditionExpression: str | None = None, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        key = (Item["pk"], Item["sk"])
        _check(
            ConditionExpression,
            self.items.get(key, {}),
            kw.get("ExpressionAttributeNames", {}),
            kw.get("ExpressionAttributeValues", {}),
        )
        self._store({k: _number(v) for k, v in Item.items()})
        return {}

    def get_item(self, Key: dict[str, str], **kw: Any) -> dict[str, Any]:
        self.calls += 1
        item = self.items.get((Key["pk"], Key["sk"]))
        return {"Item": dict(item)} if item else {}

    def update_item(
        self,
        Key: dict[str, str],
        UpdateExpression: str,
        ConditionExpression: str | None = None,
        ExpressionAttributeNames: dict[str, str] | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
        ReturnValues: str = "NONE",
    ) -> dict[str, Any]:
        self.calls += 1
        names, values = ExpressionAttributeNames or {}, ExpressionAttributeValues or {}
        old = self.items.get((Key["pk"], Key["sk"]), {})
        _check(ConditionExpression, old, names, values)
        new = dict(old) or dict(Key)  # values are replaced, never mutated in place
        touched = _apply_update(new, UpdateExpression, names, values)
        self._store(new)
        if ReturnValues == "ALL_NEW":
            return {"Attributes": dict(new)}
        if ReturnValues == "UPDATED_NEW":
            return {"Attributes": {k: new[k] for k in touched if k in new}}
        if ReturnValues == "UPDATED_OLD":
            return {"Attributes": {k: old[k] for k in touched if k in old}}
        return {}

    def query(
        self, KeyConditionExpression: str, ExpressionAttributeValues: dict[str, Any], **kw: Any
    ) -> dict[str, Any]:
        self.calls += 1
        expr, values = KeyConditionExpression, ExpressionAttributeValues
        names = kw.get("ExpressionAttributeNames", {})
        if m := KEY_PREFIX.match(expr):  # the two key conditions the state store uses, without parsing per item
            pk, prefix = values[m.group(1)], values[m.group(2)]
            found = [i for (p, sk), i in self.items.items() if p == pk and sk.startswith(prefix)]
        elif m := KEY_BETWEEN.match(expr):
            pk, low, high = values[m.group(1)], values[m.group(2)], values[m.group(3)]
            found = [i for (p, sk), i in self.items.items() if p == pk and low <= sk <= high]
        elif m := KEY_FROM.match(expr):
            pk, low = values[m.group(1)], values[m.group(2)]
            found = [i for (p, sk), i in self.items.items() if p == pk and sk >= low]
        else:
            found = [i for i in self.items.values() if _Expr(expr, names, values).parse_or(i)]
        matching = sorted(found, key=lambda i: i["sk"], reverse=not kw.get("ScanIndexForward", True))
        if kw.get("Limit"):
            matching = matching[: kw["Limit"]]
        start = kw.get("ExclusiveStartKey")
        if start:
            matching = [i for i in matching if i["sk"] > start["sk"]]
        page, size = [], 0
        for item in matching:
            size += item_size(item)
            if page and size > PAGE_LIMIT:
                return {"Items": page, "LastEvaluatedKey": {"pk": page[-1]["pk"], "sk": page[-1]["sk"]}}
            page.append(dict(item))
        return {"Items": page}

    def batch_writer(self) -> _Batch:
        return _Batch(self)


class _Batch:
    def __init__(self, table: FakeTable) -> None:
        self.table = table

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def put_item(self, Item: dict[str, Any]) -> None:
        self.table.put_item(Item=Item)


class FakeResource:
    def __init__(self) -> None:
        self.tables: dict[str, FakeTable] = {}

    def Table(self, name: str) -> FakeTable:  # noqa: N802 - boto3's name
        return self.tables.setdefault(name, FakeTable(name))
