"""Lexicographic key-range predicates (``lower < key <= upper``), dialect-neutral.

Row-value comparisons are spelled out as OR-chains, which MySQL's range optimiser uses with the
key index and which every SQL engine accepts. A placeholder may differ per column (``Placeholder``
as a function of the column's name): a binary key column's bound travels as hex text and is
compared as bytes through ``UNHEX(%s)`` (``source.sql.KeyForm``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Quote = Callable[[str], str]
# one placeholder for every column, or the placeholder of each column by its name
Placeholder = str | Callable[[str], str]


def _lexicographic(key: Sequence[str], quote: Quote, strict_last: str, placeholder: Placeholder) -> str:
    def ph(col: str) -> str:
        return placeholder if isinstance(placeholder, str) else placeholder(col)

    ors = []
    for i, col in enumerate(key):
        ands = [f"{quote(k)} = {ph(k)}" for k in key[:i]]
        op = strict_last if i == len(key) - 1 else strict_last[0]
        ands.append(f"{quote(col)} {op} {ph(col)}")
        ors.append("(" + " AND ".join(ands) + ")")
    return "(" + " OR ".join(ors) + ")"


def compare_predicate(
    key: Sequence[str], op: str, bound: Sequence[object], quote: Quote, placeholder: Placeholder = "%s"
) -> tuple[str, list[object]]:
    """SQL text and parameters for ``key <op> bound`` compared lexicographically (``op`` one of
    ``>``, ``>=``, ``<``, ``<=``); ``bound`` may be shorter than ``key``: then the comparison is of
    the key's leading columns (a prefix), ``(a, b) <= (1, 5)`` for ``key = [a, b, c]``."""
    if op not in (">", ">=", "<", "<="):
        raise ValueError(f"compare_predicate: unknown operator {op!r}")
    if not 0 < len(bound) <= len(key):
        raise ValueError(f"compare_predicate: a bound of {len(bound)} value(s) for a key of {len(key)} column(s)")
    return _lexicographic(key[: len(bound)], quote, op, placeholder), _params(bound)


def _params(bound: Sequence[object]) -> list[object]:
    params: list[object] = []
    for i in range(len(bound)):
        params.extend(bound[: i + 1])
    return params


def range_predicate(
    key: Sequence[str],
    lower: Sequence[object] | None,
    upper: Sequence[object] | None,
    quote: Quote,
    placeholder: Placeholder = "%s",
) -> tuple[str, list[object]]:
    """SQL text and parameters for ``lower < key <= upper`` (either bound may be open)."""
    parts: list[str] = []
    params: list[object] = []
    if lower is not None:
        parts.append(_lexicographic(key, quote, ">", placeholder))
        params.extend(_params(lower))
    if upper is not None:
        parts.append(_lexicographic(key, quote, "<=", placeholder))
        params.extend(_params(upper))
    return (" AND ".join(parts) or "1 = 1"), params
