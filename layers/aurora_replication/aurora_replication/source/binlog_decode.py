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


class LibraryChangedError(RuntimeError):
    """mysql-replication no longer has the decoders ``install`` replaces."""


def install() -> None:
    """Put the decoders above in place of mysql-replication's (idempotent)."""
    from pymysqlreplication.row_event import RowsEvent, TableMapEvent

    missing = [name for name in _REPLACED if not callable(getattr(RowsEvent, name, None))]
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
