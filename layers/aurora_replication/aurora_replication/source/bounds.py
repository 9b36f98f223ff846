"""Chunk bounds: contiguous key ranges ``lower < key <= upper`` of about ``chunk_rows`` rows each,
found from the storage engine's range estimates and single-row index dives, so that planning a
table costs a few statements per chunk, not a read of its rows.

How (docs/architecture.md, "Planning chunk bounds", says why and what it costs):

* ``EXPLAIN SELECT 1 FROM t FORCE INDEX (key) WHERE lower < key <= upper`` gives InnoDB's
  records_in_range estimate of the range (two dives, nothing read); a hundred ranges go in one
  EXPLAIN of a UNION ALL;
* ``SELECT key ... WHERE ... ORDER BY key DESC LIMIT 1`` is one dive that returns a real key
  (a hundred per UNION ALL statement too);
* a range whose estimate is above the target is cut: candidate values are interpolated between
  the first and the last key in it, on the first key column where those two differ (integers,
  decimals, dates, datetimes and times by arithmetic; strings in the rank space of the
  collation's own character weights; binary strings as big numbers of their bytes; FLOAT and
  DOUBLE by value, or by the order of their bits across many orders of magnitude); each
  candidate is snapped to the last real key at or below it inside the range, and the distinct
  keys found are put in order by the server (``ORDER BY`` of a point lookup of each). The cuts
  are therefore real keys strictly inside the range, strictly increasing in the server's own
  comparison, whatever the collation: the ranges partition the key space exactly however good
  or bad the candidates are, and the candidates decide only the balance;
* binary key values travel as hexadecimal text and are compared as bytes (``UNHEX(%s)``), FLOAT
  and DOUBLE ones as the exact text of the stored value, BIT ones as their number
  (``source.sql.KeyForm``);
* a composite key is cut on its leading column, and on the next one only where the first and
  the last key of a range share the leading value (one value holding more than a chunk);
* estimates are calibrated against the table's row estimate (InnoDB doubles estimates of
  ranges that span more than 10 pages), and small adjacent pieces are merged.

Small tables (by the row estimate) and single ranges that candidates cannot cut are walked
exactly with ``LIMIT 1 OFFSET n`` (which reads the rows it skips); a key MySQL cannot
range-scan (ENUM, SET, BIT leading columns) is walked as before, whole.
"""

from __future__ import annotations

import calendar
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import pymysql

from aurora_replication.source import sql

Bound = list[str]
Range = tuple[Bound | None, Bound | None]

# a table estimated below this many rows is walked exactly (at most this many rows read, and
# chunks of exactly chunk_rows rows); the walk stops and hands over to the estimates if the
# estimate was stale and the table holds more than twice this
SMALL_TABLE_ROWS = 100_000
MAX_ROOT_PIECES = 1024  # pieces of the first cut of the whole key space
MAX_PIECES = 64  # pieces of any later cut
MAX_DEPTH = 100  # cuts nested deeper than this are walked (a guard; integer keys need < 64)
# InnoDB's estimates of ranges spanning more than N_PAGES_READ_LIMIT (10) pages are
# extrapolated and doubled; exact below that: the calibration factor stays within these
MIN_CALIBRATION, MAX_CALIBRATION = 1.0, 2.5
ROOT_MARGIN = 1.25  # the first cut aims at chunk_rows / ROOT_MARGIN rows per piece
SMALL_PIECE = 0.25  # pieces estimated below this share of a chunk weigh as exact counts when merged
# InnoDB returns this constant when the tree changed under its two dives four times in a row
SUSPECT_ESTIMATE = 10
BATCH = 100  # estimates or dives per statement
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})
FLOAT_TYPES = frozenset({"float", "double", "real"})


@dataclass
class PlanStats:
    """What planning one table cost and how it chose its bounds (for logs, tests and the bench)."""

    method: str = ""  # "walk" (small table or key not range-scannable), "estimates"
    statements: int = 0
    rows_walked: int = 0  # rows MySQL read to skip them (OFFSET walks)
    walked_ranges: int = 0  # ranges estimates could not cut, walked exactly
    pieces: int = 0  # ranges before merging
    calibration: float = 1.0
    notes: list[str] = field(default_factory=list)


class _NotRangeScannable(Exception):
    """EXPLAIN did not choose a range scan of the key: estimates are not range estimates."""


# ---- key domains: candidate values between two keys ------------------------------------------


class Domain(Protocol):
    def same(self, a: str, b: str) -> bool: ...

    def candidates(self, low: str, high: str, k: int, include_low: bool) -> list[str]:
        """About ``k`` values from ``low`` towards ``high`` (excluded), at fractions 0/k .. (k-1)/k;
        ``low`` itself only with ``include_low``. Only their balance matters, never their
        correctness: each is snapped to a real key by the server."""
        ...


class _Arithmetic:
    """A domain mapped monotonically onto the integers."""

    def __init__(self, encode: Callable[[str, str, str], int], decode: Callable[[int, str, str], str]):
        self._encode = encode
        self._decode = decode

    def same(self, a: str, b: str) -> bool:
        return a == b

    def candidates(self, low: str, high: str, k: int, include_low: bool) -> list[str]:
        try:
            lo, hi = self._encode(low, low, high), self._encode(high, low, high)
        except (ValueError, InvalidOperation, IndexError):
            return [low] if include_low else []
        out = [low] if include_low else []
        if hi <= lo:
            return out
        seen = {low}
        for i in range(1, k):
            text = self._decode(lo + (hi - lo) * i // k, low, high)
            # decoding is monotonic, not one to one (codes past a month's end name a real day)
            if text not in seen and lo < self._encode(text, low, high) < hi:
                seen.add(text)
                out.append(text)
        return out


def _int_encode(v: str, _low: str, _high: str) -> int:
    return int(v)


def _scale(*values: str) -> int:
    return max((len(v.split(".", 1)[1]) if "." in v else 0) for v in values)


def _decimal_encode(v: str, low: str, high: str) -> int:
    return int(Decimal(v).scaleb(_scale(low, high)))


def _decimal_decode(n: int, low: str, high: str) -> str:
    return format(Decimal(n).scaleb(-_scale(low, high)), "f")


# dates as y * 416 + m * 32 + d: monotonic in (y, m, d) and defined for MySQL's zero dates too
def _date_code(text: str) -> int:
    y, m, d = (int(p) for p in text[:10].split("-"))
    return y * 416 + m * 32 + d


def _date_parts(code: int) -> tuple[str, str]:
    """The date of a code, and how it was moved to a real one: forward to a year's first day
    ("start"), back to a month's last day ("end"), or not at all ("")."""
    y, rest = divmod(code, 416)
    m, d = divmod(rest, 32)
    moved = ""
    if m == 0:  # before January: the year's first day keeps the order
        m, d, moved = 1, 1, "start"
    elif d == 0:
        d, moved = 1, "start"
    last = calendar.monthrange(max(y, 1), m)[1]
    if d > last:
        d, moved = last, "end"
    return f"{y:04d}-{m:02d}-{d:02d}", moved


def _date_text(code: int) -> str:
    return _date_parts(code)[0]


def _clock_micros(text: str) -> int:
    """'[-]H:MM:SS[.ffffff]' as signed microseconds."""
    sign = -1 if text.startswith("-") else 1
    hms, _, frac = text.lstrip("-").partition(".")
    h, m, s = (int(p) for p in hms.split(":"))
    return sign * (((h * 60 + m) * 60 + s) * 1_000_000 + int((frac + "000000")[:6]))


def _clock_text(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    seconds, us = divmod(abs(micros), 1_000_000)
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}.{us:06d}"


DAY_MICROS = 86_400 * 1_000_000


def _datetime_encode(v: str, _low: str, _high: str) -> int:
    date, _, clock = v.strip().partition(" ")
    return _date_code(date) * DAY_MICROS + (_clock_micros(clock) if clock else 0)


def _datetime_decode(n: int, _low: str, _high: str) -> str:
    day, micros = divmod(n, DAY_MICROS)
    date, moved = _date_parts(day)
    # a day moved to a real one takes that day's first or last instant: the order is kept
    micros = {"start": 0, "end": DAY_MICROS - 1}.get(moved, micros)
    return f"{date} {_clock_text(micros)}"


INTEGERS = _Arithmetic(_int_encode, lambda n, _lo, _hi: str(n))
DECIMALS = _Arithmetic(_decimal_encode, _decimal_decode)
DATES = _Arithmetic(lambda v, _lo, _hi: _date_code(v), lambda n, _lo, _hi: _date_text(n))
DATETIMES = _Arithmetic(_datetime_encode, _datetime_decode)
TIMES = _Arithmetic(lambda v, _lo, _hi: _clock_micros(v), lambda n, _lo, _hi: _clock_text(n))

# the characters every string domain knows from the start; others are learned from the keys
BASE_ALPHABET = "".join(chr(c) for c in range(0x20, 0x7F))
EXTRA_DIGITS = 3  # positions past the common prefix that candidates are interpolated over


class Strings:
    """Strings under one collation, as numbers: each character is a digit, its rank among the
    distinct collation weights of the characters known so far (0 ends the string). Weights come
    from the server (``WEIGHT_STRING``), so ``a`` and ``A`` are one digit under a case-insensitive
    collation and accents sort where the collation puts them; only balance depends on it."""

    def __init__(self, weigh: Callable[[list[str]], list[bytes]]):
        self._weigh = weigh
        self._weight: dict[str, bytes] = {}
        self._rank: dict[bytes, int] = {}
        self._reps: list[str] = []
        self.learn(BASE_ALPHABET)

    def learn(self, text: str) -> None:
        new = sorted(set(text) - self._weight.keys())
        if not new:
            return
        for i in range(0, len(new), 200):
            batch = new[i : i + 200]
            self._weight.update(zip(batch, self._weigh(batch), strict=True))
        reps: dict[bytes, str] = {}
        for ch, w in sorted(self._weight.items()):
            if w:  # an empty weight: a character the collation ignores
                reps.setdefault(w, ch)
        order = sorted(reps)
        self._rank = {w: i + 1 for i, w in enumerate(order)}
        self._reps = [reps[w] for w in order]

    def digits(self, s: str) -> list[int]:
        self.learn(s)
        return [self._rank[w] for ch in s.rstrip(" ") if (w := self._weight[ch])]

    def same(self, a: str, b: str) -> bool:
        return self.digits(a) == self.digits(b)

    def candidates(self, low: str, high: str, k: int, include_low: bool) -> list[str]:
        dl, dh = self.digits(low), self.digits(high)
        base = len(self._reps) + 1
        prefix = 0
        while prefix < min(len(dl), len(dh)) and dl[prefix] == dh[prefix]:
            prefix += 1
        width = prefix + EXTRA_DIGITS

        def number(d: list[int]) -> int:
            n = 0
            for x in (d + [0] * width)[:width]:
                n = n * base + x
            return n

        def text(n: int) -> str:
            d = []
            for _ in range(width):
                n, x = divmod(n, base)
                d.append(x)
            chars = []
            for x in reversed(d):
                if x == 0:
                    break
                chars.append(self._reps[x - 1])
            return "".join(chars)

        lo, hi = number(dl), number(dh)
        out = [low] if include_low else []
        if hi <= lo:
            return out
        seen = {lo}
        for i in range(1, k):
            v = lo + (hi - lo) * i // k
            if v not in seen:
                seen.add(v)
                out.append(text(v))
        return out


class Bytes:
    """Byte strings (BINARY, VARBINARY, BLOB) as hexadecimal text, in MySQL's binary order (byte by
    byte, a prefix first). Two values of one length (a BINARY(n) column's are all of one length) are
    big-endian numbers of that many bytes, so every candidate has that length too (a shorter one
    would be padded with 0x00 by the range optimiser and compared unpadded by the row filter); values
    of different lengths are numbers of base 257 (a byte plus one; 0 ends the value) over the common
    prefix and a few bytes more, as ``Strings`` does with characters."""

    def same(self, a: str, b: str) -> bool:
        return a.upper() == b.upper()

    def candidates(self, low: str, high: str, k: int, include_low: bool) -> list[str]:
        out = [low] if include_low else []
        try:
            lb, hb = bytes.fromhex(low), bytes.fromhex(high)
        except ValueError:
            return out
        encode: Callable[[bytes], int]
        decode: Callable[[int], bytes]
        if len(lb) == len(hb):
            size = len(lb)

            def encode(b: bytes) -> int:
                return int.from_bytes(b, "big")

            def decode(n: int) -> bytes:
                return n.to_bytes(size, "big")

        else:
            prefix = 0
            while prefix < min(len(lb), len(hb)) and lb[prefix] == hb[prefix]:
                prefix += 1
            width = prefix + EXTRA_DIGITS

            def encode(b: bytes) -> int:
                n = 0
                for x in ([c + 1 for c in b] + [0] * width)[:width]:
                    n = n * 257 + x
                return n

            def decode(n: int) -> bytes:
                digits = []
                for _ in range(width):
                    n, x = divmod(n, 257)
                    digits.append(x)
                value = bytearray()
                for x in reversed(digits):
                    if x == 0:
                        break
                    value.append(x - 1)
                return bytes(value)

        lo, hi = encode(lb), encode(hb)
        if hi <= lo:
            return out
        # decoding stops at a 0 digit: numbers between "ab" and "ab\x00" all name "ab"
        seen = {lb}
        for i in range(1, k):
            value = decode(lo + (hi - lo) * i // k)
            if value not in seen:
                seen.add(value)
                out.append(value.hex().upper())
        return out


class Floats:
    """FLOAT (``single``) or DOUBLE values as the exact text of each value as a double
    (``source.sql.KeyForm``). Candidates are even in value, or even in the order of the values'
    bits (about even in magnitude) where the range spans more than ``SPREAD`` times its smaller
    end; a range across zero has zero among its candidates, so that each side is then cut by its
    own spread; a FLOAT's candidates are single-precision values, which the range optimiser (which
    stores a constant into the column's type) and the row filter (which compares doubles) read
    alike."""

    SPREAD = 1024.0

    def __init__(self, single: bool):
        self.single = single
        self._pack, self._int, self._sign = (">f", ">i", 1 << 31) if single else (">d", ">q", 1 << 63)

    def same(self, a: str, b: str) -> bool:
        return float(a) == float(b)

    def _ordered(self, x: float) -> int:
        bits = int(struct.unpack(self._int.upper(), struct.pack(self._pack, x))[0])
        magnitude = bits & (self._sign - 1)
        return -magnitude if bits & self._sign else magnitude

    def _value(self, n: int) -> float:
        bits = abs(n) | (self._sign if n < 0 else 0)
        return float(struct.unpack(self._pack, struct.pack(self._int.upper(), bits))[0])

    def _exact(self, x: float) -> float:
        return float(struct.unpack(">f", struct.pack(">f", x))[0]) if self.single else x

    def candidates(self, low: str, high: str, k: int, include_low: bool) -> list[str]:
        out = [low] if include_low else []
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            return out
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            return out
        small = min(abs(lo), abs(hi))
        by_bits = (lo > 0 or hi < 0) and max(abs(lo), abs(hi)) > self.SPREAD * small
        seen = {lo}
        if lo < 0.0 < hi:  # zero first: each side is then cut by its own spread
            seen.add(0.0)
            out.append("0")
        for i in range(1, k):
            if by_bits:
                a, b = self._ordered(lo), self._ordered(hi)
                v = self._value(a + (b - a) * i // k)
            else:
                t = i / k
                v = self._exact(lo * (1 - t) + hi * t)  # no overflow where hi - lo would
            if lo < v < hi and v not in seen:
                seen.add(v)
                out.append(repr(v))
        return out


def code_point_weights(chars: list[str]) -> list[bytes]:
    """Weights by code point (utf8mb4_bin order): the fallback when the server cannot say."""
    return [ord(c).to_bytes(4, "big") for c in chars]


# ---- the planner ----------------------------------------------------------------------------


class _Planner:
    def __init__(self, conn: pymysql.Connection[Any], table: str, key: list[str], chunk_rows: int, stats: PlanStats):
        self.conn = conn
        self.table = table
        self.key = key
        self.chunk_rows = max(int(chunk_rows), 1)
        self.stats = stats
        self.index: str | None = None
        self.form = sql.PLAIN
        self.domains: list[Domain | None] = []
        self.max_key: Bound | None = None
        self.leaves: list[tuple[Bound | None, int, bool]] = []  # (upper, rows or estimate, exact)
        self.factor = 1.0  # estimate per row
        self.target = float(self.chunk_rows)  # most a piece may weigh in estimates

    # statements

    def rows(self, statement: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self.stats.statements += 1
        with self.conn.cursor() as cur:
            cur.execute(statement, tuple(params))
            return list(cur.fetchall())

    def explain(self, statement: str, params: Sequence[object] = ()) -> dict[int, tuple[int, str]]:
        """``rows`` and ``type`` by select ``id`` of an EXPLAIN (MariaDB and MySQL 8 print both)."""
        self.stats.statements += 1
        with self.conn.cursor() as cur:
            cur.execute(statement, tuple(params))
            names = [str(d[0]).lower() for d in cur.description or ()]
            found = list(cur.fetchall())
        if "rows" not in names or "id" not in names:
            return {}
        rows, ident = names.index("rows"), names.index("id")
        kind = names.index("type") if "type" in names else None
        return {
            int(r[ident]): (int(r[rows] or 0), str(r[kind] or "") if kind is not None else "")
            for r in found
            if r[ident] is not None  # MySQL's <unionN,M> result row
        }

    def key_of(self, rows: list[tuple[Any, ...]]) -> Bound | None:
        return [_text(v) for v in rows[0]] if rows else None

    def edge(self, *, last: bool, **where: Sequence[object] | None) -> Bound | None:
        statement, params = sql.edge_key_query(self.table, self.index, self.key, last=last, form=self.form, **where)
        return self.key_of(self.rows(statement, params))

    def estimates(self, ranges: Sequence[Range]) -> list[int]:
        """The records_in_range estimate of each range, a hundred ranges per EXPLAIN."""
        out: list[int] = []
        for i in range(0, len(ranges), BATCH):
            batch = ranges[i : i + BATCH]
            found = self.explain(*sql.range_estimate_query(self.table, self.index, self.key, batch, self.form))
            for n, (lower, upper) in enumerate(batch, start=1):
                rows, kind = found.get(n, (0, ""))
                if (lower is not None or upper is not None) and kind.lower() not in ("range", ""):
                    raise _NotRangeScannable(kind or "unknown")
                out.append(rows)
        for i, n in enumerate(out):
            if n == SUSPECT_ESTIMATE:  # maybe InnoDB's "the tree changed under me": ask once more
                again = sql.range_estimate_query(self.table, self.index, self.key, [ranges[i]], self.form)
                out[i] = self.explain(*again).get(1, (n, ""))[0]
        return out

    # discovery

    def describe(self) -> None:
        columns = {
            str(name): (str(data_type).lower(), charset, collation)
            for name, data_type, charset, collation in self.rows(sql.key_columns_query(), [self.table])
        }
        indexes: dict[str, list[tuple[str, Any]]] = {}
        for name, column, sub_part in self.rows(sql.key_indexes_query(), [self.table]):
            indexes.setdefault(str(name), []).append((str(column), sub_part))
        for name, cols in sorted(indexes.items(), key=lambda kv: kv[0] != "PRIMARY"):
            if [c for c, _ in cols] == self.key and all(sub is None for _, sub in cols):
                self.index = name
                break
        self.domains = [self.domain(*columns[k]) if k in columns else None for k in self.key]
        types = {k: columns[k][0] for k in self.key if k in columns}
        self.form = sql.KeyForm(
            binary=frozenset(k for k, t in types.items() if t in BINARY_TYPES),
            floats=frozenset(k for k, t in types.items() if t in FLOAT_TYPES),
            bits=frozenset(k for k, t in types.items() if t == "bit"),
        )

    def domain(self, data_type: str, charset: Any, collation: Any) -> Domain | None:
        if data_type in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"):
            return INTEGERS
        if data_type in ("decimal", "numeric"):
            return DECIMALS
        if data_type == "date":
            return DATES
        if data_type in ("datetime", "timestamp"):
            return DATETIMES
        if data_type == "time":
            return TIMES
        if data_type in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext"):
            return Strings(self.weigher(str(charset or ""), str(collation or "")))
        if data_type in BINARY_TYPES:
            return Bytes()
        if data_type in FLOAT_TYPES:
            return Floats(single=data_type == "float")
        return None  # enum, set, bit and anything else: MySQL compares them otherwise than it orders them

    def weigher(self, charset: str, collation: str) -> Callable[[list[str]], list[bytes]]:
        def weigh(chars: list[str]) -> list[bytes]:
            try:
                row = self.rows(sql.weights_query(charset, collation, len(chars)), chars)[0]
            except (ValueError, pymysql.err.MySQLError):
                return code_point_weights(chars)
            return [bytes.fromhex(_text(w)) for w in row]

        return weigh

    # planning

    def table_rows(self) -> int:
        return self.explain(sql.row_estimate_query(self.table, self.index)).get(1, (0, ""))[0]

    def walk(
        self, lower: Bound | None, upper: Bound | None, max_probes: int | None = None
    ) -> tuple[list[Range], Bound | None, bool]:
        """Exact bounds of ``chunk_rows`` rows from ``lower`` (to ``upper``): each probe reads the rows
        it skips. Returns the ranges, where it stopped, and whether it reached ``upper``."""
        out: list[Range] = []
        probes = 0
        while max_probes is None or probes < max_probes:
            statement, params = sql.bound_probe_query(
                self.table, self.key, lower, self.chunk_rows - 1, upper, self.form
            )
            found = self.key_of(self.rows(statement, params))
            probes += 1
            if found is None:
                out.append((lower, upper))
                return out, upper, True
            self.stats.rows_walked += self.chunk_rows
            out.append((lower, found))
            lower = found
        return out, lower, False

    def plan(self) -> list[Range]:
        self.describe()
        if self.domains[0] is None:
            self.stats.method = "walk"
            self.stats.notes.append(
                f"table {self.table!r}: its key's leading column is of a type MySQL cannot range-scan "
                "(ENUM, SET, BIT); chunk bounds walk the whole index"
            )
            return self.walk(None, None)[0]
        total = self.table_rows()
        walked: list[Range] = []
        lower: Bound | None = None
        if total <= SMALL_TABLE_ROWS:
            self.stats.method = "walk"
            walked, lower, done = self.walk(None, None, max_probes=2 * SMALL_TABLE_ROWS // self.chunk_rows + 2)
            if done:
                return walked
            self.stats.notes.append(
                f"table {self.table!r}: its row estimate ({total:,}) is stale (more than {self.stats.rows_walked:,} "
                "rows); the estimates plan the rest uncalibrated (chunks at most chunk_rows, maybe smaller)"
            )
        self.stats.method = "estimates" if not walked else "walk, then estimates"
        try:
            return walked + self.plan_estimated(lower, total if not walked else None)
        except _NotRangeScannable as e:
            self.stats.method = "walk"
            self.stats.notes.append(
                f"table {self.table!r}: MySQL does not range-scan its key (EXPLAIN type {e}); "
                "chunk bounds walk the whole index"
            )
            return walked + self.walk(lower, None)[0]

    def plan_estimated(self, lower: Bound | None, rows: int | None) -> list[Range]:
        """Bounds from ``lower`` on; ``rows`` is the table's row estimate, None when it is known to be
        wrong (then estimates are not calibrated: chunks hold at most chunk_rows rows, maybe fewer)."""
        self.max_key = self.edge(last=True)
        if self.max_key is None:
            return [(lower, None)]
        self.leaves = []
        # the first cut aims a little below chunk_rows per piece, so that most pieces need no second cut
        root = math.ceil(ROOT_MARGIN * rows / self.chunk_rows) if rows else 2
        cuts = self.cut(lower, None, min(max(root, 2), MAX_ROOT_PIECES))
        edges = [lower, *cuts, None]
        ranges = list(zip(edges, edges[1:], strict=False))
        pieces = [(a, b, e) for (a, b), e in zip(ranges, self.estimates(ranges), strict=True)]
        # what one row weighs in estimates (about 2 for ranges over more than 10 pages of a tree of
        # three levels or more); capped estimates (half the table) make it look lighter, never heavier
        self.factor = self.calibrate(sum(e for _, _, e in pieces), rows)
        self.target = self.factor * self.chunk_rows
        for a, b, e in pieces:
            self.split(a, b, e, 1)
        self.stats.pieces = len(self.leaves)
        estimated = [n for _, n, exact in self.leaves if not exact]
        exact_rows = sum(n for _, n, exact in self.leaves if exact)
        if estimated and rows is not None:
            self.factor = self.calibrate(sum(estimated), rows - exact_rows)
        return self.merge(lower)

    @staticmethod
    def calibrate(estimated: int, rows: int | None) -> float:
        """Estimate per row, within what InnoDB can do; the lowest (no chunk larger than asked) when
        the row count is unknown."""
        if rows is None:
            return MIN_CALIBRATION
        return min(max(estimated / max(rows, 1), MIN_CALIBRATION), MAX_CALIBRATION)

    def split(self, lo: Bound | None, hi: Bound | None, est: int, depth: int) -> None:
        """Cut ``lo < key <= hi`` until every piece's estimate is within the target, into ``self.leaves``."""
        if est <= self.target:
            self.leaves.append((hi, est, False))
            return
        pieces = min(max(math.ceil(est / self.target) + 1, 2), MAX_PIECES)
        cuts = self.cut(lo, hi, pieces) if depth < MAX_DEPTH else []
        if not cuts:
            self.walk_range(lo, hi)
            return
        edges = [lo, *cuts, hi]
        ranges = list(zip(edges, edges[1:], strict=False))
        for (a, b), e in zip(ranges, self.estimates(ranges), strict=True):
            self.split(a, b, e, depth + 1)

    def cut(self, lo: Bound | None, hi: Bound | None, pieces: int) -> list[Bound]:
        """Real keys strictly inside ``(lo, hi)``, strictly increasing, near ``pieces`` even cuts."""
        low = self.edge(last=False, after=lo, before=hi)
        high = hi if hi is not None else self.max_key
        if low is None or high is None:
            return []
        level = next(
            (i for i, d in enumerate(self.domains) if not (d.same(low[i], high[i]) if d else low[i] == high[i])),
            len(self.key),
        )
        if level == len(self.key):  # the range holds one key
            return []
        domain = self.domains[level]
        if domain is None:
            return []
        prefix = high[:level]
        # on a leading column of a composite key, the first candidate is the first key's own value:
        # its cut separates the rest of that value's rows from the next values
        candidates = domain.candidates(low[level], high[level], pieces, include_low=level < len(self.key) - 1)
        # each candidate snapped to the last real key at or below it inside the range (one dive
        # each, a hundred per statement), then the distinct keys put in order by the server itself
        found: dict[tuple[str, ...], None] = {}
        for i in range(0, len(candidates), BATCH):
            bounds = [[*prefix, c] for c in candidates[i : i + BATCH]]
            statement, params = sql.last_keys_query(
                self.table, self.index, self.key, after=lo, before=hi, at_most=bounds, form=self.form
            )
            found.update((tuple(_text(v) for v in row), None) for row in self.rows(statement, params))
        if len(found) <= 1:
            return [list(k) for k in found]
        statement, params = sql.ordered_keys_query(self.table, self.index, self.key, list(found), self.form)
        return [[_text(v) for v in row] for row in self.rows(statement, params)]

    def walk_range(self, lo: Bound | None, hi: Bound | None) -> None:
        """A range that candidates could not cut: walked exactly (reads its rows)."""
        ranges, _, _ = self.walk(lo, hi)
        self.stats.walked_ranges += 1
        for _, upper in ranges[:-1]:
            self.leaves.append((upper, self.chunk_rows, True))
        self.leaves.append((hi, self.chunk_rows, True))

    def merge(self, lower: Bound | None) -> list[Range]:
        """Adjacent pieces joined while they hold at most chunk_rows rows by the calibrated estimates;
        a small piece (maybe counted exactly by InnoDB, under 10 pages) weighs as if it were exact."""
        self.stats.calibration = round(self.factor, 3)
        target = self.factor * self.chunk_rows
        out: list[Range] = []
        start, load = lower, 0.0
        previous: Bound | None = lower
        for upper, n, exact in self.leaves:
            weight = n * self.factor if exact or n <= self.chunk_rows * SMALL_PIECE else float(n)
            if load and load + weight > target:
                out.append((start, previous))
                start, load = previous, 0.0
            load += weight
            previous = upper
        out.append((start, None))
        return out


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def plan_bounds(
    conn: pymysql.Connection[Any], table: str, key: list[str], chunk_rows: int, stats: PlanStats | None = None
) -> list[Range]:
    """Contiguous ranges covering the whole key space (first lower and last upper open), each of
    about ``chunk_rows`` rows; ``stats`` (when given) receives what it cost."""
    stats = stats if stats is not None else PlanStats()
    if not key:
        stats.method = "whole table"
        return [(None, None)]
    return _Planner(conn, table, key, chunk_rows, stats).plan()


def split_range(
    conn: pymysql.Connection[Any],
    table: str,
    key: list[str],
    lower: Bound | None,
    upper: Bound | None,
    pieces: int,
    min_rows: int,
) -> list[Range]:
    """``lower < key <= upper`` (a chunk's range) cut into at most ``pieces`` contiguous ranges of
    about equal rows, none estimated below ``min_rows``: the parts a chunk is read in at once. The
    cuts are real keys found as the planner finds them (``_Planner.cut``: even in the key's domain,
    snapped to keys by index dives, a few statements), so the parts cover the range exactly whatever
    their balance. One range, the whole one, when the range is estimated below two parts of
    ``min_rows``, or its key is not one MySQL range-scans or the planner can cut."""
    whole: list[Range] = [(lower, upper)]
    if pieces < 2 or not key:
        return whole
    planner = _Planner(conn, table, key, max(min_rows, 1), PlanStats())
    planner.describe()
    if planner.domains[0] is None:
        return whole
    try:
        estimate = planner.estimates(whole)[0]
    except _NotRangeScannable:
        return whole
    # InnoDB estimates a range over more than 10 pages at about twice its rows (what the planner
    # calibrates); halved here, a range is cut into fewer parts, never into parts below ``min_rows``
    wanted = min(pieces, estimate // 2 // max(min_rows, 1))
    if wanted < 2:
        return whole
    if upper is None:
        planner.max_key = planner.edge(last=True)
    cuts = planner.cut(lower, upper, wanted)
    if len(cuts) >= wanted:  # a composite key's first cut may be an extra one: keep wanted - 1, spread out
        cuts = [cuts[len(cuts) * i // wanted] for i in range(1, wanted)]
    edges = [lower, *cuts, upper]
    return list(zip(edges, edges[1:], strict=False))


def key_after(
    conn: pymysql.Connection[Any], table: str, key: list[str], lower: Bound | None, rows: int
) -> Bound | None:
    """The key ``rows`` rows after ``lower`` in the server's order (one ``LIMIT 1 OFFSET`` probe, which
    reads the rows it skips), so that ``lower < key <= found`` holds ``rows`` rows; None when no row
    follows that many (the range reaches the end of the table: a second probe, of one row, tells when
    the ``rows``-th is the last). The rolling audit's slice (``pipeline/audit.py``)."""
    if not key:
        return None
    _ranges, found, reached_end = _Planner(conn, table, key, rows, PlanStats()).walk(lower, None, max_probes=1)
    if reached_end or found is None:
        return None
    _ranges, _next, last = _Planner(conn, table, key, 1, PlanStats()).walk(found, None, max_probes=1)
    return None if last else found
