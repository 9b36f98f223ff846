"""Row images read from a row event's bytes straight to MySQL's text of each value (pure; no connection).

The window reader (``source.binlog``) needs one thing of a row image: MySQL's text of each column, as a
``SELECT`` prints it (``binlog_values.to_text``). The general path gets there in two steps: the binlog
library decodes each value into a Python object (through ``source.binlog_decode``'s hooks), then a
converter spells it. Both steps cost a Python call or two per value, and a cdc window spells every column
of every change, so they were most of the reader's time.

Here a table's columns become one reader each, made once per table map: a function of the event's bytes
and an offset that returns the value's text and the next offset. The whole body of a row event is read
at once, so the library's buffered per-value ``read`` is gone too. The text is the one ``to_text`` gives
for the value the library would decode (``tests/unit/test_binlog_rows.py`` holds every reader to the
library and ``to_text`` on the same bytes, and the binlog fidelity test reads its windows both ways).

An update's before image is read for its key alone (its other columns are stepped over by their
lengths); the whole before image is read as text only when the key changed, since the old key is then
deleted with that image.

The readers are the definition; what runs per row is faster still: for each NULL pattern a table's images
show (up to 64), one function is written from them when the pattern is first met (``_row_code``: the
columns' reads one after another, consecutive integers and floats by one ``struct`` unpack, the values
straight in the spec's order; ``_key_code``: an update's key). The code is made from column indexes,
widths and struct codes only; the tests hold it to the readers column by column.

What is read here: integers of every width, FLOAT, DOUBLE, DECIMAL, YEAR, BIT, DATE, DATETIME(0..6),
TIMESTAMP(0..6), TIME(0..6), CHAR/VARCHAR/TEXT and their binary kinds (text decoded by the column's
character set), ENUM and SET (member names from the table map, as the library reads them), and MariaDB's
JSON (a LONGTEXT). Anything else (MySQL's binary JSON, geometry, the pre-5.6 temporal formats, a
partial or minimal image, a column without a name) makes ``table_reader`` answer None, and the event
goes through the library as before.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aurora_replication import typemap
from aurora_replication.source import binlog_decode
from aurora_replication.source.binlog_values import (
    ColumnFacts,
    UnrepresentableValueError,
    decode_text,
    to_text,
    zero_datetime_text,
)

# one column's value: (its text or None for SQL NULL, the offset after it)
Reader = Callable[[bytes, int], "tuple[str | None, int]"]
# one column stepped over: the offset after it
Skipper = Callable[[bytes, int], int]
# one whole row image (or an update's key): its values' text, and the offset after it
RowFunction = Callable[[bytes, int], "tuple[list[str | None], int]"]

# MySQL's enum_field_types, as pymysqlreplication's column.type gives them
TINY, SHORT, LONG, FLOAT, DOUBLE, TIMESTAMP, LONGLONG, INT24, DATE, TIME, DATETIME, YEAR = (
    1,
    2,
    3,
    4,
    5,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
)
VARCHAR, BIT, TIMESTAMP2, DATETIME2, TIME2 = 15, 16, 17, 18, 19
JSON, NEWDECIMAL, ENUM, SET, BLOB, VAR_STRING, STRING, GEOMETRY = 245, 246, 247, 248, 252, 253, 254, 255

_INTEGERS = {
    TINY: ("b", 1),
    SHORT: ("h", 2),
    INT24: ("i", 3),
    LONG: ("i", 4),
    LONGLONG: ("q", 8),
}
# digits of a DECIMAL's leftover group (fewer than 9) -> its bytes (MySQL's dig2bytes)
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_EPOCH = dt.datetime(1970, 1, 1)
_UTF8 = ("utf8mb4", "utf8mb3", "utf8")


class NotReadHere(Exception):
    """A column this module does not read: the event goes through the library."""


def _fixed(size: int) -> Skipper:
    def skip(buf: bytes, o: int) -> int:
        return o + size

    skip.width = size  # type: ignore[attr-defined]  # read by ``_steps``: a fixed width is summed, not called
    return skip


def width_of(skipper: Skipper) -> int | None:
    """The width of a fixed-width column's skipper (None: variable width)."""
    width = getattr(skipper, "width", None)
    return int(width) if width is not None else None


def _prefixed(size: int) -> Skipper:
    if size == 1:
        return lambda buf, o: o + 1 + buf[o]
    return lambda buf, o: o + size + int.from_bytes(buf[o : o + size], "little")


def _integer(column: Any) -> tuple[Reader, Skipper]:
    code, size = _INTEGERS[column.type]
    unsigned = bool(column.unsigned)
    if size == 3:

        def int24(buf: bytes, o: int) -> tuple[str | None, int]:
            return str(int.from_bytes(buf[o : o + 3], "little", signed=not unsigned)), o + 3

        return int24, _fixed(3)
    unpack = struct.Struct("<" + (code.upper() if unsigned else code)).unpack_from

    def integer(buf: bytes, o: int) -> tuple[str | None, int]:
        return str(unpack(buf, o)[0]), o + size

    integer.packed = (code.upper() if unsigned else code, "str")  # type: ignore[attr-defined]  # ``_row_code``
    return integer, _fixed(size)


def _floating(column: Any) -> tuple[Reader, Skipper]:
    size = 4 if column.type == FLOAT else 8
    unpack = struct.Struct("<f" if size == 4 else "<d").unpack_from

    def floating(buf: bytes, o: int) -> tuple[str | None, int]:
        return repr(unpack(buf, o)[0]), o + size

    floating.packed = ("f" if size == 4 else "d", "repr")  # type: ignore[attr-defined]  # ``_row_code``
    return floating, _fixed(size)


def _decimal(column: Any) -> tuple[Reader, Skipper]:
    """MySQL's packed DECIMAL (``decimal2bin``): groups of 9 digits in 4 big-endian bytes, a shorter group
    first and last, every byte inverted for a negative number and the top bit of the first flipped. The
    value is read as one integer and its groups taken out by shifts."""
    scale = int(column.decimals)
    integral = int(column.precision) - scale
    whole_groups, lead = divmod(integral, 9)
    frac_groups, tail = divmod(scale, 9)
    # (bytes, digits) of each group, most significant first: the integral part's, then the fraction's
    whole_parts = ([(_DIG2BYTES[lead], lead)] if lead else []) + [(4, 9)] * whole_groups
    frac_parts = [(4, 9)] * frac_groups + ([(_DIG2BYTES[tail], tail)] if tail else [])
    size = sum(b for b, _ in whole_parts + frac_parts)
    top, ones = 0x80 << (8 * (size - 1)), (1 << (8 * size)) - 1

    def groups(parts: list[tuple[int, int]], after: int) -> list[tuple[int, int, int]]:
        """(shift, mask, 10 ** digits) of each group, ``after``: the bytes that follow the parts."""
        out, shift = [], 8 * after
        for nbytes, digits in reversed(parts):
            out.append((shift, (1 << (8 * nbytes)) - 1, 10**digits))
            shift += 8 * nbytes
        return out[::-1]

    whole_groups_at = groups(whole_parts, sum(b for b, _ in frac_parts))
    frac_groups_at = groups(frac_parts, 0)
    point = "." if scale else ""

    def decimal(buf: bytes, o: int) -> tuple[str | None, int]:
        v = int.from_bytes(buf[o : o + size], "big") ^ top
        negative = bool(v & top)  # a negative number is stored inverted: its top bit, flipped back, is set
        if negative:
            v ^= ones
        whole = 0
        for shift, mask, base in whole_groups_at:
            whole = whole * base + (v >> shift & mask)
        fraction = 0
        for shift, mask, base in frac_groups_at:
            fraction = fraction * base + (v >> shift & mask)
        text = f"{whole}{point}{fraction:0{scale}d}" if scale else str(whole)
        return ("-" + text if negative else text), o + size

    return decimal, _fixed(size)


def _year(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    two_digits = facts.column_type.startswith("year(2)")

    def year(buf: bytes, o: int) -> tuple[str | None, int]:
        stored = buf[o]
        value = 1900 + stored if stored else 0
        return str(value % 100 if two_digits else value), o + 1

    return year, _fixed(1)


def _bit(column: Any) -> tuple[Reader, Skipper]:
    size, mask = int(column.bytes), (1 << int(column.bits)) - 1

    def bit(buf: bytes, o: int) -> tuple[str | None, int]:
        return str(int.from_bytes(buf[o : o + size], "big") & mask), o + size

    return bit, _fixed(size)


def _date(column: Any) -> tuple[Reader, Skipper]:
    def date(buf: bytes, o: int) -> tuple[str | None, int]:
        n = buf[o] | buf[o + 1] << 8 | buf[o + 2] << 16
        return f"{n >> 9:04d}-{(n >> 5) & 0xF:02d}-{n & 0x1F:02d}", o + 3

    return date, _fixed(3)


def _datetime2(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    fsp = int(column.fsp)
    n = binlog_decode.fraction_bytes(fsp)
    size = 5 + n
    precision = facts.datetime_precision
    unit = (10_000, 100, 1)[n - 1] if n else 0
    offset = binlog_decode.DATETIMEF_INT_OFS

    def datetime2(buf: bytes, o: int) -> tuple[str | None, int]:
        intpart = int.from_bytes(buf[o : o + 5], "big") - offset
        ymd, hms = intpart >> 17, intpart & 0x1FFFF
        ym = ymd >> 5
        text = f"{ym // 13:04d}-{ym % 13:02d}-{ymd & 0x1F:02d} {hms >> 12:02d}:{(hms >> 6) & 0x3F:02d}:{hms & 0x3F:02d}"
        if precision:  # the fractional seconds as MySQL prints them at the column's precision
            micros = int.from_bytes(buf[o + 5 : o + size], "big", signed=True) * unit if n else 0
            text += "." + f"{micros:06d}"[:precision]
        return text, o + size

    return datetime2, _fixed(size)


def _timestamp2(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    fsp = int(column.fsp)
    n = binlog_decode.fraction_bytes(fsp)
    size = 4 + n
    unit = (10_000, 100, 1)[n - 1] if n else 0
    precision = facts.datetime_precision
    zero = zero_datetime_text(precision)

    last: list[Any] = [b"", ""]  # the seconds' bytes last spelled, and their text: a bulk statement's rows share them

    def timestamp2(buf: bytes, o: int) -> tuple[str | None, int]:
        stored = buf[o : o + 4]
        micros = int.from_bytes(buf[o + 4 : o + 4 + n], "big", signed=True) * unit if n else 0
        if stored == last[0]:  # never 0 seconds: whether that is the zero TIMESTAMP depends on the fraction
            text: str = last[1]
        else:
            seconds = int.from_bytes(stored, "big")
            if not seconds and micros <= 0:
                return zero, o + size  # the zero TIMESTAMP (stored as 0 seconds)
            text = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat(" ", "seconds")
            if seconds:
                last[0], last[1] = stored, text
        if precision:
            text += "." + f"{max(micros, 0):06d}"[:precision]
        return text, o + size

    return timestamp2, _fixed(size)


def _time2(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    fsp = int(column.fsp)
    size = 3 + binlog_decode.fraction_bytes(fsp)

    def time2(buf: bytes, o: int) -> tuple[str | None, int]:
        return to_text(facts, binlog_decode.time2(bytes(buf[o : o + size]), fsp)), o + size

    return time2, _fixed(size)


def _text_of(facts: ColumnFacts) -> Callable[[bytes], str]:
    """A text column's bytes as MySQL's text of it (``to_text`` of the bytes the library hands over)."""
    if facts.kind in (typemap.TEXT, typemap.JSON):
        utf8 = (facts.charset or "utf8mb4").lower() in _UTF8
        strip = facts.kind == typemap.TEXT and facts.data_type == "char"

        def text(raw: bytes) -> str:
            if utf8:
                try:
                    value = raw.decode("utf-8")
                except UnicodeDecodeError:
                    value = decode_text(facts, raw)  # says what and why
            else:
                value = decode_text(facts, raw)
            return value.rstrip(" ") if strip else value

        return text
    if facts.kind == typemap.BINARY:
        pad = facts.length if facts.data_type == "binary" and facts.length else 0

        def binary(raw: bytes) -> str:
            return (raw.ljust(pad, b"\x00") if pad else raw).hex().upper()

        return binary
    raise NotReadHere(f"a string column of kind {facts.kind}")


def _string(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    if column.type == BLOB:
        prefix = int(column.length_size)
    else:
        prefix = 2 if int(column.max_length) > 255 else 1
    spell = _text_of(facts)
    if prefix == 1:

        def short(buf: bytes, o: int) -> tuple[str | None, int]:
            end = o + 1 + buf[o]
            return spell(buf[o + 1 : end]), end

        return short, _prefixed(1)

    def long(buf: bytes, o: int) -> tuple[str | None, int]:
        start = o + prefix
        end = start + int.from_bytes(buf[o:start], "little")
        return spell(buf[start:end]), end

    return long, _prefixed(prefix)


def _names(facts: ColumnFacts, members: list[Any]) -> list[str]:
    """ENUM or SET member names of a table map (bytes in the column's character set; the library puts a
    text '' first for an ENUM's index 0) as text."""
    return [decode_text(facts, bytes(m)) if isinstance(m, (bytes, bytearray)) else str(m) for m in members]


def _enum(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    size = int(column.size)
    if not column.enum_values:
        raise NotReadHere("an ENUM without member names in its table map")
    members = _names(facts, column.enum_values)

    def enum(buf: bytes, o: int) -> tuple[str | None, int]:
        index = int.from_bytes(buf[o : o + size], "little")
        if index >= len(members):
            raise UnrepresentableValueError(
                f"column {facts.name!r}: ENUM index {index} has no member in the table map; "
                "check the table's definition"
            )
        return members[index], o + size

    return enum, _fixed(size)


def _set(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    size = int(column.size)
    if not column.set_values:
        raise NotReadHere("a SET without member names in its table map")
    members = _names(facts, column.set_values)

    def members_of(buf: bytes, o: int) -> tuple[str | None, int]:
        mask = int.from_bytes(buf[o : o + size], "little")
        return ",".join(m for i, m in enumerate(members) if mask >> i & 1), o + size

    return members_of, _fixed(size)


def column_reader(column: Any, facts: ColumnFacts) -> tuple[Reader, Skipper]:
    """The reader and skipper of one column (``column``: the table map's; ``facts``: information_schema's);
    ``NotReadHere`` for a column the library reads."""
    kind = column.type
    if kind in _INTEGERS:
        if facts.kind not in (typemap.INTEGER, typemap.DECIMAL, typemap.TEXT):
            raise NotReadHere(f"an integer column of kind {facts.kind}")
        return _integer(column)
    if kind in (FLOAT, DOUBLE):
        return _floating(column)
    if kind == NEWDECIMAL:
        return _decimal(column)
    if kind == YEAR:
        return _year(column, facts)
    if kind == BIT:
        return _bit(column)
    if kind == DATE and facts.kind == typemap.DATE:
        return _date(column)
    if kind == DATETIME2 and facts.data_type == "datetime":
        return _datetime2(column, facts)
    if kind == TIMESTAMP2 and facts.data_type == "timestamp":
        return _timestamp2(column, facts)
    if kind == TIME2 and facts.kind == typemap.TIME:
        return _time2(column, facts)
    if kind in (VARCHAR, STRING, BLOB):
        return _string(column, facts)
    if kind == ENUM:
        return _enum(column, facts)
    if kind == SET:
        return _set(column, facts)
    raise NotReadHere(f"column type {kind}")


# NULL patterns a table's reader keeps steps for (``TableReader.steps``); past them, column by column
_STEP_PATTERNS = 64
# one step over an image for its key: fixed bytes to step over, then a key column's reader, or a variable-width
# column's skipper, or whether a NULL key column comes here
Step = tuple[int, "Reader | None", "Skipper | None", bool]


@dataclass(frozen=True)
class TableReader:
    """A table map's columns read to text, and where each of the spec's columns is among them."""

    readers: list[Reader]
    skippers: list[Skipper]
    null_bytes: int
    # for each of the spec's columns, its index in the event's columns (None: not in the event)
    order: list[int | None]
    # the event's indexes of the spec's key columns, in the spec's column order
    key: list[int]
    # per NULL pattern of an image (its null bitmap), the function that steps over it for its key (``_key_code``
    # of ``_steps``: fixed bytes to step, then a variable-width column's skipper or a key column's reader), made
    # when the pattern is first met
    steps: dict[int, RowFunction]
    # where each key column (in ``key``'s order) is among the key values ``steps`` reads (in the image's order)
    key_order: list[int]

    @cached_property
    def row(self) -> RowFunction:
        """One whole row image as text in the spec's column order, and the offset after it (``_row_reader``)."""
        return _row_reader(self)

    @cached_property
    def spec_key(self) -> list[int]:
        """Where each key column (in ``key``'s order) is among the spec's columns (``row``'s values)."""
        return [self.order.index(k) for k in self.key]

    def image(self, buf: bytes, o: int) -> tuple[list[str | None], int]:
        """One whole row image as text in the event's column order, and the offset after it."""
        nulls = int.from_bytes(buf[o : o + self.null_bytes], "little")
        o += self.null_bytes
        out: list[str | None] = []
        append = out.append
        if not nulls:  # the common image: no NULL to look for
            for read in self.readers:
                value, o = read(buf, o)
                append(value)
            return out, o
        for i, read in enumerate(self.readers):
            if nulls >> i & 1:
                append(None)
            else:
                value, o = read(buf, o)
                append(value)
        return out, o

    def key_of(self, buf: bytes, o: int) -> tuple[list[str | None], int]:
        """The key columns' text of one row image (the others stepped over), and the offset after it."""
        nulls = int.from_bytes(buf[o : o + self.null_bytes], "little")
        o += self.null_bytes
        read = self.steps.get(nulls)
        if read is None:
            if len(self.steps) >= _STEP_PATTERNS:  # a table whose images hold many NULL patterns: no more kept
                return self._key_column_by_column(buf, o, nulls)
            steps = _steps(self.readers, self.skippers, self.key, nulls)
            read = self.steps[nulls] = _key_code(steps, self.key_order)
        return read(buf, o)

    def _key_column_by_column(self, buf: bytes, o: int, nulls: int) -> tuple[list[str | None], int]:
        wanted = self.key
        values: dict[int, str | None] = {}
        for i, skip in enumerate(self.skippers):
            if nulls >> i & 1:
                values[i] = None
            elif i in wanted:
                values[i], o = self.readers[i](buf, o)
            else:
                o = skip(buf, o)
        return [values.get(i) for i in wanted], o

    def spec_values(self, image: list[str | None]) -> list[str | None]:
        """An image in the event's order as the spec's columns (a column not in the event: None)."""
        return [None if j is None else image[j] for j in self.order]


def table_reader(event: Any, names: list[str], facts: list[ColumnFacts], key: list[str]) -> TableReader | None:
    """The reader of ``event``'s rows for a spec whose columns are ``facts`` (in the spec's order) and
    key ``key``; ``names`` are the event's column names as the spec knows them (renames applied). None
    where the library reads the event (see the module's notes). Cached on the table map's table."""
    table = event.table_map[event.table_id]
    token = (id(event.columns), tuple(names), tuple(id(f) for f in facts), tuple(key))
    cached = getattr(table, "_asr_text_reader", None)
    if cached is not None and cached[0] == token:
        found: TableReader | None = cached[1]
        return found
    reader = _build(event, names, facts, key)
    table._asr_text_reader = (token, reader)
    return reader


def _build(event: Any, names: list[str], facts: list[ColumnFacts], key: list[str]) -> TableReader | None:
    by_name = {f.name: f for f in facts}
    readers: list[Reader] = []
    skippers: list[Skipper] = []
    try:
        for column, name in zip(event.columns, names, strict=True):
            known = by_name.get(name)
            if known is None:  # a column the spec does not carry (dropped, excluded): stepped over, its text unused
                kind, data_type = _stepped_over(column)
                known = ColumnFacts(name=name, kind=kind, data_type=data_type, column_type="")
            reader, skipper = column_reader(column, known)
            readers.append(reader)
            skippers.append(skipper)
    except (NotReadHere, UnrepresentableValueError):
        return None  # the library reads the event (and names an unreadable value there, per row)
    index = {n: i for i, n in enumerate(names)}
    key_set = set(key)
    if not all(k in index for k in key_set):
        return None
    key_index = [index[f.name] for f in facts if f.name in key_set]
    return TableReader(
        readers=readers,
        skippers=skippers,
        null_bytes=(len(readers) + 7) // 8,
        order=[index.get(f.name) for f in facts],
        key=key_index,
        steps={},
        key_order=[sorted(key_index).index(k) for k in key_index],
    )


# NULL patterns a table's row function is written for (``_row_reader``); past them, column by column
_ROW_PATTERNS = 64
# at most this many columns in one written function (a wider table is read column by column)
_ROW_CODE_COLUMNS = 400


def _row_reader(reader: TableReader) -> RowFunction:
    """``TableReader.row``: for each NULL pattern of the table's images (up to ``_ROW_PATTERNS``), one
    function written for it when first met (``_row_code``); an image then costs what its values cost."""
    null_bytes = reader.null_bytes
    patterns: dict[bytes, RowFunction] = {}

    def whole(buf: bytes, o: int) -> tuple[list[str | None], int]:
        values, o = reader.image(buf, o)
        return reader.spec_values(values), o

    def row(buf: bytes, o: int) -> tuple[list[str | None], int]:
        nulls = buf[o : o + null_bytes]
        read = patterns.get(nulls)
        if read is None:
            if len(patterns) >= _ROW_PATTERNS or len(reader.readers) > _ROW_CODE_COLUMNS:
                return whole(buf, o)
            read = patterns[nulls] = _row_code(reader, int.from_bytes(nulls, "little"))
        return read(buf, o + null_bytes)

    return row


def _row_code(reader: TableReader, nulls: int) -> RowFunction:
    """One NULL pattern's row function, written out: the columns' reads in a row (no loop, no list in the
    event's order mapped to the spec's); a NULL column is None and has no bytes; consecutive integer and
    floating-point columns are read by one ``struct`` unpack; a column the spec does not carry is stepped
    over, not spelled. Its argument is the offset after the image's null bitmap."""
    wanted = {j for j in reader.order if j is not None}
    names: dict[str, Any] = {}
    lines = ["def row(buf, o):"]
    run: list[tuple[int, str, str]] = []  # (column, struct code, spelling) of a run of packed columns

    def flush() -> None:
        if not run:
            return
        unpack = struct.Struct("<" + "".join(code for _, code, _ in run))
        names[f"_p{run[0][0]}"] = unpack.unpack_from
        lines.append(f"    {', '.join(f'_r{i}' for i, _, _ in run)}, = _p{run[0][0]}(buf, o)")
        lines.extend(f"    v{i} = {spell}(_r{i})" for i, _, spell in run if i in wanted)
        lines.append(f"    o += {unpack.size}")
        run.clear()

    for i, (read, skip) in enumerate(zip(reader.readers, reader.skippers, strict=True)):
        if nulls >> i & 1:
            if i in wanted:
                lines.append(f"    v{i} = None")
            continue
        packed = getattr(read, "packed", None)
        if packed is not None:
            run.append((i, packed[0], packed[1]))
            continue
        flush()
        if i in wanted:
            names[f"_c{i}"] = read
            lines.append(f"    v{i}, o = _c{i}(buf, o)")
        elif (width := width_of(skip)) is not None:
            lines.append(f"    o += {width}")
        else:
            names[f"_s{i}"] = skip
            lines.append(f"    o = _s{i}(buf, o)")
    flush()
    lines.append("    return [" + ", ".join("None" if j is None else f"v{j}" for j in reader.order) + "], o")
    return _written(lines, {"str": str, "repr": repr, **names})


def _steps(readers: list[Reader], skippers: list[Skipper], key: list[int], nulls: int) -> list[Step]:
    """``TableReader.steps`` of one NULL pattern: the fixed-width columns between two variable-width or key
    columns summed into one step (a NULL column has no bytes); the key columns in the image's order."""
    steps: list[Step] = []
    fixed = 0
    for i, (read, skip) in enumerate(zip(readers, skippers, strict=True)):
        null = bool(nulls >> i & 1)
        if i in key:
            steps.append((fixed, None, None, True) if null else (fixed, read, None, False))
            fixed = 0
        elif null:
            continue
        elif (width := width_of(skip)) is not None:
            fixed += width
        else:
            steps.append((fixed, None, skip, False))
            fixed = 0
    steps.append((fixed, None, None, False))
    return steps


def _key_code(steps: list[Step], key_order: list[int]) -> RowFunction:
    """One NULL pattern's key reader, written out from its ``steps``: the fixed widths summed in, each key
    column read and each variable-width column stepped over in a row; the key in ``key_order``. Its
    argument is the offset after the image's null bitmap. The code is made from indexes and widths alone."""
    names: dict[str, Any] = {}
    lines = ["def key(buf, o):"]
    found: list[str] = []
    for n, (width, read, skip, null_key) in enumerate(steps):
        if width:
            lines.append(f"    o += {width}")
        if read is not None:
            names[f"_r{n}"] = read
            lines.append(f"    k{n}, o = _r{n}(buf, o)")
            found.append(f"k{n}")
        elif skip is not None:
            names[f"_s{n}"] = skip
            lines.append(f"    o = _s{n}(buf, o)")
        elif null_key:
            found.append("None")
    lines.append("    return [" + ", ".join(found[k] for k in key_order) + "], o")
    return _written(lines, names)


def _written(lines: list[str], names: dict[str, Any]) -> RowFunction:
    """The function whose code is ``lines`` (one ``def``), with ``names`` as its globals. The code is made
    here from column indexes, widths and struct codes alone: no text of the table's is in it."""
    exec(compile("\n".join(lines) + "\n", "<binlog_rows>", "exec"), names)  # noqa: S102
    function: RowFunction = names[lines[0][4 : lines[0].index("(")]]
    return function


def _stepped_over(column: Any) -> tuple[str, str]:
    """The kind and data type a column the spec does not carry is read as: its bytes are read, its text
    discarded."""
    if column.type in (VARCHAR, STRING, BLOB):
        return typemap.BINARY, ""
    return {
        DATE: (typemap.DATE, "date"),
        TIME2: (typemap.TIME, "time"),
        DATETIME2: (typemap.DATETIME, "datetime"),
        TIMESTAMP2: (typemap.DATETIME, "timestamp"),
    }.get(column.type, (typemap.INTEGER, ""))


def event_body(event: Any) -> bytes:
    """The rest of a row event's body (its row images), read at once; the event then has no rows left."""
    packet = event.packet
    remaining = int(event.event_size) - int(packet.read_bytes)
    return bytes(packet.read(remaining)) if remaining > 0 else b""


def whole_images(event: Any) -> bool:
    """Whether every column of the event is in each of its images (binlog_row_image=FULL)."""
    count = int(event.number_of_columns)
    if count != len(event.columns):
        return False
    full = (1 << count) - 1
    bitmaps = [event.columns_present_bitmap]
    if hasattr(event, "columns_present_bitmap2"):
        bitmaps.append(event.columns_present_bitmap2)
    return all(int.from_bytes(bytes(b), "little") & full == full for b in bitmaps)
