"""MySQL's column types in neutral terms: the one table of docs/types.md, in code.

Each column gets a ``kind`` that says how its value is extracted from MySQL (as text), written to the
staging file and compared in validation, and the neutral facts its warehouse type is made from: the
digits of a number (``precision``, ``scale``), the fractional digits of a datetime (``precision``), and
the most bytes a text or binary value can hold in MySQL (``size``). The plan carries these, never a
warehouse's type; the warehouse maps them (Snowflake: ``target/snowflake/types.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# kinds
INTEGER = "integer"
DECIMAL = "decimal"
FLOAT = "float"
BIT = "bit"
TEXT = "text"
BINARY = "binary"
JSON = "json"
DATE = "date"
DATETIME = "datetime"
TIME = "time"
YEAR = "year"
SPATIAL = "spatial"  # GEOMETRY, POINT, POLYGON, ...: copied as (E)WKB into BINARY


_INT_DIGITS = {
    # data_type: (signed digits, unsigned digits)
    "tinyint": (3, 3),
    "smallint": (5, 5),
    "mediumint": (7, 8),
    "int": (10, 10),
    "integer": (10, 10),
    "bigint": (19, 20),
}
_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
}

# Snowflake's size limits (docs.snowflake.com/en/sql-reference/data-types-text and
# .../data-types-semistructured): a VARCHAR value holds at most 128 MB (134,217,728 bytes; a
# VARCHAR declared without a length holds 16 MB), a BINARY value at most 64 MB (67,108,864 bytes;
# 8 MB without a length), a VARIANT value at most 128 MB. MySQL's LONGTEXT, LONGBLOB and JSON hold
# up to 4 GB, MEDIUMBLOB 16 MB: those columns are declared at Snowflake's maximum, and a value
# beyond it is a per-row error naming the table, column and key (``staging.ValueTooLargeError``).
VARCHAR_MAX_BYTES = 134_217_728
BINARY_MAX_BYTES = 67_108_864
VARIANT_MAX_BYTES = 134_217_728
VARCHAR_MAX = f"VARCHAR({VARCHAR_MAX_BYTES})"
BINARY_MAX = f"BINARY({BINARY_MAX_BYTES})"
# what a VARCHAR and a BINARY declared without a length hold: a column whose MySQL values can be longer
# (``size``) is declared at the maximum, and its values are checked against it
VARCHAR_DEFAULT_BYTES = 16_777_216
BINARY_DEFAULT_BYTES = 8_388_608
# the most bytes MySQL's sized text and binary types hold (data-types "String Type Storage Requirements")
_SIZES = {
    "tinytext": 255,
    "text": 65_535,
    "mediumtext": 16_777_215,
    "longtext": 4_294_967_295,
    "tinyblob": 255,
    "blob": 65_535,
    "mediumblob": 16_777_215,
    "longblob": 4_294_967_295,
}
LONG_BYTES = 4_294_967_295  # JSON and the spatial types: LONGBLOB's storage
# the most digits an exact number holds in the warehouse: a DECIMAL with more travels (and is kept) as text
EXACT_DIGITS = 38


class UnsupportedTypeError(ValueError):
    """A MySQL column type this tool cannot replicate without loss."""


@dataclass(frozen=True)
class ColumnType:
    kind: str
    precision: int | None = None  # a number's digits; a datetime's fractional digits
    scale: int | None = None  # a number's fractional digits
    size: int | None = None  # the most bytes a text or binary value holds in MySQL (None: a short one)
    # ZEROFILL (integers, DECIMAL, FLOAT, DOUBLE): MySQL pads the value's text with zeros to the display
    # width ('007', '00000001.50'); the padding is display only, and the copy reads the number instead
    zerofill: bool = False


def map_column(
    name: str,
    data_type: str,
    column_type: str,
    numeric_precision: int | None = None,
    numeric_scale: int | None = None,
    datetime_precision: int | None = None,
    is_json: bool = False,
) -> ColumnType:
    """Map one column from its ``information_schema.COLUMNS`` fields."""
    dt = data_type.lower()
    ct = column_type.lower()
    zerofill = is_zerofill(ct)
    if is_json or dt == "json":
        return ColumnType(JSON, size=LONG_BYTES)
    if dt in _INT_DIGITS:
        signed, unsigned = _INT_DIGITS[dt]
        # ZEROFILL implies UNSIGNED (MySQL adds it to COLUMN_TYPE; counted here even where it does not)
        digits = unsigned if "unsigned" in ct or zerofill else signed
        if dt == "tinyint" and ct.startswith("tinyint(1)"):
            # MySQL's BOOLEAN is TINYINT(1), which can still hold -128..255: keep it a number
            return ColumnType(INTEGER, 3, 0, zerofill=zerofill)
        return ColumnType(INTEGER, digits, 0, zerofill=zerofill)
    if dt in ("decimal", "numeric"):
        p = int(numeric_precision or 10)
        s = int(numeric_scale or 0)
        if p > EXACT_DIGITS:
            # the warehouse's exact numbers hold 38 digits; the exact text keeps every digit
            return ColumnType(TEXT, zerofill=zerofill)
        return ColumnType(DECIMAL, p, s, zerofill=zerofill)
    if dt in ("float", "double", "real"):
        return ColumnType(FLOAT, zerofill=zerofill)
    if dt == "bit":
        return ColumnType(BIT, 20, 0)  # BIT(64) is at most 18446744073709551615: 20 digits
    if dt == "year":
        return ColumnType(YEAR, 4, 0)
    if dt == "date":
        return ColumnType(DATE)
    if dt in ("datetime", "timestamp"):
        return ColumnType(DATETIME, int(datetime_precision or 0))
    if dt == "time":
        # MySQL TIME spans -838:59:59..838:59:59, beyond a time of day: kept as its text
        return ColumnType(TIME)
    if dt in _TEXT_TYPES:
        return ColumnType(TEXT, size=_SIZES.get(dt))
    if dt in _BINARY_TYPES:
        return ColumnType(BINARY, size=_SIZES.get(dt))
    if dt in _SPATIAL_TYPES:
        return ColumnType(SPATIAL, size=LONG_BYTES)
    raise UnsupportedTypeError(
        f"column {name!r} has MySQL type {column_type!r}, which has no lossless Snowflake mapping yet; "
        "exclude the column (table_options exclude) or the table"
    )


def is_compressed(column_type: str) -> bool:
    """Whether ``information_schema.COLUMNS.COLUMN_TYPE`` declares a MariaDB COMPRESSED column
    (``varchar(100) /*M!100301 COMPRESSED*/``). Its value reads as any other through SQL; in the binlog
    it has types of its own (MYSQL_TYPE_VARCHAR_COMPRESSED, MYSQL_TYPE_BLOB_COMPRESSED) whose table-map
    metadata mysql-replication does not know, so it misreads the rest of the event."""
    return " compressed" in column_type.lower()


def is_zerofill(column_type: str) -> bool:
    """Whether ``information_schema.COLUMNS.COLUMN_TYPE`` declares ZEROFILL (``int(10) unsigned zerofill``)."""
    return " zerofill" in column_type.lower()


def value_limit(c: Any) -> int | None:
    """The most bytes a value of column ``c`` (a plan's ``Column``) may have in the warehouse, when its MySQL
    type can hold more (None: every value MySQL can store fits)."""
    if c.kind == JSON:
        return VARIANT_MAX_BYTES
    if c.warehouse_type is not None:  # a cast, or a plan written before neutral kinds: its type decides
        return {VARCHAR_MAX: VARCHAR_MAX_BYTES, BINARY_MAX: BINARY_MAX_BYTES}.get(c.warehouse_type)
    if c.kind == TEXT and (c.size or 0) > VARCHAR_DEFAULT_BYTES:
        return VARCHAR_MAX_BYTES
    if c.kind in (BINARY, SPATIAL) and (c.size or 0) > BINARY_DEFAULT_BYTES:
        return BINARY_MAX_BYTES
    return None


def limited_type(c: Any) -> str:
    """The name of the warehouse type whose limit ``value_limit`` is, as an error names it."""
    return {JSON: "VARIANT", BINARY: "BINARY", SPATIAL: "BINARY"}.get(c.kind, "VARCHAR")


def is_zero_date(value: str) -> bool:
    """MySQL zero or partial-zero dates ('0000-00-00', '2024-00-10 ...') that no other database accepts."""
    return value[:4] == "0000" or value[5:7] == "00" or value[8:10] == "00"


# Dates and timestamps in a staging file, as the COPY's file format names them (target.sql
# CSV_FILE_FORMAT pins DATE_FORMAT and TIMESTAMP_FORMAT: with AUTO, Snowflake reads them with the
# account's or user's input formats, which an administrator may have changed): a date as MySQL
# prints it, a datetime with exactly six fractional digits whatever its precision.
STAGED_DATE_FORMAT = "YYYY-MM-DD"
STAGED_TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF6"
STAGED_TIME_FORMAT = "HH24:MI:SS.FF6"  # no column is loaded as TIME (TIME is VARCHAR): pinned all the same
STAGED_TIMESTAMP_MYSQL = "%%Y-%%m-%%d %%H:%%i:%%s.%%f"  # DATE_FORMAT's spelling (% doubled for pymysql)


def staged_with_micros(c: Any) -> bool:
    """Whether a column's staged text is a timestamp of six fractional digits: a datetime loaded into
    a TIMESTAMP (not one cast to text by the table's options)."""
    return bool(c.kind == DATETIME and (c.warehouse_type is None or c.warehouse_type.upper().startswith("TIMESTAMP")))


def with_micros(text: str) -> str:
    """``YYYY-MM-DD HH:MM:SS[.f...]`` (MySQL's text of a datetime) with exactly six fractional digits."""
    whole, _, fraction = text.partition(".")
    return f"{whole}.{(fraction + '000000')[:6]}"
