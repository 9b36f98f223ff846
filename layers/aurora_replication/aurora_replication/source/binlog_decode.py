"""Temporal row values decoded from their binlog bytes as MySQL itself decodes them (pure), and the
hook that puts these decoders in place of mysql-replication's own.

mysql-replication (module ``pymysqlreplication``, 1.0.x) decodes two classes of temporal values
differently from MySQL, silently:

- **Negative TIME with a fraction.** MySQL stores a TIME(1..6) as one packed number (the time in
  microseconds, sign included; ``my_time_packed_to_binary`` in MySQL's ``mysys/my_time.cc``; MariaDB
  stores the same format, its default ``mysql56_temporal_format``): a negative value's whole seconds
  are rounded *down* and its fraction counted up from there. The library reads the two parts as two
  separate numbers, so ``-00:00:00.000001`` comes back as ``-00:00:00.999999`` and ``-00:00:01.25``
  as ``-00:00:01.75``. Whole-second values, and positive ones, are right.
- **Zero and partial-zero dates** (``0000-00-00``, ``2024-00-10``, ``2024-05-00 10:00:00``) and the
  invalid dates ``ALLOW_INVALID_DATES`` lets in: the library returns ``None`` (SQL NULL) for any
  DATE/DATETIME that Python's ``date`` cannot hold, whatever the column's policy. Here they come back as
  MySQL's own text of them (``'2024-00-10'``), which the staging encoders treat exactly as the copy
  path treats the same text (``ZERO_DATE_POLICY``: NULL, or a loud failure; an invalid non-zero date
  fails its load as it does on the copy path).

- **Text in any character set but UTF-8**: the library decodes a text value with Python's codec of
  the character set's name (MySQL's ``utf16`` as little-endian UTF-16, its ``latin1`` without the five
  bytes Windows-1252 leaves unassigned, ``ucs2`` not at all) and ENUM/SET member names as UTF-8 (a
  latin1 ``'ü'`` became ``''``). Here text values and member names come back as their bytes, which
  ``binlog_values.to_text`` decodes by the column's character set as MySQL converts it to utf8mb4.

- **Speed, not values**: the library reads a row image column by column through one long chain of type
  comparisons, two bitmap lookups and a table-map lookup per value, which is most of its cost for a
  row of plain columns. ``_read_column_data`` reads a whole image (binlog_row_image=FULL, no partial
  JSON) with the integer and floating-point columns unpacked in place and the text, DECIMAL and
  temporal columns through the same readers the library (and this module) use; every other type,
  and any image that is not whole, goes to the library's own code, so the values are the library's.

``install`` replaces the library's private decoders of those column types (``TIME2``, ``TIME``,
``DATE``, ``DATETIME2``, ``DATETIME``, strings, ENUM/SET member names) with functions over these pure
decoders; it refuses loudly when the library no longer has them (another version: check its decoding
before moving the pin).
A zero ``TIMESTAMP`` (stored as 0 seconds, which the library returns as 1970-01-01 00:00:00, a time
no TIMESTAMP can hold) is recognised where values are spelled (``binlog_values.to_text``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# MySQL's offsets of the packed temporal formats (mysys/my_time.cc: TIMEF_OFS, TIMEF_INT_OFS,
# DATETIMEF_INT_OFS)
TIMEF_OFS = 0x800000000000
TIMEF_INT_OFS = 0x800000
DATETIMEF_INT_OFS = 0x8000000000


def fraction_bytes(fsp: int) -> int:
    """Bytes of the fractional part of a TIME2/DATETIME2/TIMESTAMP2 of precision ``fsp``."""
    return (int(fsp) + 1) // 2


def _packed_time(raw: bytes, fsp: int) -> int:
    """``my_time_packed_from_binary``: the packed time (whole part << 24 | microseconds, negated as one
    number for a negative time) from its stored bytes."""
    if fsp >= 5:
        return int.from_bytes(raw[:6], "big") - TIMEF_OFS
    intpart = int.from_bytes(raw[:3], "big") - TIMEF_INT_OFS
    if fsp <= 0:
        return intpart << 24
    if fsp <= 2:
        frac, full, unit = raw[3], 0x100, 10_000
    else:
        frac, full, unit = int.from_bytes(raw[3:5], "big"), 0x10000, 100
    if intpart < 0 and frac:
        # a negative time's fraction is stored counted up from the whole second below it
        intpart += 1
        frac -= full
    return (intpart << 24) + frac * unit


def time2(raw: bytes, fsp: int) -> dt.timedelta:
    """A TIME(fsp) value from its ``3 + fraction_bytes(fsp)`` stored bytes, as MySQL reads it."""
    packed = _packed_time(raw, fsp)
    negative = packed < 0
    packed = abs(packed)
    hms, micros = packed >> 24, packed % (1 << 24)
    hours, minutes, seconds = (hms >> 12) % (1 << 10), (hms >> 6) % (1 << 6), hms % (1 << 6)
    value = dt.timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=micros)
    return -value if negative else value


def time_old(raw: bytes) -> dt.timedelta:
    """A TIME of the pre-5.6 format: a signed 3-byte little-endian ``[-]HHMMSS``."""
    n = int.from_bytes(raw[:3], "little", signed=True)
    a = abs(n)
    value = dt.timedelta(hours=a // 10000, minutes=a // 100 % 100, seconds=a % 100)
    return -value if n < 0 else value


def _ymd_text(year: int, month: int, day: int) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}"


def date(raw: bytes) -> dt.date | str:
    """A DATE from its 3 stored bytes (little-endian ``year << 9 | month << 5 | day``); MySQL's text of
    it where Python's ``date`` cannot hold it (a zero, partial-zero or invalid date)."""
    n = int.from_bytes(raw[:3], "little")
    year, month, day = n >> 9, (n >> 5) & 0xF, n & 0x1F
    try:
        return dt.date(year, month, day)
    except ValueError:
        return _ymd_text(year, month, day)


def _datetime(ymd: tuple[int, int, int], clock: tuple[int, int, int, int], fsp: int) -> dt.datetime | str:
    try:
        return dt.datetime(*ymd, *clock)
    except ValueError:
        h, mi, s, us = clock
        text = f"{_ymd_text(*ymd)} {h:02d}:{mi:02d}:{s:02d}"
        return text + ("." + f"{us:06d}"[:fsp] if fsp > 0 else "")


def datetime2(raw: bytes, fsp: int) -> dt.datetime | str:
    """A DATETIME(fsp) from its ``5 + fraction_bytes(fsp)`` stored bytes (``my_datetime_packed_from_binary``);
    MySQL's text of it where Python's ``datetime`` cannot hold it."""
    intpart = int.from_bytes(raw[:5], "big") - DATETIMEF_INT_OFS
    n = fraction_bytes(fsp)
    micros = int.from_bytes(raw[5 : 5 + n], "big", signed=True) * (10_000, 100, 1)[n - 1] if n else 0
    ymd, hms = intpart >> 17, intpart % (1 << 17)
    ym = ymd >> 5
    clock = (hms >> 12, (hms >> 6) % (1 << 6), hms % (1 << 6), micros)
    return _datetime((ym // 13, ym % 13, ymd % (1 << 5)), clock, fsp)


def datetime_old(raw: bytes) -> dt.datetime | str:
    """A DATETIME of the pre-5.6 format: an 8-byte little-endian ``YYYYMMDDhhmmss``."""
    n = int.from_bytes(raw[:8], "little")
    d, t = divmod(n, 1_000_000)
    return _datetime((d // 10000, d // 100 % 100, d % 100), (t // 10000, t // 100 % 100, t % 100, 0), 0)


# ---- the hook ---------------------------------------------------------------------------------

# the library's private decoders (name-mangled methods of RowsEvent) this module stands in for
_REPLACED = (
    "_RowsEvent__read_time2",
    "_RowsEvent__read_time",
    "_RowsEvent__read_date",
    "_RowsEvent__read_datetime2",
    "_RowsEvent__read_datetime",
    "_RowsEvent__read_string",
)


def _read_time2(event: Any, column: Any) -> dt.timedelta:
    return time2(event.packet.read(3 + fraction_bytes(column.fsp)), int(column.fsp))


def _read_time(event: Any) -> dt.timedelta:
    return time_old(event.packet.read(3))


def _read_date(event: Any) -> dt.date | str:
    return date(event.packet.read(3))


def _read_datetime2(event: Any, column: Any) -> dt.datetime | str:
    return datetime2(event.packet.read(5 + fraction_bytes(column.fsp)), int(column.fsp))


def _read_datetime(event: Any) -> dt.datetime | str:
    return datetime_old(event.packet.read(8))


def _read_string(event: Any, size: int, column: Any) -> bytes:
    """A CHAR/VARCHAR/TEXT/BLOB value's bytes, undecoded (``binlog_values.decode_text`` decodes text)."""
    return bytes(event.packet.read_length_coded_pascal_string(size))


def _read_type_values(event: Any, length: int) -> list[list[bytes]] | None:
    """The member names of each ENUM or SET column of a table map's optional metadata (a count, then
    that many length-prefixed names), as bytes: they are in the column's character set."""
    packet = event.packet
    end = packet.read_bytes + length
    if packet.read_bytes >= end:
        return None
    result = []
    while packet.read_bytes < end:
        count = packet.read_length_coded_binary()
        result.append([bytes(packet.read_variable_length_string()) for _ in range(count)])
    return result


# fixed-width numbers read in place: (column type, unsigned) -> (struct format, bytes). pymysqlreplication's
# FIELD_TYPE numbers (MySQL's enum_field_types): TINY 1, SHORT 2, LONG 3, FLOAT 4, DOUBLE 5, LONGLONG 8
_PLAIN = {
    (1, True): ("<B", 1),
    (1, False): ("<b", 1),
    (2, True): ("<H", 2),
    (2, False): ("<h", 2),
    (3, True): ("<I", 4),
    (3, False): ("<i", 4),
    (8, True): ("<Q", 8),
    (8, False): ("<q", 8),
    (4, True): ("<f", 4),
    (4, False): ("<f", 4),
    (5, True): ("<d", 8),
    (5, False): ("<d", 8),
}
_VARCHAR, _STRING, _BLOB, _NEWDECIMAL, _DATE, _DATETIME2 = 15, 254, 252, 246, 10, 18


def _plan(event: Any) -> list[tuple[str, Any, Any, int]] | None:
    """How each column of the event's table is read: (name, column, struct or None, kind), cached on the
    table map's table (a new table map, a new plan); None when a column has no name (the library fetches
    names then)."""
    import struct

    columns = event.columns
    table = event.table_map[event.table_id]
    cached = getattr(table, "_asr_read_plan", None)
    if cached is not None and cached[0] is columns:
        known: list[tuple[str, Any, Any, int]] = cached[1]
        return known
    plan: list[tuple[str, Any, Any, int]] = []
    for column in columns:
        if not column.name:
            return None
        plain = _PLAIN.get((column.type, bool(column.unsigned)))
        if plain is not None:
            plan.append((column.name, column, (struct.Struct(plain[0]), plain[1]), 0))
        elif column.type in (_VARCHAR, _STRING):
            plan.append((column.name, column, 2 if column.max_length > 255 else 1, 1))
        elif column.type == _BLOB:
            plan.append((column.name, column, column.length_size, 1))
        elif column.type == _NEWDECIMAL:
            plan.append((column.name, column, None, 2))
        elif column.type == _DATE:
            plan.append((column.name, column, None, 3))
        elif column.type == _DATETIME2:
            plan.append((column.name, column, None, 4))
        else:
            plan.append((column.name, column, None, 9))  # the library's reader
    table._asr_read_plan = (columns, plan)
    return plan


def _read_column_data(event: Any, cols_bitmap: Any, row_image_type: Any = None) -> dict[str, Any]:
    """One row image, as the library's ``_read_column_data`` returns it, faster (see the module's notes)."""
    from pymysqlreplication.bitmap import BitCount
    from pymysqlreplication.constants import BINLOG, NONE_SOURCE

    plan = _plan(event) if event.event_type != BINLOG.PARTIAL_UPDATE_ROWS_EVENT else None
    count = len(event.columns)
    if plan is None or BitCount(cols_bitmap) != count:  # a MINIMAL image, partial JSON, unnamed columns
        image: dict[str, Any] = _ORIGINAL["read_column_data"](event, cols_bitmap, row_image_type)
        return image
    event.is_partial_json_update = False
    packet = event.packet
    read = packet.read
    null_bitmap = read((count + 7) // 8)
    none_sources = event._RowsEvent__none_sources
    read_string = event._RowsEvent__read_string
    library = event._RowsEvent__read_values_name
    values: dict[str, Any] = {}
    for i, (name, column, how, kind) in enumerate(plan):
        if null_bitmap[i >> 3] & (1 << (i & 7)):
            none_sources[name] = NONE_SOURCE.NULL
            values[name] = None
        elif kind == 0:
            values[name] = how[0].unpack(read(how[1]))[0]
        elif kind == 1:
            values[name] = read_string(how, column)
        elif kind == 2:
            values[name] = event._RowsEvent__read_new_decimal(column)
        elif kind == 3:
            values[name] = event._RowsEvent__read_date()
        elif kind == 4:
            values[name] = event._RowsEvent__read_datetime2(column)
        else:
            values[name] = library(column, null_bitmap, i, False, cols_bitmap, column.unsigned, i)
    return values


_ORIGINAL: dict[str, Any] = {}


class LibraryChangedError(RuntimeError):
    """mysql-replication no longer has the decoders ``install`` replaces."""


def install() -> None:
    """Put the decoders above in place of mysql-replication's (idempotent)."""
    from pymysqlreplication.row_event import RowsEvent, TableMapEvent

    needed = (*_REPLACED, "_read_column_data", "_RowsEvent__read_values_name", "_RowsEvent__read_new_decimal")
    missing = [name for name in needed if not callable(getattr(RowsEvent, name, None))]
    if not callable(getattr(TableMapEvent, "_read_type_values", None)):
        missing.append("TableMapEvent._read_type_values")
    if missing:
        raise LibraryChangedError(
            f"mysql-replication has no {', '.join(missing)}: its value decoding changed; check it against "
            "source/binlog_decode.py (negative fractional TIME, zero dates, character sets) before using this version"
        )
    replacements = (_read_time2, _read_time, _read_date, _read_datetime2, _read_datetime, _read_string)
    for name, function in zip(_REPLACED, replacements, strict=True):
        setattr(RowsEvent, name, function)
    TableMapEvent._read_type_values = _read_type_values
    if RowsEvent._read_column_data is not _read_column_data:
        _ORIGINAL["read_column_data"] = RowsEvent._read_column_data
        RowsEvent._read_column_data = _read_column_data
