"""Binlog row values as the text MySQL itself would print for them (pure; no connection here).

The chunk path reads every value as MySQL's own text (``source.connect`` turns conversions off), so
the staging file, the checksums and the comparison all speak that text. Row events arrive decoded
by the binlog library into Python values (ints, ``Decimal``, ``datetime``, ``timedelta``, bytes,
sets, parsed JSON); ``to_text`` spells each one back exactly as a ``SELECT`` of the column would,
given the column's ``information_schema`` facts (``ColumnFacts``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aurora_replication import typemap


class UnrepresentableValueError(ValueError):
    """A binlog value that cannot be spelled exactly as MySQL prints it."""


@dataclass(frozen=True)
class ColumnFacts:
    """What the binlog does not say about a column: from ``information_schema.COLUMNS``."""

    name: str
    kind: str  # typemap kind
    data_type: str  # lower-case DATA_TYPE
    column_type: str  # lower-case COLUMN_TYPE, e.g. "binary(4)", "set('a','b')"
    datetime_precision: int = 0
    nullable: bool = True
    default: str | None = None
    length: int | None = None  # CHARACTER_OCTET_LENGTH (binary(n) pads to it)
    charset: str | None = None  # CHARACTER_SET_NAME of a text, ENUM or SET column (its values' bytes)

    def signature(self) -> list[Any]:
        """What a schema change compares (name, type, nullability, default)."""
        return [self.name, self.column_type, self.nullable, self.default]


# MySQL's latin1 is Windows-1252 with its five unassigned bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) mapped to
# the C1 controls of the same number, as CONVERT(col USING utf8mb4) gives them on the copy path
_LATIN1 = {b: bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}
# MySQL character sets whose Python codec has another name (the rest have the same name, or pymysql's)
_CODECS = {
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "utf16": "utf-16-be",  # MySQL's utf16 is big-endian, without a byte order mark
    "utf16le": "utf-16-le",
    "ucs2": "utf-16-be",  # the BMP only, big-endian
    "utf32": "utf-32-be",
    "latin2": "iso8859-2",
    "ascii": "ascii",
    # MySQL's euckr holds the CP949 (Unified Hangul Code) extension: 갂, 똠 and 8,800 other syllables
    # that Python's euc_kr refuses; cp949 reads every two-byte sequence as MySQL does
    "euckr": "cp949",
}
# Where MySQL's table of a character set maps a byte sequence to another character than Python's codec
# of the same name does (every single byte and two-byte sequence compared with CONVERT(... USING
# utf8mb4), tests/integration/test_binlog_charsets.py): the Python character, then MySQL's. Without
# these the binlog path would spell such a value differently from the copy path, silently.
_MYSQL_CHARACTERS = {
    "greek": str.maketrans({"\u2018": "\u02bd", "\u2019": "\u02bc"}),  # 0xA1, 0xA2: ʽ ʼ, not ‘ ’
    "hebrew": str.maketrans({"\u00af": "\u203e"}),  # 0xAF: ‾ (overline), not ¯ (macron)
    "cp866": str.maketrans({"\u2116": "\u207f", "\u00a4": "\u00b2"}),  # 0xFC, 0xFD: ⁿ ², not № ¤
    "koi8u": str.maketrans({"\u2219": "\u2022"}),  # 0x95: • (bullet), not ∙
    "sjis": str.maketrans({"\uff3c": "\\"}),  # 0x815F: \ (MySQL's sjis), not ＼ (fullwidth)
    "ujis": str.maketrans({"\uff3c": "\\"}),  # 0xA1C0: \, not ＼
}


def decode_text(facts: ColumnFacts, raw: bytes) -> str:
    """A text value's bytes as its column's character set reads them (``source.binlog_decode`` hands
    text over undecoded): the characters ``CONVERT(col USING utf8mb4)`` gives on the copy path."""
    charset = (facts.charset or "utf8mb4").lower()
    if charset == "latin1":
        return raw.decode("latin-1").translate(_LATIN1)
    codec = _CODECS.get(charset)
    if codec is None:
        from pymysql.charset import charset_by_name

        known = charset_by_name(charset)
        codec = known.encoding if known else charset
    try:
        text = raw.decode(codec)
    except (LookupError, UnicodeDecodeError) as e:
        raise UnrepresentableValueError(
            f"column {facts.name!r}: a value in character set {charset!r} cannot be decoded here ({e}); convert "
            "the column to utf8mb4, or replicate the table with mode 'incremental' or 'full'"
        ) from None
    differs = _MYSQL_CHARACTERS.get(charset)
    return text.translate(differs) if differs else text


def _set_members(column_type: str) -> list[str]:
    """The members of ``set('a','b')`` in definition order (MySQL prints a SET in that order)."""
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    members: list[str] = []
    i = 0
    while i < len(inner):
        if inner[i] != "'":
            i += 1
            continue
        j = i + 1
        text = []
        while j < len(inner):
            if inner[j] == "'" and j + 1 < len(inner) and inner[j + 1] == "'":
                text.append("'")
                j += 2
                continue
            if inner[j] == "'":
                break
            text.append(inner[j])
            j += 1
        members.append("".join(text))
        i = j + 1
    return members


def spatial_ewkb(raw: bytes) -> bytes:
    """MySQL's internal geometry (SRID, 4 bytes little-endian, then little-endian WKB) as EWKB, the
    SRID inside the WKB header (type flag 0x20000000), as ``source.sql._spatial_hex`` builds it for
    the chunk path; SRID 0 gives plain WKB."""
    if raw[:4] == b"\x00\x00\x00\x00":
        return raw[4:]
    return raw[4:8] + b"\x20" + raw[:4] + raw[9:]


def _json_plain(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8")
    if isinstance(v, dict):
        return {_json_plain(k): _json_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_plain(x) for x in v]
    if isinstance(v, Decimal):
        return float(v) if v != v.to_integral_value() else int(v)
    return v


def _time_text(v: dt.timedelta, precision: int) -> str:
    micros = v.days * 86_400_000_000 + v.seconds * 1_000_000 + v.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, frac = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    if precision:
        text += "." + f"{frac:06d}"[:precision]
    return text


def _datetime_text(v: dt.datetime, precision: int) -> str:
    # isoformat, not strftime: strftime's %Y drops the leading zeros of a year before 1000 ('999-01-02'),
    # which MySQL prints as '0999-01-02'
    text = v.isoformat(" ", "seconds")
    if precision:
        text += "." + f"{v.microsecond:06d}"[:precision]
    return text


# A TIMESTAMP holds 1970-01-01 00:00:01 UTC at the earliest; its zero value is stored as 0 seconds, which
# the binlog library returns as the epoch itself
_EPOCH = dt.datetime(1970, 1, 1)


def zero_datetime_text(precision: int) -> str:
    """MySQL's text of the zero DATETIME/TIMESTAMP of a precision (``0000-00-00 00:00:00.000``)."""
    return "0000-00-00 00:00:00" + ("." + "0" * precision if precision else "")


def to_text(facts: ColumnFacts, v: Any) -> str | None:
    """One binlog value as MySQL's text of it (``None`` for SQL NULL).

    Binary values come back as upper-case hex, as ``HEX(col)`` gives them to the chunk path, and
    BIT as its number (``CAST(col AS UNSIGNED)``).
    """
    if v is None:
        return None
    kind = facts.kind
    if kind in (typemap.TEXT, typemap.JSON) and isinstance(v, (bytes, bytearray)):
        v = decode_text(facts, bytes(v))  # text, an ENUM member, MariaDB's JSON (LONGTEXT)
    if kind == typemap.SPATIAL:
        return spatial_ewkb(bytes(v) if isinstance(v, (bytes, bytearray)) else str(v).encode("latin-1")).hex().upper()
    if kind == typemap.BINARY or (isinstance(v, (bytes, bytearray)) and kind not in (typemap.TEXT, typemap.JSON)):
        raw = bytes(v) if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8")
        if facts.data_type == "binary" and facts.length:
            raw = raw.ljust(facts.length, b"\x00")  # MySQL pads BINARY(n); the binlog does not
        return raw.hex().upper()
    if kind == typemap.INTEGER and isinstance(v, (str, bytes, bytearray)):
        return str(int(v))  # mysql-replication before 1.0 gave a ZEROFILL integer as its padded text
    if kind == typemap.BIT:
        return str(int(v, 2)) if isinstance(v, str) else str(int(v))
    if kind == typemap.YEAR:
        # a number, as the chunk path reads it (CAST(col AS UNSIGNED)): YEAR 0 is 0 (the binlog
        # decoder adds 1900 to the stored byte, so 0 arrives as 1900, never a valid YEAR); MariaDB's
        # YEAR(2) reads as its two digits (1984 is 84, 2000 is 0)
        year = 0 if int(v) in (0, 1900) else int(v)
        return str(year % 100 if facts.column_type.startswith("year(2)") else year)
    if kind == typemap.FLOAT:
        # the shortest text that reads back as the same double; a FLOAT arrives as the double its 4
        # bytes are exactly, as the chunk path widens it (``col + 0e0``), so both paths load one value
        return repr(float(v))
    if kind == typemap.JSON:
        if isinstance(v, str):
            return v
        if type(v).__name__ == "JsonDiff":
            raise UnrepresentableValueError(
                f"column {facts.name!r}: a partial JSON update (binlog_row_value_options=PARTIAL_JSON) carries "  # noqa: S608 (an error message, not SQL)
                "no full value; set binlog_row_value_options to '' in the DB cluster parameter group"
            )
        return json.dumps(_json_plain(v), ensure_ascii=False, separators=(", ", ": "))
    if kind in (typemap.DATE, typemap.DATETIME) and isinstance(v, str):
        # a zero, partial-zero or invalid date, as MySQL prints it (``source.binlog_decode``): the
        # staging encoders apply ZERO_DATE_POLICY to it as they do to the copy path's text
        return v
    if isinstance(v, dt.datetime):
        if facts.data_type == "timestamp" and v == _EPOCH:
            return zero_datetime_text(facts.datetime_precision)
        return _datetime_text(v, facts.datetime_precision)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return _time_text(v, facts.datetime_precision)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (set, frozenset)):
        members = {decode_text(facts, bytes(m)) if isinstance(m, (bytes, bytearray)) else str(m) for m in v}
        order = _set_members(facts.column_type) if facts.column_type.startswith("set(") else sorted(members)
        return ",".join(m for m in order if m in members)
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (bytes, bytearray)):
        text = bytes(v).decode("utf-8")
    else:
        text = str(v)
    if facts.data_type == "char":
        text = text.rstrip(" ")  # MySQL strips CHAR's trailing spaces when it reads them
    return text


Converter = Callable[[Any], "str | None"]

_UTF8 = ("utf8mb4", "utf8mb3", "utf8")


def converter(facts: ColumnFacts) -> Converter:
    """``to_text`` for one column, made once per window: the value types the binlog library gives a
    column of this kind most often are spelled without ``to_text``'s chain of checks (the same text:
    ``tests/unit/test_cdc_pure.py`` holds both to one table of values); every other value goes to
    ``to_text``. A cdc window spells every column of every change, so this is the reader's own
    per-value cost."""
    kind = facts.kind

    def general(v: Any) -> str | None:
        return to_text(facts, v)

    if kind == typemap.INTEGER:
        return lambda v: str(v) if type(v) is int else to_text(facts, v)
    if kind == typemap.DECIMAL:
        return lambda v: format(v, "f") if type(v) is Decimal else to_text(facts, v)
    if kind == typemap.FLOAT:
        return lambda v: repr(v) if type(v) is float else to_text(facts, v)
    if kind == typemap.DATE:
        return lambda v: v.isoformat() if type(v) is dt.date else to_text(facts, v)
    if kind == typemap.DATETIME and facts.data_type != "timestamp":
        precision = facts.datetime_precision

        def datetime_text(v: Any) -> str | None:
            if type(v) is not dt.datetime:
                return to_text(facts, v)
            text = v.isoformat(" ", "seconds")
            return text + "." + f"{v.microsecond:06d}"[:precision] if precision else text

        return datetime_text
    if kind == typemap.TEXT and facts.data_type not in ("set", "char"):
        if (facts.charset or "utf8mb4").lower() not in _UTF8:
            return general

        def utf8_text(v: Any) -> str | None:
            if type(v) is bytes:
                try:
                    return v.decode("utf-8")
                except UnicodeDecodeError:
                    pass  # decode_text says what and why
            return to_text(facts, v)

        return utf8_text
    return general
