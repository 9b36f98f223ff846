"""Row images read straight to text (``source/binlog_rows.py``) against the library on the same bytes.

Each column kind the text reader reads is encoded here as MySQL stores it in a row image (from MySQL's
own formats: ``decimal2bin``, the packed temporal formats, the length-prefixed strings, ENUM and SET as
their index and bit mask), then read twice: by ``binlog_rows`` and by mysql-replication with the project's
hooks, whose values ``binlog._image`` spells. Both must give the same text, and the text must be the
value that was encoded. Hypothesis draws the values (fixed seed); the edges are written out.
"""

from __future__ import annotations

import datetime as dt
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from pymysqlreplication.packet import BinLogPacketWrapper

from aurora_replication import typemap
from aurora_replication.source import binlog, binlog_decode, binlog_rows
from aurora_replication.source.binlog_values import ColumnFacts, UnrepresentableValueError, converter

# the library reads a TIMESTAMP through utcfromtimestamp, which Python 3.12 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcfromtimestamp:DeprecationWarning")

# ---- MySQL's storage formats, written out ---------------------------------------------------------

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def decimal_bytes(text: str, precision: int, scale: int) -> bytes:
    """MySQL's ``decimal2bin`` of a decimal text."""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    integral = precision - scale
    whole = whole.rjust(integral, "0")[-integral:] if integral else ""
    fraction = fraction.ljust(scale, "0")[:scale]
    out = b""
    lead = integral % 9
    if lead:
        out += int(whole[:lead]).to_bytes(_DIG2BYTES[lead], "big")
    for i in range(lead, integral, 9):
        out += int(whole[i : i + 9]).to_bytes(4, "big")
    for i in range(0, scale - scale % 9, 9):
        out += int(fraction[i : i + 9]).to_bytes(4, "big")
    if scale % 9:
        out += int(fraction[scale - scale % 9 :]).to_bytes(_DIG2BYTES[scale % 9], "big")
    raw = bytearray(out)
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    raw[0] ^= 0x80
    return bytes(raw)


def fraction_bytes(micros: int, fsp: int) -> bytes:
    n = binlog_decode.fraction_bytes(fsp)
    if not n:
        return b""
    return (micros // (10_000, 100, 1)[n - 1]).to_bytes(n, "big")


def datetime2_bytes(v: dt.datetime, fsp: int) -> bytes:
    ymd = ((v.year * 13 + v.month) << 5) | v.day
    hms = (v.hour << 12) | (v.minute << 6) | v.second
    packed = (ymd << 17 | hms) + binlog_decode.DATETIMEF_INT_OFS
    return packed.to_bytes(5, "big") + fraction_bytes(v.microsecond, fsp)


def timestamp2_bytes(seconds: int, micros: int, fsp: int) -> bytes:
    return seconds.to_bytes(4, "big") + fraction_bytes(micros, fsp)


def date_bytes(y: int, m: int, d: int) -> bytes:
    return ((y << 9) | (m << 5) | d).to_bytes(3, "little")


def prefixed(raw: bytes, size: int) -> bytes:
    return len(raw).to_bytes(size, "little") + raw


# ---- the columns: the table map's column, information_schema's facts, and how a value is stored ------

c = SimpleNamespace


def facts(name: str, kind: str, data_type: str, column_type: str = "", **kw: Any) -> ColumnFacts:
    return ColumnFacts(name=name, kind=kind, data_type=data_type, column_type=column_type or data_type, **kw)


INTS = [
    # (name, type, unsigned, size, data_type)
    ("ti", 1, False, 1, "tinyint"),
    ("tiu", 1, True, 1, "tinyint"),
    ("si", 2, False, 2, "smallint"),
    ("siu", 2, True, 2, "smallint"),
    ("mi", 9, False, 3, "mediumint"),
    ("miu", 9, True, 3, "mediumint"),
    ("i", 3, False, 4, "int"),
    ("iu", 3, True, 4, "int"),
    ("bi", 8, False, 8, "bigint"),
    ("biu", 8, True, 8, "bigint"),
]
DECIMALS = [(10, 2), (7, 0), (3, 3), (18, 9), (19, 9), (38, 10), (65, 30), (65, 0), (1, 0), (20, 1)]


def columns() -> list[tuple[Any, ColumnFacts]]:
    out: list[tuple[Any, ColumnFacts]] = []
    for name, t, unsigned, _size, data_type in INTS:
        out.append((c(name=name, type=t, unsigned=unsigned), facts(name, typemap.INTEGER, data_type)))
    for p, s in DECIMALS:
        name = f"d{p}_{s}"
        kind = typemap.DECIMAL if p <= typemap.EXACT_DIGITS else typemap.TEXT
        out.append(
            (
                c(name=name, type=246, unsigned=False, precision=p, decimals=s),
                facts(name, kind, "decimal", f"decimal({p},{s})"),
            )
        )
    out += [
        (c(name="f", type=4, unsigned=False), facts("f", typemap.FLOAT, "float")),
        (c(name="dbl", type=5, unsigned=False), facts("dbl", typemap.FLOAT, "double")),
        (c(name="yr", type=13, unsigned=False), facts("yr", typemap.YEAR, "year", "year(4)")),
        (c(name="yr2", type=13, unsigned=False), facts("yr2", typemap.YEAR, "year", "year(2)")),
        (c(name="b12", type=16, unsigned=False, bits=12, bytes=2), facts("b12", typemap.BIT, "bit", "bit(12)")),
        (c(name="b64", type=16, unsigned=False, bits=64, bytes=8), facts("b64", typemap.BIT, "bit", "bit(64)")),
        (c(name="d", type=10, unsigned=False), facts("d", typemap.DATE, "date")),
    ]
    for fsp in range(7):
        out.append(
            (
                c(name=f"dt{fsp}", type=18, unsigned=False, fsp=fsp),
                facts(f"dt{fsp}", typemap.DATETIME, "datetime", f"datetime({fsp})", datetime_precision=fsp),
            )
        )
        out.append(
            (
                c(name=f"ts{fsp}", type=17, unsigned=False, fsp=fsp),
                facts(f"ts{fsp}", typemap.DATETIME, "timestamp", f"timestamp({fsp})", datetime_precision=fsp),
            )
        )
    out += [
        (
            c(name="vc", type=15, unsigned=False, max_length=1020),
            facts("vc", typemap.TEXT, "varchar", charset="utf8mb4"),
        ),
        (c(name="vs", type=15, unsigned=False, max_length=40), facts("vs", typemap.TEXT, "varchar", charset="utf8mb4")),
        (c(name="l1", type=15, unsigned=False, max_length=200), facts("l1", typemap.TEXT, "varchar", charset="latin1")),
        (c(name="ch", type=254, unsigned=False, max_length=40), facts("ch", typemap.TEXT, "char", charset="utf8mb4")),
        (c(name="tx", type=252, unsigned=False, length_size=2), facts("tx", typemap.TEXT, "text", charset="utf8mb4")),
        (c(name="vb", type=15, unsigned=False, max_length=300), facts("vb", typemap.BINARY, "varbinary")),
        (
            c(name="bn", type=254, unsigned=False, max_length=6),
            facts("bn", typemap.BINARY, "binary", "binary(6)", length=6),
        ),
        (c(name="bl", type=252, unsigned=False, length_size=3), facts("bl", typemap.BINARY, "mediumblob")),
        (
            c(name="js", type=252, unsigned=False, length_size=4),
            facts("js", typemap.JSON, "longtext", charset="utf8mb4"),
        ),
        (
            c(name="en", type=247, unsigned=False, size=1, enum_values=["", b"new", "é".encode(), b"a b"]),
            facts("en", typemap.TEXT, "enum", "enum('new','é','a b')", charset="utf8mb4"),
        ),
        (
            c(name="st", type=248, unsigned=False, size=1, set_values=[b"x", b"y", "ü".encode("latin-1")]),
            facts("st", typemap.TEXT, "set", "set('x','y','ü')", charset="latin1"),
        ),
    ]
    return out


COLUMNS = columns()
INT_SIZES = {name: (size, unsigned) for name, _t, unsigned, size, _dt in INTS}


def value_strategy(column: Any, f: ColumnFacts) -> Any:
    """Values of a column as (stored bytes, MySQL's text), or None for NULL."""
    t = column.type
    if t in (1, 2, 3, 8, 9):
        size, unsigned = INT_SIZES[column.name]
        lo, hi = (0, 2 ** (8 * size) - 1) if unsigned else (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)
        return st.one_of(st.sampled_from([lo, hi, 0]), st.integers(lo, hi)).map(
            lambda v: (v.to_bytes(size, "little", signed=not unsigned), str(v))
        )
    if t == 246:
        p, s = column.precision, column.decimals

        def decimal_text(parts: tuple[bool, int, int]) -> tuple[bytes, str]:
            negative, whole, fraction = parts
            text = str(whole) + (f".{fraction:0{s}d}" if s else "")
            text = "-" + text if negative and (whole or fraction) else text
            return decimal_bytes(text, p, s), text

        wholes = st.one_of(st.sampled_from([0, 10 ** (p - s) - 1]), st.integers(0, 10 ** (p - s) - 1))
        fractions = st.one_of(st.sampled_from([0, 10**s - 1]), st.integers(0, 10**s - 1))
        return st.tuples(st.booleans(), wholes, fractions).map(decimal_text)
    if t == 4:
        return st.floats(width=32, allow_nan=False, allow_infinity=False).map(
            lambda v: (struct.pack("<f", v), repr(struct.unpack("<f", struct.pack("<f", v))[0]))
        )
    if t == 5:
        return st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (struct.pack("<d", v), repr(v)))
    if t == 13:
        two = f.column_type == "year(2)"
        return st.one_of(st.just(0), st.integers(1901, 2155)).map(
            lambda y: (bytes([y - 1900 if y else 0]), str(y % 100 if two else y))
        )
    if t == 16:
        return st.integers(0, 2**column.bits - 1).map(lambda v: (v.to_bytes(column.bytes, "big"), str(v)))
    if t == 10:
        return st.tuples(st.integers(0, 9999), st.integers(0, 12), st.integers(0, 31)).map(
            lambda ymd: (date_bytes(*ymd), f"{ymd[0]:04d}-{ymd[1]:02d}-{ymd[2]:02d}")
        )
    if t == 18:
        fsp = column.fsp

        def dt_text(v: dt.datetime) -> str:
            micros = v.microsecond // 10 ** (6 - fsp) * 10 ** (6 - fsp)
            v = v.replace(microsecond=micros)
            return (datetime2_bytes(v, fsp), v.isoformat(" ", "seconds") + (f".{micros:06d}"[: fsp + 1] if fsp else ""))

        return st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)).map(dt_text)
    if t == 17:
        fsp = column.fsp

        def ts_text(pair: tuple[int, int]) -> tuple[bytes, str]:
            seconds, micros = pair
            micros = micros // 10 ** (6 - fsp) * 10 ** (6 - fsp)
            if seconds == 0 and micros == 0:
                return timestamp2_bytes(0, 0, fsp), "0000-00-00 00:00:00" + ("." + "0" * fsp if fsp else "")
            text = (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)).isoformat(" ", "seconds")
            return timestamp2_bytes(seconds, micros, fsp), text + (f".{micros:06d}"[: fsp + 1] if fsp else "")

        return st.tuples(st.one_of(st.just(0), st.integers(1, 2**31 - 1)), st.integers(0, 999_999)).map(ts_text)
    if t in (15, 254, 252):
        size = column.length_size if t == 252 else (2 if column.max_length > 255 else 1)
        if f.kind == typemap.BINARY:
            limit = column.max_length if t != 252 else 300
            pad = f.length if f.data_type == "binary" else 0

            def raw_text(b: bytes) -> tuple[bytes, str]:
                return prefixed(b, size), (b.ljust(pad, b"\x00") if pad else b).hex().upper()

            return st.binary(max_size=min(limit, 300)).map(raw_text)
        charset = "latin-1" if f.charset == "latin1" else "utf-8"
        alphabet = st.characters(codec=charset, exclude_characters="\x80\x81\x8d\x8f\x90\x9d")
        limit = 40 if f.data_type == "char" else 100

        def text_text(s: str) -> tuple[bytes, str]:
            raw = s.encode(charset)
            if f.data_type == "char":
                return prefixed(raw.rstrip(b" "), size), s.rstrip(" ")
            return prefixed(raw, size), s if charset == "utf-8" else raw.decode("cp1252", "replace")

        strings = st.text(alphabet, max_size=limit)
        if charset != "utf-8":  # latin1's bytes 0x80..0x9F are Windows-1252's: kept to the plain range here
            strings = st.text(
                st.characters(codec="latin-1", max_codepoint=0x7F) | st.sampled_from("éüß"), max_size=limit
            )
        return strings.map(text_text)
    if t == 247:
        names = ["", "new", "é", "a b"]
        return st.integers(0, 3).map(lambda i: (bytes([i]), names[i]))
    if t == 248:
        names = ["x", "y", "ü"]
        return st.integers(0, 7).map(lambda m: (bytes([m]), ",".join(n for i, n in enumerate(names) if m >> i & 1)))
    raise AssertionError(f"no strategy for column type {t}")


def _row() -> Any:
    return st.tuples(*[st.one_of(st.none(), value_strategy(col, f)) for col, f in COLUMNS])


def image_bytes(row: tuple[Any, ...]) -> bytes:
    nulls = sum(1 << i for i, v in enumerate(row) if v is None)
    return nulls.to_bytes((len(row) + 7) // 8, "little") + b"".join(v[0] for v in row if v is not None)


# ---- the library, on the same bytes -----------------------------------------------------------------


class _Packet(BinLogPacketWrapper):
    """The library's packet reads over a bytes buffer (its own readers over ``read``)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at, self.read_bytes = data, 0, 0

    def read(self, size: int) -> bytes:
        size = int(size)
        out, self.at = self.data[self.at : self.at + size], self.at + size
        self.read_bytes += size
        return out

    def unread(self, data: bytes) -> None:
        self.at -= len(data)
        self.read_bytes -= len(data)
        self.data = self.data[: self.at] + data + self.data[self.at + len(data) :]


def library_text(image: bytes) -> list[str | None]:
    from pymysqlreplication.constants import BINLOG
    from pymysqlreplication.row_event import WriteRowsEvent

    binlog_decode.install()
    cols = [col for col, _ in COLUMNS]
    event = WriteRowsEvent.__new__(WriteRowsEvent)
    event.packet = _Packet(image)
    event.columns = cols
    event.table_id = 7
    event.table_map = {7: SimpleNamespace(columns=cols)}
    event.event_type = BINLOG.WRITE_ROWS_EVENT_V2
    event._RowsEvent__none_sources = {}
    present = ((1 << len(cols)) - 1).to_bytes((len(cols) + 7) // 8, "little")
    values = event._read_column_data(present)
    spelled = [(f.name, converter(f)) for _, f in COLUMNS]
    return binlog._image(spelled, values, event._RowsEvent__none_sources)


def text_reader() -> binlog_rows.TableReader:
    cols = [col for col, _ in COLUMNS]
    event = SimpleNamespace(columns=cols, table_id=7, table_map={7: SimpleNamespace(columns=cols)})
    reader = binlog_rows.table_reader(event, [f.name for _, f in COLUMNS], [f for _, f in COLUMNS], ["i"])
    assert reader is not None, "every column here is one the text reader reads"
    return reader


@seed(20261207)
@settings(max_examples=300, deadline=None)
@given(_row())
def test_every_column_kind_reads_to_the_librarys_text_and_to_the_value_stored(row):
    image = image_bytes(row)
    reader = text_reader()
    values, end = reader.image(image, 0)
    assert end == len(image)
    expected = [None if v is None else v[1] for v in row]
    assert reader.spec_values(values) == expected
    assert reader.row(image, 0) == (expected, len(image))  # the generated row function, NULLs or not
    assert library_text(image) == expected
    # the key alone, the other columns stepped over by their lengths
    key, key_end = reader.key_of(image, 0)
    assert (key, key_end) == ([expected[[f.name for _, f in COLUMNS].index("i")]], len(image))


def test_decimal_edges_read_as_mysql_prints_them():
    column = c(name="d", type=246, unsigned=False, precision=65, decimals=30)
    read, skip = binlog_rows.column_reader(column, facts("d", typemap.TEXT, "decimal", "decimal(65,30)"))
    for text in [
        "0." + "0" * 30,
        "-0." + "0" * 29 + "1",
        "9" * 35 + "." + "9" * 30,
        "-1.5" + "0" * 29,
        "123." + "0" * 30,
    ]:
        raw = decimal_bytes(text, 65, 30)
        assert read(raw, 0) == (text, len(raw))
        assert skip(raw, 0) == len(raw)
    small = c(name="s", type=246, unsigned=False, precision=3, decimals=3)
    read, _ = binlog_rows.column_reader(small, facts("s", typemap.DECIMAL, "decimal", "decimal(3,3)"))
    assert read(decimal_bytes("-0.125", 3, 3), 0)[0] == "-0.125"
    assert read(decimal_bytes("0.5", 3, 3), 0)[0] == "0.500"


def test_an_enum_index_without_a_member_fails_naming_the_column():
    column = c(name="en", type=247, unsigned=False, size=1, enum_values=["", b"a"])
    read, _ = binlog_rows.column_reader(column, facts("en", typemap.TEXT, "enum", "enum('a')", charset="utf8mb4"))
    assert read(bytes([1]), 0) == ("a", 1)
    with pytest.raises(UnrepresentableValueError, match="'en'"):
        read(bytes([2]), 0)


@pytest.mark.parametrize(
    "column, f",
    [
        (c(name="j", type=245, unsigned=False, length_size=4), facts("j", typemap.JSON, "json")),
        (c(name="g", type=255, unsigned=False, length_size=4), facts("g", typemap.SPATIAL, "geometry")),
        (c(name="t", type=7, unsigned=False), facts("t", typemap.DATETIME, "timestamp")),
        (c(name="e", type=247, unsigned=False, size=1, enum_values=None), facts("e", typemap.TEXT, "enum")),
    ],
    ids=["mysql-json", "geometry", "old-timestamp", "enum-without-names"],
)
def test_a_table_with_a_column_read_by_the_library_is_left_to_the_library(column, f):
    cols = [c(name="id", type=3, unsigned=False), column]
    event = SimpleNamespace(columns=cols, table_id=9, table_map={9: SimpleNamespace(columns=cols)})
    every = [facts("id", typemap.INTEGER, "int"), f]
    assert binlog_rows.table_reader(event, ["id", f.name], every, ["id"]) is None


def test_a_column_the_spec_does_not_carry_is_stepped_over_and_the_key_must_be_in_the_event():
    cols = [c(name="id", type=3, unsigned=False), c(name="gone", type=15, unsigned=False, max_length=40)]
    event = SimpleNamespace(columns=cols, table_id=3, table_map={3: SimpleNamespace(columns=cols)})
    kept = [facts("id", typemap.INTEGER, "int"), facts("new", typemap.INTEGER, "int")]
    reader = binlog_rows.table_reader(event, ["id", "gone"], kept, ["id"])
    assert reader is not None
    image = b"\x00" + (7).to_bytes(4, "little", signed=True) + prefixed(b"old", 1)
    values, end = reader.image(image, 0)
    assert end == len(image) and reader.spec_values(values) == ["7", None]
    assert reader.row(image, 0) == (["7", None], len(image))  # the column the spec does not carry stepped over
    assert binlog_rows.table_reader(event, ["id", "gone"], kept, ["new"]) is None


@seed(20261208)
@settings(max_examples=150, deadline=None)
@given(st.tuples(*[value_strategy(col, f) for col, f in COLUMNS]))
def test_an_image_without_nulls_reads_the_same_and_its_key_in_the_specs_order(row):
    """No NULL: the images take the reader's fast paths (no null bits looked up; the fixed-width columns
    between the key's stepped over at once). The spec lists the columns in another order than the event, and
    its key's two columns in the other order than the image's: the key comes back in the spec's order."""
    image = image_bytes(row)
    cols = [col for col, _ in COLUMNS]
    spec = [f for _, f in COLUMNS][::-1]
    event = SimpleNamespace(columns=cols, table_id=8, table_map={8: SimpleNamespace(columns=cols)})
    reader = binlog_rows.table_reader(event, [f.name for _, f in COLUMNS], spec, ["i", "d7_0", "vc"])
    assert reader is not None
    expected = [v[1] for v in row]
    values, end = reader.image(image, 0)
    assert end == len(image) and reader.spec_values(values) == expected[::-1]
    assert reader.row(image, 0) == (expected[::-1], len(image))
    assert [reader.row(image, 0)[0][k] for k in reader.spec_key] == [values[k] for k in reader.key]
    names = [f.name for f in spec]
    key, key_end = reader.key_of(image, 0)
    by_name = dict(zip([f.name for _, f in COLUMNS], expected, strict=True))
    assert key_end == len(image)
    assert key == [by_name[n] for n in names if n in ("i", "d7_0", "vc")]
    assert library_text(image) == expected


def test_a_packed_column_the_spec_does_not_carry_is_stepped_over_between_packed_ones():
    """The row function reads consecutive integers by one unpack; one the spec does not carry is not spelled."""
    cols = [
        c(name="id", type=3, unsigned=False),
        c(name="gone", type=8, unsigned=True),
        c(name="x", type=2, unsigned=False),
        c(name="f", type=5, unsigned=False),
    ]
    event = SimpleNamespace(columns=cols, table_id=4, table_map={4: SimpleNamespace(columns=cols)})
    kept = [
        facts("x", typemap.INTEGER, "smallint"),
        facts("id", typemap.INTEGER, "int"),
        facts("f", typemap.FLOAT, "double"),
    ]
    reader = binlog_rows.table_reader(event, ["id", "gone", "x", "f"], kept, ["id"])
    assert reader is not None
    image = (
        b"\x00"
        + (-7).to_bytes(4, "little", signed=True)
        + (2**64 - 1).to_bytes(8, "little")
        + (-300).to_bytes(2, "little", signed=True)
        + struct.pack("<d", 0.1)
    )
    assert reader.row(image, 0) == (["-300", "-7", "0.1"], len(image))
    with_null = b"\x02" + (-7).to_bytes(4, "little", signed=True) + (5).to_bytes(2, "little") + struct.pack("<d", 2.5)
    assert reader.row(with_null, 0) == (["5", "-7", "2.5"], len(with_null))
    assert reader.spec_key == [1]


@seed(20261209)
@settings(max_examples=40, deadline=None)
@given(st.lists(_row(), min_size=4, max_size=8))
def test_past_the_kept_null_patterns_images_read_column_by_column_the_same(rows):
    """One reader over many images: its first NULL patterns get written functions, the rest are read
    column by column (``_ROW_PATTERNS``, ``_STEP_PATTERNS`` set low here); either way the same values."""
    original = binlog_rows._ROW_PATTERNS, binlog_rows._STEP_PATTERNS
    binlog_rows._ROW_PATTERNS, binlog_rows._STEP_PATTERNS = 2, 2
    try:
        reader = text_reader()
        for row in rows:
            image = image_bytes(row)
            expected = [None if v is None else v[1] for v in row]
            assert reader.row(image, 0) == (expected, len(image))
            key, end = reader.key_of(image, 0)
            assert (key, end) == ([expected[[f.name for _, f in COLUMNS].index("i")]], len(image))
        assert len(reader.steps) <= 2
    finally:
        binlog_rows._ROW_PATTERNS, binlog_rows._STEP_PATTERNS = original


def test_a_timestamp_read_twice_in_a_row_is_spelled_the_same_and_the_zero_timestamp_stays_zero():
    """The TIMESTAMP reader keeps the last seconds it spelled (a bulk statement's rows share them)."""
    column = c(name="t", type=17, unsigned=False, fsp=6)
    f = facts("t", typemap.DATETIME, "timestamp", "timestamp(6)", datetime_precision=6)
    read, _ = binlog_rows.column_reader(column, f)
    at = (1_700_000_000).to_bytes(4, "big")
    first = read(at + (5).to_bytes(3, "big"), 0)
    second = read(at + (123456).to_bytes(3, "big"), 0)
    assert first == ("2023-11-14 22:13:20.000005", 7)
    assert second == ("2023-11-14 22:13:20.123456", 7)
    assert read(bytes(7), 0)[0] == "0000-00-00 00:00:00.000000"
    assert read(at + bytes(3), 0)[0] == "2023-11-14 22:13:20.000000"


def test_the_epochs_fraction_then_the_zero_timestamp_are_told_apart():
    """0 seconds with a fraction is 1970-01-01 00:00:00.f; 0 seconds without one is the zero TIMESTAMP,
    even right after the first (the reader's kept seconds never hold 0)."""
    column = c(name="t", type=17, unsigned=False, fsp=6)
    f = facts("t", typemap.DATETIME, "timestamp", "timestamp(6)", datetime_precision=6)
    read, _ = binlog_rows.column_reader(column, f)
    assert read(bytes(4) + (5).to_bytes(3, "big"), 0)[0] == "1970-01-01 00:00:00.000005"
    assert read(bytes(7), 0)[0] == "0000-00-00 00:00:00.000000"
