"""A cdc table's per-table options applied to binlog row images, as the copy path applies them to rows.

The copy path applies a table's options in MySQL or to the rows MySQL sends (``pipeline/transforms.py``
makes the plan; ``source/sql.py`` selects it): excluded columns are not selected, a renamed column is
loaded under its new name, a cast changes the target's type (Snowflake converts the staged text), a mask
is MySQL's ``SHA2(col, 256)`` or ``MD5(col)`` of the column, ``where`` is MySQL's ``WHERE`` on the row,
a Python transform gets each selected row as text and returns the row to load. A binlog change carries
the row image instead of a selected row; ``ImageOptions.apply`` makes of it the row the copy path would
have loaded:

- ``where``: evaluated by MySQL (``where_query``) on the change's row image, each value cast to its
  column's type, text in its column's character set and collation, so comparisons, ``LIKE`` and NULL
  behave as the copy's ``WHERE``. The target holds the rows whose latest image matches, so an upsert
  whose image does not match becomes a delete of its key at the same position: an update whose before
  image matched and after image does not deletes the target row; the reverse is an upsert that inserts
  it; a row that never matched is deleted where it is not (a tombstone, harmless).
- exclude: the reader ignores the columns (``TableSpec.excluded``); a ``where`` may still name them (their
  values are read for it, then dropped).
- mask: the same digest of the same bytes in Python: the value's MySQL text in its column's character
  set (``mask_value``). Only for columns whose MySQL text a binlog value gives exactly (``refusal``).
- cast, rename: nothing to do here: the plan's columns carry them, as in the copy path.
- transform: the registered function on the image's text values, after the mask, one row at a time
  (the copy path gives it the selected rows, text too); a row it drops is a delete, two rows for one
  or a changed key are refused with the table named.

Deletes go through the mask and the transform too (``RECONCILE_ACTION=mark`` keeps the deleted row's
values, which must be what the copy path would have written).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pymysql

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.generated_sql import MASKS, SALTED
from aurora_replication.identifiers import mysql_ident
from aurora_replication.models import TablePlan
from aurora_replication.pipeline import transforms
from aurora_replication.source.binlog import RowChange
from aurora_replication.source.binlog_values import ColumnFacts
from aurora_replication.source.statements import query

# rows of row images one where query evaluates (the statement stays far below max_allowed_packet)
WHERE_BATCH = 500
_IDENT = re.compile(r"`((?:[^`]|``)+)`")
# the character sets whose MySQL bytes of a value are its UTF-8 (ascii is a subset)
_UTF8 = ("utf8mb4", "utf8mb3", "utf8", "ascii")
_MASKABLE = (typemap.INTEGER, typemap.DECIMAL, typemap.DATE, typemap.DATETIME, typemap.TEXT)
_INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")
_TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")


@dataclass(frozen=True)
class WhereColumn:
    """A column a ``where`` names: what its value is cast to (``information_schema.COLUMNS``)."""

    name: str
    data_type: str
    column_type: str
    numeric_precision: int | None
    numeric_scale: int | None
    datetime_precision: int | None
    charset: str | None
    collation: str | None


def where_columns(predicate: str) -> list[str]:
    """The columns a rebuilt ``where`` names (``generated_sql.safe_predicate`` back-quotes every one)."""
    names: list[str] = []
    for m in _IDENT.finditer(predicate):
        name = m.group(1).replace("``", "`")
        if name not in names:
            names.append(name)
    return names


def describe_columns(conn: Any, database: str, table: str, names: Sequence[str]) -> dict[str, WhereColumn]:
    if not names:
        return {}
    placeholders = ", ".join(["%s"] * len(names))
    rows = query(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, "  # noqa: S608 (only placeholders are formatted in)
        "CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
        f"TABLE_NAME = %s AND COLUMN_NAME IN ({placeholders})",
        [database, table, *names],
    )

    def num(v: Any) -> int | None:
        return None if v is None else int(v)

    return {
        str(r[0]): WhereColumn(
            str(r[0]),
            str(r[1]).lower(),
            str(r[2]).lower(),
            num(r[3]),
            num(r[4]),
            num(r[5]),
            None if r[6] is None else str(r[6]).lower(),
            None if r[7] is None else str(r[7]).lower(),
        )
        for r in rows
    }


_IDENT_PART = re.compile(r"^[a-z0-9_]+$")


def typed_value(c: WhereColumn) -> str | None:
    """The SQL that gives a row image's text (one ``%s``) the column's type, character set and collation,
    so the ``where`` compares it as it compares the column; None: a type this cannot reproduce."""
    unsigned = "unsigned" in c.column_type
    if c.data_type in _INTEGER_TYPES and "zerofill" not in c.column_type:
        return f"CAST(%s AS {'UNSIGNED' if unsigned else 'SIGNED'})"
    if c.data_type == "decimal" and c.numeric_precision is not None:
        return f"CAST(%s AS DECIMAL({int(c.numeric_precision)},{int(c.numeric_scale or 0)}))"
    if c.data_type in ("date",):
        return "CAST(%s AS DATE)"
    if c.data_type in ("datetime", "timestamp"):
        return f"CAST(%s AS DATETIME({int(c.datetime_precision or 0)}))"
    if c.data_type == "time":
        return f"CAST(%s AS TIME({int(c.datetime_precision or 0)}))"
    if c.data_type in _TEXT_TYPES and c.charset and c.collation:
        if not (_IDENT_PART.match(c.charset) and _IDENT_PART.match(c.collation)):
            return None
        return f"CONVERT(%s USING {c.charset}) COLLATE {c.collation}"
    return None


def where_query(predicate: str, columns: Sequence[WhereColumn], rows: int) -> str:
    """``rows`` row images (each: its index, then one value per column, bound) and whether each matches
    ``predicate`` (1 or 0; NULL, as in a WHERE, does not), in index order."""
    names = ", ".join(
        f"{typed_value(c)} AS {mysql_ident(c.name)}" for c in columns
    )  # every column checked by ``refusal``
    one = f"SELECT %s AS `_asr_i`{', ' if names else ''}{names}"
    images = " UNION ALL ".join([one] * rows)
    return f"SELECT `_asr_i`, ({predicate}) IS TRUE FROM ({images}) AS `_asr_image` ORDER BY `_asr_i`"  # noqa: S608 (a generated_sql predicate, quoted names)


def mask_value(kind: str, facts: ColumnFacts, text: str, salt: str = "") -> str:
    """MySQL's ``SHA2(col, 256)``, ``MD5(col)`` or salted ``SHA2(CONCAT(salt, col), 256)`` of a value whose
    MySQL text is ``text``: the digest of its bytes (UTF-8 for the character sets ``refusal`` lets through),
    as lower-case hex."""
    data = text.encode("utf-8")
    if kind == SALTED:
        if not salt:
            raise BadInputError(
                f"column {facts.name!r} is masked with {SALTED!r} and the source secret has no mask_salt"
            )
        return hashlib.sha256(salt.encode("utf-8") + data).hexdigest()
    if kind == "md5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    return hashlib.sha256(data).hexdigest()


def mask_kind(source_expr: str, name: str) -> str:
    """Which mask of ``MASKS`` a column's source expression is."""
    for kind, form in MASKS.items():
        if source_expr == form.format(mysql_ident(name)):
            return kind
    raise ValueError(f"column {name!r} carries an unexpected source expression")


def refusal(plan: TablePlan, facts: dict[str, ColumnFacts], where: dict[str, WhereColumn]) -> str | None:
    """Why cdc cannot apply this table's options exactly as the copy path does (one line), or None."""
    table = plan.table
    for c in plan.columns:
        if not c.source_expr:
            continue
        f = facts[c.name]
        text_elsewhere = f.kind == typemap.TEXT and f.charset not in _UTF8
        if f.kind not in _MASKABLE or "zerofill" in f.column_type or text_elsewhere:
            return (
                f"table {table!r}: cdc cannot mask column {c.name!r} ({f.column_type}"
                + (f" CHARACTER SET {f.charset}" if f.charset else "")
                + ") as MySQL does: masks in cdc take integer, decimal, date, datetime and utf8/ascii text columns; "
                "exclude the column, mask another, or replicate the table with mode 'full' or 'incremental'"
            )
    if plan.where:
        for name in where_columns(plan.where):
            w = where.get(name)
            if w is None or typed_value(w) is None:
                kind = w.column_type if w else "unknown"
                return (
                    f"table {table!r}: cdc evaluates 'where' on each change's row image and cannot compare column "
                    f"{name!r} ({kind}) as MySQL does (it takes integer, decimal, date, datetime, time and text "
                    "columns); filter on another column, or replicate the table with mode 'full' or 'incremental'"
                )
    return None


def spec_columns(plan: TablePlan, facts: dict[str, ColumnFacts]) -> list[ColumnFacts]:
    """The columns the binlog reader spells for this table (``TableSpec.columns``): the plan's, each
    read as its MySQL type (a masked column as its source column: the mask is applied after), then the
    columns only the ``where`` names (excluded ones), dropped again once it is evaluated."""
    columns = [facts[c.name] if c.source_expr else replace(facts[c.name], kind=c.kind) for c in plan.columns]
    planned = {c.name for c in plan.columns}
    extra = [facts[n] for n in where_columns(plan.where or "") if n not in planned and n in facts]
    return columns + extra


@dataclass
class ImageOptions:
    """One table's options, ready to turn the reader's changes into the rows the copy path would load."""

    plan: TablePlan
    facts: list[ColumnFacts]  # spec_columns: what each value of a change is
    where: list[WhereColumn]  # the where's columns, in the order where_query binds them
    transform_modules: str
    salt: str = ""  # the source secret's mask_salt (``salted_sha256`` masks)

    @property
    def needed(self) -> bool:
        p = self.plan
        return bool(p.where or p.transform or any(c.source_expr for c in p.columns) or len(self.facts) > len(p.columns))

    def apply(self, conn: Any, changes: list[RowChange]) -> list[RowChange]:
        """``changes`` as the rows the copy path would load: where, then mask, then transform."""
        if not self.needed:
            return changes
        if self.plan.where:
            matches = self._matches(conn, [c for c in changes if c.op == "U"])
            changes = [c if c.op == "D" or matches[id(c)] else RowChange("D", c.pos, c.values) for c in changes]
        width = len(self.plan.columns)
        masks = [
            (i, mask_kind(c.source_expr, c.name), self.facts[i])
            for i, c in enumerate(self.plan.columns)
            if c.source_expr
        ]
        out: list[RowChange] = []
        for change in changes:
            values = list(change.values[:width])
            for i, kind, f in masks:
                value = values[i]
                if value is not None:
                    values[i] = mask_value(kind, f, value, self.salt)
            out.append(RowChange(change.op, change.pos, values))
        if self.plan.transform:
            out = list(self.transformed(out))
        return out

    def _matches(self, conn: Any, upserts: list[RowChange]) -> dict[int, bool]:
        assert self.plan.where is not None
        index = {f.name: i for i, f in enumerate(self.facts)}
        found: dict[int, bool] = {}
        for start in range(0, len(upserts), WHERE_BATCH):
            part = upserts[start : start + WHERE_BATCH]
            params: list[object] = []
            for n, change in enumerate(part):
                params.append(n)
                params.extend(change.values[index[w.name]] for w in self.where)
            statement = where_query(self.plan.where.replace("%", "%%"), self.where, len(part))
            try:
                rows = query(conn, statement, params)
            except pymysql.err.MySQLError as e:
                raise BadInputError(
                    f"table {self.plan.table!r}: MySQL could not evaluate the table's 'where' on a change's row "
                    f"image: {e}"
                ) from None
            if len(rows) != len(part):
                raise RuntimeError(f"table {self.plan.table!r}: the where query answered {len(rows)} of {len(part)}")
            for n, ((i, ok), change) in enumerate(zip(rows, part, strict=True)):
                if int(i) != n:
                    raise RuntimeError(f"table {self.plan.table!r}: the where query answered out of order")
                found[id(change)] = str(ok) == "1"
        return found

    def transformed(self, changes: Iterable[RowChange]) -> Iterable[RowChange]:
        assert self.plan.transform is not None
        fn = transforms.registered(self.plan.transform, self.transform_modules)
        keys = [i for i, c in enumerate(self.plan.columns) if c.name in self.plan.key]
        for change in changes:
            rows = list(fn(iter([tuple(change.values)]), self.plan))
            if not rows:  # the transform leaves the row out: the target does not hold it
                yield RowChange("D", change.pos, change.values)
                continue
            if len(rows) > 1:
                raise BadInputError(
                    f"table {self.plan.table!r}: transform {self.plan.transform!r} returned {len(rows)} rows for one "
                    "row; cdc applies a transform that returns at most one row per row"
                )
            row = list(rows[0])
            if len(row) != len(change.values) or any(row[i] != change.values[i] for i in keys):
                raise BadInputError(
                    f"table {self.plan.table!r}: transform {self.plan.transform!r} changed a row's key or its number "
                    "of columns; cdc matches changes to rows by key"
                )
            yield RowChange(change.op, change.pos, [None if v is None else v for v in row])
