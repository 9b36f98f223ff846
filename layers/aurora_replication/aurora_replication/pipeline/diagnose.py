"""Naming a mismatch: which rows and which columns differ between MySQL and Snowflake, with both values.

A checksum says a key range differs; ``name_differences`` says how. Rows are bucketed by the first
hex digits of the MD5 of their key's canonical text, which both engines compute identically, so
the buckets hold the same rows in both whatever order each engine sorts the key in (text keys:
MySQL's collations ignore case and trailing spaces, Snowflake compares code points). Each round
asks both engines for the count and checksum of every bucket one hex digit deeper under the
buckets that differed (16 times smaller), until the differing buckets hold at most ``leaf_rows``
rows; then both engines send those rows' key and row hashes, and for the rows whose hashes differ
each column's canonical text. The cost is bounded: a range of n rows takes about
``log16(n / leaf_rows) + 2`` queries per engine (a million rows: five), each one scan of the range,
and at most ``limit`` buckets are followed, so a range where every row differs costs no more.

JSON in a target table is a VARIANT that Snowflake re-serialises, so it is not in the in-database
checksum there; ``json_differences`` compares those columns value by value in Python instead
(both engines stream the column in key-hash order), with JSON's own equality (key order and
number spelling do not matter).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aurora_replication import checksums, typemap
from aurora_replication.errors import BadInputError
from aurora_replication.models import Column, TablePlan
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql
from aurora_replication.target.warehouse import Warehouse

SHOWN_CHARS = 200  # values longer than this are shown cut, with their length


@dataclass(frozen=True)
class Difference:
    """One row (and, when the row exists in both engines, one column) that differs."""

    key: dict[str, str]
    problem: str  # "value differs", "missing in Snowflake", "extra in Snowflake", "duplicated in Snowflake"
    column: str | None = None
    mysql_value: str | None = None
    snowflake_value: str | None = None

    def describe(self) -> str:
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        if self.column is None:
            return f"row ({key}): {self.problem}"
        return (
            f"row ({key}) column {self.column!r}: {self.problem}: MySQL {_shown(self.mysql_value)}, "
            f"Snowflake {_shown(self.snowflake_value)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "problem": self.problem,
            "column": self.column,
            "mysql": _cut(self.mysql_value),
            "snowflake": _cut(self.snowflake_value),
        }


def _cut(value: str | None) -> str | None:
    if value is None or len(value) <= SHOWN_CHARS:
        return value
    return f"{value[:SHOWN_CHARS]}... ({len(value)} characters)"


def _shown(value: str | None) -> str:
    return "NULL" if value is None else repr(_cut(value))


@dataclass
class _Side:
    """How each engine selects the rows being compared."""

    mysql_where: str
    mysql_params: list[object]
    sf_where: str
    sf_params: list[object]
    load_table: bool
    table: str
    json_text: bool
    queries: int = 0
    columns: list[Column] = field(default_factory=list)


def _selection(
    target: Warehouse,
    plan: TablePlan,
    lower: Sequence[object] | None,
    upper: Sequence[object] | None,
    target_table: str,
    chunk: int | None,
    target_where: str,
    json_text: bool | None,
    window: tuple[str | None, str | None] | None = None,
    target_params: Sequence[object] = (),
) -> _Side:
    if not plan.key:
        raise BadInputError(f"table {plan.table!r} has no key: its differing rows cannot be named")
    # the chunk's rows in MySQL: its key range and (incremental) watermark window; the row filter is
    # added by every query (``source.sql._checksum_source``)
    mysql_where, mysql_params = source_sql.chunk_predicate(plan, lower, upper, window)
    sf_params: list[object]
    if chunk is not None:  # a load table: the chunk's rows, whatever the key's order
        sf_where, sf_params = target.diagnosis().chunk_filter(), [chunk]
    elif lower is None and upper is None:
        sf_where, sf_params = "", []
    elif target.order_safe(plan):
        sf_where, sf_params = target.diagnosis().key_range(plan, lower, upper)
    else:
        raise BadInputError(
            f"table {plan.table!r}: its key does not order alike in MySQL and Snowflake, so a key range cannot be "
            "selected in Snowflake; name the differences of a load table's chunk (chunk=...) or of the whole table"
        )
    if target_where:
        sf_where = f"({sf_where}) AND ({target_where})" if sf_where else target_where
        sf_params += target_params
    if chunk is None and plan.merged:  # a merged target: the plan's database's rows only
        sf_where = target.own_rows(plan, sf_where)
    load_table = chunk is not None
    text = load_table if json_text is None else json_text
    return _Side(mysql_where, list(mysql_params), sf_where, list(sf_params), load_table, target_table, text)


def _mysql(conn: Any, side: _Side, statement: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    side.queries += 1
    return source_read.query(conn, statement, [*side.mysql_params, *params])


def _snowflake(target: Warehouse, side: _Side, statement: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    side.queries += 1
    all_params = [*side.sf_params, *params]
    return target.diagnosis().query(statement, all_params or None)


def _buckets(
    conn: Any, target: Warehouse, plan: TablePlan, side: _Side, depth: int, parents: list[str]
) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    statement = source_sql.bucket_checksums_query(plan, side.mysql_where, depth, len(parents), side.json_text)
    src = {str(b): checksums.fold_sums(n, total) for b, n, total in _mysql(conn, side, statement, parents)}
    statement = target.diagnosis().bucket_checksums_query(
        plan, side.table, side.columns, side.load_table, side.sf_where, depth, len(parents)
    )
    tgt = {str(b): checksums.fold_sums(n, total) for b, n, total in _snowflake(target, side, statement, parents)}
    return src, tgt


def name_differences(
    mysql_conn: Any,
    target: Warehouse,
    plan: TablePlan,
    lower: Sequence[object] | None,
    upper: Sequence[object] | None,
    target_table: str,
    *,
    chunk: int | None = None,
    target_where: str = "",
    target_params: Sequence[object] = (),
    window: tuple[str | None, str | None] | None = None,
    json_text: bool | None = None,
    limit: int = 20,
    leaf_rows: int = 1000,
) -> list[Difference]:
    """The rows and columns that differ in ``lower < key <= upper`` (bounds as in a chunk message),
    at most ``limit`` of them, each with both values.

    ``target_table`` is the Snowflake table compared: the target, or a load table when ``chunk``
    names the chunk whose rows it holds (one attempt per chunk, as validation counts them; the
    chunk selects the rows, so any key works). Against the target a range needs a key that orders
    alike in both engines (``Warehouse.order_safe``); with no bounds the whole table is compared,
    whatever its key. ``target_where`` adds a Snowflake condition (e.g. one attempt of a chunk) with
    its ``target_params``; ``window`` is an incremental chunk's watermark window, which selects its
    rows in MySQL as the chunk read them.
    ``json_text`` (default: whether a load table is compared) includes JSON columns, which a load
    table holds as MySQL's text; against a target, ``json_differences`` compares them.
    """
    side = _selection(target, plan, lower, upper, target_table, chunk, target_where, json_text, window, target_params)
    side.columns = checksums.checksum_columns(plan, side.json_text)
    parents: list[str] = []
    depth = 0
    while True:
        depth += 1
        src, tgt = _buckets(mysql_conn, target, plan, side, depth, parents)
        differing = sorted(b for b in src.keys() | tgt.keys() if src.get(b) != tgt.get(b))[:limit]
        if not differing:
            return []
        rows = sum(max(src.get(b, (0, ""))[0], tgt.get(b, (0, ""))[0]) for b in differing)
        if rows <= leaf_rows or depth >= 32:
            break
        parents = differing
    return _name_rows(mysql_conn, target, plan, side, depth, differing, limit)


def _name_rows(
    conn: Any, target: Warehouse, plan: TablePlan, side: _Side, depth: int, buckets: list[str], limit: int
) -> list[Difference]:
    statement = source_sql.row_hashes_query(plan, side.mysql_where, depth, len(buckets), side.json_text)
    src: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for key_md5, row_md5, *key in _mysql(conn, side, statement, buckets):
        src.setdefault(str(key_md5), []).append((str(row_md5), dict(zip(plan.key, map(str, key), strict=True))))
    statement = target.diagnosis().row_hashes_query(
        plan, side.table, side.columns, side.load_table, side.sf_where, depth, len(buckets)
    )
    tgt: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for key_md5, row_md5, *key in _snowflake(target, side, statement, buckets):
        tgt.setdefault(str(key_md5), []).append(
            (str(row_md5), dict(zip(plan.key, (_key_text(v) for v in key), strict=True)))
        )
    found: list[Difference] = []
    changed: dict[str, dict[str, str]] = {}
    for k in sorted(src.keys() | tgt.keys()):
        mine, theirs = src.get(k, []), tgt.get(k, [])
        if not theirs:
            found.append(Difference(mine[0][1], "missing in Snowflake"))
        elif not mine:
            found.append(
                Difference(theirs[0][1], "extra in Snowflake" + (f" ({len(theirs)} copies)" * (len(theirs) > 1)))
            )
        elif len(theirs) > len(mine):
            found.append(Difference(mine[0][1], f"duplicated in Snowflake ({len(theirs)} copies)"))
        elif {h for h, _ in mine} != {h for h, _ in theirs}:
            changed[k] = mine[0][1]
    room = max(limit - len(found), 0)
    if changed and room:
        found += _name_columns(conn, target, plan, side, dict(list(changed.items())[:room]))
    return found[:limit]


def _name_columns(
    conn: Any, target: Warehouse, plan: TablePlan, side: _Side, rows: dict[str, dict[str, str]]
) -> list[Difference]:
    """Each column's canonical text of ``rows`` (by key MD5) in both engines, compared."""
    columns = side.columns
    keys = list(rows)
    statement = source_sql.canonical_values_query(plan, columns, side.mysql_where, len(keys))
    src = {str(r[0]): r[1:] for r in _mysql(conn, side, statement, keys)}
    statement = target.diagnosis().canonical_values_query(
        plan, side.table, columns, side.load_table, side.sf_where, len(keys)
    )
    tgt = {str(r[0]): r[1:] for r in _snowflake(target, side, statement, keys)}
    found = []
    for k in keys:
        mine, theirs = src.get(k), tgt.get(k)
        if mine is None or theirs is None:
            continue  # changed while we looked
        named = False
        for c, a, b in zip(columns, mine, theirs, strict=True):
            a, b = _text(a), _text(b)
            if a != b:
                found.append(Difference(rows[k], "value differs", c.name, readable(c, a), readable(c, b)))
                named = True
        if not named:
            found.append(Difference(rows[k], "row hash differs, but no single column does (columns swapped?)"))
    return found


def _key_text(v: Any) -> str:
    """A key value as MySQL's side names it (``source.sql.KeyForm``): a binary one as hex."""
    return bytes(v).hex().upper() if isinstance(v, (bytes, bytearray)) else str(_text(v))


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def readable(c: Column, canonical: str | None) -> str | None:
    """A canonical text (``source.sql.canonical_expr``) as a person reads the value."""
    if canonical is None:
        return None
    if c.kind in (typemap.TEXT, typemap.JSON) or c.source_expr:
        return canonical.split(":", 1)[1] if ":" in canonical else canonical
    if c.kind == typemap.FLOAT:
        return repr(float_of_canonical(canonical))
    if c.kind == typemap.DATETIME:
        try:
            micros = int(canonical)
        except ValueError:
            return canonical
        return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)).isoformat(sep=" ")
    if c.kind in (typemap.BINARY, typemap.SPATIAL):
        return f"x'{canonical}'"
    return canonical


def float_of_canonical(canonical: str) -> float:
    """The double ``[-]m'p'e`` spells (``source.sql._float_canonical``): ``m * 2^(e-52)``."""
    if canonical == "0":
        return 0.0
    sign = -1.0 if canonical.startswith("-") else 1.0
    m, e = canonical.lstrip("-").split("p")
    return sign * float.fromhex(f"{int(m):x}p{int(e) - 52}")


# ---- JSON against a VARIANT target --------------------------------------------------------------


def canonical_json(text: str | None) -> str | None:
    """A JSON document in one spelling: keys sorted, no spaces, integers exact, other numbers as the
    double they are (what both MySQL's JSON type and Snowflake's VARIANT keep)."""
    if text is None:
        return None
    return json.dumps(
        _normal(json.loads(text, parse_float=Decimal)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def _normal(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    if isinstance(v, Decimal):
        if v == v.to_integral_value() and abs(v) < Decimal(10) ** 38:
            return int(v)
        return float(v)
    return v


def _merged(
    mine: Iterator[tuple[Any, ...]], theirs: Iterator[tuple[Any, ...]]
) -> Iterator[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]]:
    """Two streams sorted by their first field, paired by it."""
    a, b = next(mine, None), next(theirs, None)
    while a is not None or b is not None:
        if b is None or (a is not None and str(a[0]) < str(b[0])):
            yield a, None
            a = next(mine, None)
        elif a is None or str(b[0]) < str(a[0]):
            yield None, b
            b = next(theirs, None)
        else:
            yield a, b
            a, b = next(mine, None), next(theirs, None)


def json_differences(
    mysql_conn: Any,
    target: Warehouse,
    plan: TablePlan,
    lower: Sequence[object] | None,
    upper: Sequence[object] | None,
    target_table: str,
    *,
    chunk: int | None = None,
    target_where: str = "",
    limit: int = 20,
) -> list[Difference]:
    """The JSON columns compared value by value (both engines stream them in key-MD5 order, so memory
    stays flat): the check of JSON in a target table, where Snowflake holds a VARIANT. It reads every
    JSON value of the range from both engines. Rows missing on one side are left to the checksum."""
    columns = [c for c in plan.columns if c.kind == typemap.JSON and c.checksum]
    if not columns:
        return []
    side = _selection(target, plan, lower, upper, target_table, chunk, target_where, None)
    nkey = len(plan.key)
    statement = source_sql.json_values_query(plan, columns, side.mysql_where)
    mine = source_read.stream_rows(mysql_conn, statement, side.mysql_params)
    cur = target.conn.cursor()
    found: list[Difference] = []
    try:
        cur.execute(
            target.diagnosis().json_values_query(plan, target_table, columns, side.load_table, side.sf_where),
            side.sf_params or None,
        )
        for a, b in _merged(mine, iter(cur)):
            if a is None or b is None:
                continue
            key = dict(zip(plan.key, map(str, a[1 : 1 + nkey]), strict=True))
            for c, x, y in zip(columns, a[1 + nkey :], b[1 + nkey :], strict=True):
                x, y = _text(x), _text(y)
                if canonical_json(x) != canonical_json(y):
                    found.append(Difference(key, "JSON value differs", c.name, x, y))
            if len(found) >= limit:
                break
    finally:
        cur.close()
        if hasattr(mine, "close"):
            mine.close()
    return found[:limit]


# ---- for the finaliser ----------------------------------------------------------------------------


def name_chunk_differences(
    mysql_conn: Any,
    target: Warehouse,
    plan: TablePlan,
    load_table: str,
    chunks: Sequence[tuple[int, tuple[Sequence[object] | None, Sequence[object] | None], str]],
    window: tuple[str | None, str | None] | None = None,
    limit: int = 20,
) -> list[str]:
    """What differs in the chunks the finaliser found different from their own snapshots, as
    sentences for the ledger and the log: for each ``(chunk, (lower, upper), attempt)``, that
    attempt's rows in the load table against MySQL's rows of the chunk's key range (and ``window``)
    now. Bounded: at most five chunks, each named in a few bounded queries of its own key range (never
    the whole table). The source may have moved since the chunk's snapshot, so on a live table a row
    written since can show up too. Never raises: naming is a report, and the failure it explains
    must still be recorded."""
    out: list[str] = []
    attempt_filter = target.diagnosis().attempt_filter()
    for i, (lower, upper), attempt in list(chunks)[:5]:
        try:
            found = name_differences(
                mysql_conn,
                target,
                plan,
                lower,
                upper,
                load_table,
                chunk=i,
                target_where=attempt_filter,
                target_params=[attempt],
                window=window,
                json_text=True,
                limit=limit,
            )
        except Exception as e:  # noqa: BLE001 - a report, see above
            out.append(f"chunk {i}: could not name the differences: {type(e).__name__}: {e}")
            continue
        out += [f"chunk {i}: {d.describe()}" for d in found] or [
            f"chunk {i}: no row differs now (MySQL changed since the chunk's snapshot, or the rows were repaired)"
        ]
        if len(out) >= limit:
            break
    return out[:limit]
