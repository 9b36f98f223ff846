"""Snowflake's type for each neutral column of a plan (``typemap``, ``models.Column``): the one place the
plan's kinds become Snowflake's types (docs/types.md).

Sizes follow Snowflake's limits (docs.snowflake.com/en/sql-reference/data-types-text, -numeric,
-datetime, -semistructured): NUMBER holds 38 digits, a VARCHAR declared without a length 16 MB (at most
128 MB with one), a BINARY 8 MB (at most 64 MB), a VARIANT 128 MB; TIMESTAMP_NTZ takes 0 to 9
fractional digits. A column MySQL can fill beyond the default length is declared at the maximum
(``typemap.value_limit`` checks each value against it).
"""

from __future__ import annotations

from aurora_replication import typemap
from aurora_replication.models import Column


def column_type(c: Column) -> str:
    """The Snowflake type column ``c`` is created and cast as: a type the table's options named
    (``warehouse_type``), else its kind's."""
    if c.warehouse_type is not None:
        return c.warehouse_type
    k = c.kind
    if k in (typemap.INTEGER, typemap.DECIMAL, typemap.BIT, typemap.YEAR):
        return f"NUMBER({_known(c, c.precision)},{c.scale or 0})"
    if k == typemap.FLOAT:
        return "FLOAT"
    if k == typemap.DATE:
        return "DATE"
    if k == typemap.DATETIME:
        return f"TIMESTAMP_NTZ({c.precision or 0})"
    if k == typemap.JSON:
        return "VARIANT"
    if k in (typemap.TEXT, typemap.TIME):
        # TIME is its text: Snowflake's TIME holds a time of day, MySQL's spans -838:59:59..838:59:59
        return typemap.VARCHAR_MAX if (c.size or 0) > typemap.VARCHAR_DEFAULT_BYTES else "VARCHAR"
    if k in (typemap.BINARY, typemap.SPATIAL):
        return typemap.BINARY_MAX if (c.size or 0) > typemap.BINARY_DEFAULT_BYTES else "BINARY"
    raise ValueError(f"column {c.name!r} has kind {k!r}, which has no Snowflake type: a plan this version did not make")


def _known(c: Column, precision: int | None) -> int:
    if precision is None:
        raise ValueError(f"column {c.name!r} of kind {c.kind!r} has no precision: a plan this version did not make")
    return precision
