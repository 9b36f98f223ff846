"""Temporal binlog values decoded as MySQL decodes them, and spelled as the copy path spells them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aurora_replication import typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline import staging
from aurora_replication.source import binlog_decode
from aurora_replication.source.binlog_values import ColumnFacts, to_text


def _packed(value: dt.timedelta) -> int:
    """MySQL's packed time (``TIME_to_longlong_time_packed``): ``hms << 24 | microseconds``, negated whole."""
    micros = abs(value // dt.timedelta(microseconds=1))
    seconds, frac = divmod(micros, 1_000_000)
    h, rest = divmod(seconds, 3600)
    hms = (h << 12) | ((rest // 60) << 6) | (rest % 60)
    packed = (hms << 24) + frac
    return -packed if value < dt.timedelta(0) else packed


def _stored(value: dt.timedelta, fsp: int) -> bytes:
    """The bytes MySQL writes for a TIME(fsp) (``my_time_packed_to_binary``, written out from its
    definition: C's ``>>`` floors, its ``%`` keeps the dividend's sign, ``(char)`` wraps to a byte)."""
    nr = _packed(value)
    intpart = nr >> 24  # C's >> of a negative number floors, as Python's does
    frac = nr % (1 << 24) if nr >= 0 else -(-nr % (1 << 24))  # C's % keeps the dividend's sign
    if fsp >= 5:
        return (nr + binlog_decode.TIMEF_OFS).to_bytes(6, "big")
    head = (binlog_decode.TIMEF_INT_OFS + intpart).to_bytes(3, "big")
    if fsp == 0:
        return head
    if fsp <= 2:
        return head + ((int(frac / 10_000)) % 0x100).to_bytes(1, "big")
    return head + ((int(frac / 100)) % 0x10000).to_bytes(2, "big")


def _time(text: str) -> dt.timedelta:
    sign = -1 if text.startswith("-") else 1
    h, m, s = text.lstrip("-").split(":")
    whole, _, frac = s.partition(".")
    return sign * dt.timedelta(hours=int(h), minutes=int(m), seconds=int(whole), microseconds=int(frac.ljust(6, "0")))


TIMES = [
    "00:00:00",
    "-00:00:00.000001",
    "-00:00:00.999999",
    "-00:00:01.25",
    "-00:00:59.5",
    "-00:59:59.99",
    "-01:00:00.1",
    "-12:34:56.789012",
    "-838:59:58.999999",
    "-838:59:59",
    "838:59:59",
    "838:59:58.999999",
    "00:00:00.000001",
    "12:34:56.5",
]


@pytest.mark.parametrize("fsp", range(7))
@pytest.mark.parametrize("text", TIMES)
def test_every_time_precision_and_sign_decodes_as_mysql_stores_it(fsp, text):
    value = _time(text)
    unit = dt.timedelta(microseconds=10 ** (6 - fsp))
    if value % unit:  # MySQL rounds to the column's precision on insert: only values it holds are stored
        return
    raw = _stored(value, fsp)
    assert len(raw) == 3 + binlog_decode.fraction_bytes(fsp)
    decoded = binlog_decode.time2(raw, fsp)
    assert decoded == value
    whole, _, frac = text.partition(".")
    expected = whole + ("." + (frac + "000000")[:fsp] if fsp else "")  # MySQL prints fsp digits
    assert to_text(ColumnFacts("t", typemap.TIME, "time", f"time({fsp})", fsp), decoded) == expected


def test_a_known_server_encoding_of_a_negative_fraction():
    # -16:08:04.010123 as MySQL 8 stores a TIME(6): 7e fd fb ff d8 75 (the packed value plus TIMEF_OFS)
    assert binlog_decode.time2(bytes.fromhex("7efdfbffd875"), 6) == -_time("16:08:04.010123")


def _date_bytes(y: int, m: int, d: int) -> bytes:
    return ((y << 9) | (m << 5) | d).to_bytes(3, "little")


def _datetime2_bytes(y: int, mo: int, d: int, h: int, mi: int, s: int, micros: int, fsp: int) -> bytes:
    ymd = ((y * 13 + mo) << 5) | d
    intpart = (ymd << 17) | (h << 12) | (mi << 6) | s
    head = (binlog_decode.DATETIMEF_INT_OFS + intpart).to_bytes(5, "big")
    n = binlog_decode.fraction_bytes(fsp)
    return head + ((micros // (10_000, 100, 1)[n - 1]).to_bytes(n, "big") if n else b"")


def test_zero_and_partial_zero_dates_come_back_as_mysqls_text_not_null():
    assert binlog_decode.date(_date_bytes(2020, 2, 29)) == dt.date(2020, 2, 29)
    assert binlog_decode.date(_date_bytes(0, 0, 0)) == "0000-00-00"
    assert binlog_decode.date(_date_bytes(2020, 0, 0)) == "2020-00-00"
    assert binlog_decode.date(_date_bytes(2020, 2, 30)) == "2020-02-30"  # ALLOW_INVALID_DATES
    assert binlog_decode.datetime2(_datetime2_bytes(2024, 5, 6, 7, 8, 9, 123456, 6), 6) == dt.datetime(
        2024, 5, 6, 7, 8, 9, 123456
    )
    assert binlog_decode.datetime2(_datetime2_bytes(2024, 5, 6, 7, 8, 9, 500000, 1), 1) == dt.datetime(
        2024, 5, 6, 7, 8, 9, 500000
    )
    assert binlog_decode.datetime2(_datetime2_bytes(0, 0, 0, 0, 0, 0, 0, 0), 0) == "0000-00-00 00:00:00"
    assert binlog_decode.datetime2(_datetime2_bytes(2020, 0, 15, 10, 0, 0, 500000, 3), 3) == "2020-00-15 10:00:00.500"
    assert binlog_decode.datetime_old((20200015100000).to_bytes(8, "little")) == "2020-00-15 10:00:00"
    assert binlog_decode.datetime_old((20240506070809).to_bytes(8, "little")) == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert binlog_decode.time_old((-1020304).to_bytes(3, "little", signed=True)) == -_time("102:03:04")


def _plan(kind: str, zero_dates: str) -> TablePlan:
    column = Column(name="d", kind=kind, target="D")
    return TablePlan(table="t", target_table="T", columns=[column], mode="cdc", zero_dates=zero_dates)


ZERO = [
    (ColumnFacts("d", typemap.DATE, "date", "date"), "2020-00-00", "2020-00-00"),
    (ColumnFacts("d", typemap.DATETIME, "datetime", "datetime(3)", 3), "0000-00-00 00:00:00.000", None),
    # a zero TIMESTAMP is stored as 0 seconds, which the library returns as the epoch (no TIMESTAMP holds it)
    (ColumnFacts("d", typemap.DATETIME, "timestamp", "timestamp"), dt.datetime(1970, 1, 1), "0000-00-00 00:00:00"),
    (
        ColumnFacts("d", typemap.DATETIME, "timestamp", "timestamp(6)", 6),
        dt.datetime(1970, 1, 1),
        "0000-00-00 00:00:00.000000",
    ),
]


@pytest.mark.parametrize("facts, value, text", ZERO)
def test_zero_dates_are_staged_under_the_copy_paths_policy(facts, value, text):
    spelled = to_text(facts, value)
    assert spelled == (text or value)
    [encode] = staging.encoders(_plan(facts.kind, "null"))
    assert encode(spelled) == staging.NULL  # the copy path's NULL
    [encode] = staging.encoders(_plan(facts.kind, "fail"))
    with pytest.raises(staging.ZeroDateError, match="ZERO_DATE_POLICY=fail"):
        encode(spelled)


def test_the_epoch_is_a_zero_timestamp_only_in_a_timestamp_column():
    timestamp = ColumnFacts("d", typemap.DATETIME, "timestamp", "timestamp")
    assert to_text(timestamp, dt.datetime(1970, 1, 1, 0, 0, 1)) == "1970-01-01 00:00:01"
    datetime = ColumnFacts("d", typemap.DATETIME, "datetime", "datetime")
    assert to_text(datetime, dt.datetime(1970, 1, 1)) == "1970-01-01 00:00:00"  # a DATETIME holds the epoch


def test_the_library_decoders_are_replaced_and_a_changed_library_is_refused(monkeypatch):
    from pymysqlreplication.row_event import RowsEvent

    binlog_decode.install()
    assert RowsEvent._RowsEvent__read_time2 is binlog_decode._read_time2
    binlog_decode.install()  # idempotent
    monkeypatch.delattr(RowsEvent, "_RowsEvent__read_time2")
    with pytest.raises(binlog_decode.LibraryChangedError, match="__read_time2"):
        binlog_decode.install()


@pytest.mark.parametrize(
    "charset, raw, text",
    [
        ("utf8mb4", "é😀".encode(), "é😀"),
        ("utf8mb3", "产品".encode(), "产品"),
        (None, b"plain", "plain"),
        # MySQL's latin1 is Windows-1252, its five unassigned bytes the C1 controls of the same number
        ("latin1", bytes([0x80, 0x81, 0x8D, 0x9F, 0xFC]), "€\x81\x8dŸü"),
        ("latin2", "Žluťoučký".encode("iso8859-2"), "Žluťoučký"),
        ("cp1251", "тест".encode("cp1251"), "тест"),
        ("utf16", "a😀".encode("utf-16-be"), "a😀"),  # big-endian, no byte order mark
        ("utf16le", "a😀".encode("utf-16-le"), "a😀"),
        ("ucs2", "ü中".encode("utf-16-be"), "ü中"),
        ("utf32", "a😀".encode("utf-32-be"), "a😀"),
    ],
)
def test_text_is_decoded_by_its_columns_character_set(charset, raw, text):
    facts = ColumnFacts("c", typemap.TEXT, "varchar", "varchar(10)", charset=charset)
    assert to_text(facts, raw) == text


def test_enum_and_set_members_arrive_as_bytes_of_their_character_set():
    enum = ColumnFacts("e", typemap.TEXT, "enum", "enum('x','ü')", charset="latin1")
    assert to_text(enum, b"\xfc") == "ü" and to_text(enum, "") == ""
    members = ColumnFacts("s", typemap.TEXT, "set", "set('ä','ö','o')", charset="latin1")
    assert to_text(members, {b"o", b"\xe4"}) == "ä,o"  # in definition order, as MySQL prints a SET


def test_a_value_no_codec_reads_fails_naming_the_column_and_character_set():
    from aurora_replication.source.binlog_values import UnrepresentableValueError

    facts = ColumnFacts("c", typemap.TEXT, "varchar", "varchar(10)", charset="utf8mb4")
    with pytest.raises(UnrepresentableValueError, match="column 'c': a value in character set 'utf8mb4'"):
        to_text(facts, b"\xff\xfe")
    unknown = ColumnFacts("k", typemap.TEXT, "varchar", "varchar(10)", charset="keybcs2")
    with pytest.raises(UnrepresentableValueError, match="'keybcs2' cannot be decoded"):
        to_text(unknown, b"x")


def test_install_puts_the_whole_image_reader_in_place_and_keeps_the_library_one_for_the_rest():
    from pymysqlreplication.row_event import RowsEvent

    binlog_decode.install()
    binlog_decode.install()  # idempotent: the library's own reader is kept, not our own wrapped again
    assert RowsEvent._read_column_data is binlog_decode._read_column_data
    assert binlog_decode._ORIGINAL["read_column_data"] is not binlog_decode._read_column_data


class _Packet:
    """The few reads of the library's packet wrapper a row image of these columns needs."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int) -> bytes:
        size = int(size)
        out, self.at = self.data[self.at : self.at + size], self.at + size
        return out

    # the library's own readers over ``read``
    from pymysqlreplication.packet import BinLogPacketWrapper as _Wrapper

    read_uint8 = _Wrapper.read_uint8
    read_int64 = _Wrapper.read_int64
    read_uint64 = _Wrapper.read_uint64
    read_uint16 = _Wrapper.read_uint16
    read_uint24 = _Wrapper.read_uint24
    read_uint32 = _Wrapper.read_uint32
    read_uint_by_size = _Wrapper.read_uint_by_size
    read_length_coded_pascal_string = _Wrapper.read_length_coded_pascal_string


def _event(columns: list[Any], image: bytes) -> Any:
    from types import SimpleNamespace

    from pymysqlreplication.constants import BINLOG
    from pymysqlreplication.row_event import WriteRowsEvent

    event = WriteRowsEvent.__new__(WriteRowsEvent)
    event.packet = _Packet(image)
    event.columns = columns
    event.table_id = 7
    event.table_map = {7: SimpleNamespace(columns=columns)}
    event.event_type = BINLOG.WRITE_ROWS_EVENT_V2
    event._RowsEvent__none_sources = {}
    return event


def test_the_whole_image_reader_returns_what_the_library_returns():
    """The same bytes read by the library's reader and by ours: the same values and None sources."""
    from types import SimpleNamespace

    binlog_decode.install()
    c = SimpleNamespace
    columns = [
        c(name="tiny", type=1, unsigned=False),
        c(name="utiny", type=1, unsigned=True),
        c(name="short", type=2, unsigned=False),
        c(name="ulong", type=3, unsigned=True),
        c(name="long", type=3, unsigned=False),
        c(name="big", type=8, unsigned=False),
        c(name="ubig", type=8, unsigned=True),
        c(name="flt", type=4, unsigned=False),
        c(name="dbl", type=5, unsigned=False),
        c(name="vc", type=15, unsigned=False, max_length=300),
        c(name="ch", type=254, unsigned=False, max_length=40),
        c(name="blob", type=252, unsigned=False, length_size=2),
        c(name="nothing", type=3, unsigned=False),  # NULL
        c(name="d", type=10, unsigned=False),
        c(name="dt", type=18, unsigned=False, fsp=6),
        c(name="yr", type=13, unsigned=False),  # YEAR: the library's own reader
    ]
    null_bitmap = (1 << 12).to_bytes(2, "little")
    image = (
        null_bitmap
        + (-5).to_bytes(1, "little", signed=True)
        + (250).to_bytes(1, "little")
        + (-300).to_bytes(2, "little", signed=True)
        + (4_000_000_000).to_bytes(4, "little")
        + (-2_000_000_000).to_bytes(4, "little", signed=True)
        + (-(2**63)).to_bytes(8, "little", signed=True)
        + (2**64 - 1).to_bytes(8, "little")
        + bytes.fromhex("cdcccc3d")  # 0.1 as a FLOAT
        + bytes.fromhex("9a9999999999b93f")  # 0.1 as a DOUBLE
        + (5).to_bytes(2, "little")
        + "héll".encode()
        + (3).to_bytes(1, "little")
        + b"ab "
        + (2).to_bytes(2, "little")
        + b"\x00\xff"
        + ((2024 << 9) | (2 << 5) | 29).to_bytes(3, "little")
        + bytes.fromhex("8000000000")
        + (0).to_bytes(3, "big")  # DATETIME2(6): a zero date, as its text
        + bytes([124])  # YEAR 2024
    )
    ours_event, theirs_event = _event(columns, image), _event(columns, image)
    bitmap = b"\xff\xff"
    ours = binlog_decode._read_column_data(ours_event, bitmap)
    theirs = binlog_decode._ORIGINAL["read_column_data"](theirs_event, bitmap)
    assert ours == theirs
    assert ours_event._RowsEvent__none_sources == theirs_event._RowsEvent__none_sources == {"nothing": "null"}
    assert ours_event.packet.at == theirs_event.packet.at == len(image)
    assert ours["ulong"] == 4_000_000_000 and ours["big"] == -(2**63) and ours["vc"] == "héll".encode()
    assert ours["d"] == dt.date(2024, 2, 29) and ours["dt"] == "0000-00-00 00:00:00.000000" and ours["yr"] == 2024
