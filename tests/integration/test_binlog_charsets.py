"""The binlog path reads text in every character set as MySQL's ``CONVERT(col USING utf8mb4)`` does.

A change read from the binlog arrives as the bytes of the value in its column's character set and is
decoded in Python (``source.binlog_values.decode_text``); the copy path has MySQL convert it. Python's
codec of a character set's name is not always MySQL's table: cp866's 0xFC is ``ⁿ`` in MySQL and ``№``
in Python, greek's 0xA1 ``ʽ`` and ``‘``, sjis's 0x815F ``\\`` and ``＼``. Every byte of each single-byte
character set, every two-byte sequence of each multi-byte one and the three-byte ones of ujis and
eucjpms are decoded both ways here: where Python decodes a sequence that MySQL reads as a character,
the two must be the same character (a sequence Python refuses fails its table's window with a message
naming the column and the character set, which is allowed; one MySQL itself cannot convert, read as
``?`` or U+FFFD, is left out: no text written through MySQL holds it).
"""

from __future__ import annotations

import pytest

from aurora_replication.source.binlog_values import ColumnFacts, UnrepresentableValueError, decode_text

MULTI_BYTE_SKIPPED = {"utf8mb3", "utf8mb4", "utf16", "utf16le", "utf32", "ucs2"}  # the property tests' own
BATCH = 800


def _sequences(charset: str, maxlen: int) -> list[bytes]:
    single = [bytes([b]) for b in range(256)]
    if maxlen == 1:
        return single
    double = [bytes([a, b]) for a in range(0x81, 0xFF) for b in range(0x40, 0xFF)]
    if charset in ("ujis", "eucjpms"):
        double += [bytes([0x8F, a, b]) for a in range(0xA1, 0xFF) for b in range(0xA1, 0xFF)]
    return single + double


def _mysql_reads(cur, charset: str, sequences: list[bytes]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(sequences), BATCH):
        part = sequences[i : i + BATCH]
        cur.execute(
            "SELECT " + ", ".join(f"HEX(CONVERT(CONVERT(X'{s.hex()}' USING {charset}) USING utf8mb4))" for s in part)
        )
        out += [bytes.fromhex(h).decode("utf-8") for h in cur.fetchone()]
    return out


def _charsets(servers) -> list[tuple[str, int]]:
    conn = servers[0].connect()
    with conn.cursor() as cur:
        cur.execute("SELECT CHARACTER_SET_NAME, MAXLEN FROM information_schema.CHARACTER_SETS ORDER BY 1")
        found = [(str(n), int(m)) for n, m in cur.fetchall() if n != "binary" and n not in MULTI_BYTE_SKIPPED]
    conn.close()
    return found


def test_every_character_set_decodes_as_mysql_converts(servers):
    conn = servers[0].connect()
    differs: dict[str, list[tuple[str, str, str]]] = {}
    decoded = 0
    with conn.cursor() as cur:
        for charset, maxlen in _charsets(servers):
            facts = ColumnFacts(name="c", kind="text", data_type="varchar", column_type="varchar(4)", charset=charset)
            sequences = _sequences(charset, maxlen)
            for raw, mysql in zip(sequences, _mysql_reads(cur, charset, sequences), strict=True):
                if mysql == "\ufffd" or ("?" in mysql and b"?" not in raw):
                    continue  # MySQL has no character for it: no text written through MySQL holds it
                try:
                    ours = decode_text(facts, raw)
                except UnrepresentableValueError:
                    continue  # refused, with the column and the character set named
                decoded += 1
                if ours != mysql:
                    differs.setdefault(charset, []).append((raw.hex().upper(), mysql, ours))
    conn.close()
    assert decoded > 100_000
    assert not differs, {cs: found[:10] for cs, found in differs.items()}


@pytest.mark.parametrize(
    "charset, raw, mysql",
    [
        ("cp866", b"\xfc\xfd", "ⁿ²"),
        ("greek", b"\xa1\xa2", "ʽʼ"),
        ("hebrew", b"\xaf", "‾"),
        ("koi8u", b"\x95", "•"),
        ("sjis", b"\x81\x5f", "\\"),
        ("ujis", b"\xa1\xc0", "\\"),
        ("euckr", b"\x81\x41", "갂"),  # the CP949 extension MySQL's euckr holds
    ],
)
def test_the_characters_python_reads_otherwise(charset, raw, mysql):
    facts = ColumnFacts(name="c", kind="text", data_type="varchar", column_type="varchar(4)", charset=charset)
    assert decode_text(facts, raw) == mysql
