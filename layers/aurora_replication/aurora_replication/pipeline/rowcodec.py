"""A chunk's rows as MySQL sent them, turned on the worker into staging-file lines and checksum terms.

With ``EXTRACT_FORMAT=worker`` MySQL sends each row of a plain ``SELECT`` of the chunk's columns
(``source.sql.chunk_query``: binary as hex, BIT and YEAR as numbers, FLOAT widened to a double)
through the text protocol, which is MySQL's own rendering of each value, as bytes. This module makes
from the same bytes, independently of each other:

- each row's staging-file line (``pipeline.staging``'s encoding, byte for byte what
  ``source.sql._csv_field`` would have MySQL format), and
- each row's checksum term: the first 64 bits of the MD5 of the row's canonical text, the term
  ``source.sql.row_hash_hex`` has MySQL compute and ``target.sql._row_term`` has Snowflake compute
  from the loaded rows (docs/types.md lists the canonical spelling of each kind).

The terms come from the values, not from the lines, so a line the worker spells wrong (or Snowflake
reads differently) makes the chunk's checksum differ from the one Snowflake recomputes
(docs/exactness.md, "what each side proves").

Rows are handled a batch at a time, column by column, with ``map`` over C functions (decode, length,
formatting, MD5), so that no Python bytecode runs per value on the common path; NULLs, zero dates and
subnormal or zero doubles take a slower exact path only where a batch holds them.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import compress, repeat
from typing import Any

from aurora_replication import checksums, typemap
from aurora_replication.models import Column, TablePlan
from aurora_replication.pipeline import staging

try:  # CPython's own MD5 (HACL*), cheaper per call than OpenSSL's for short inputs; the same digest
    from _md5 import md5 as _md5_new
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import md5 as _md5_new

# MD5 as the checksum both engines compute (never for security)
_DIGEST = type(_md5_new()).digest  # noqa: S324

Values = Sequence[bytes | None]
Batch = Sequence[Sequence[bytes | None]]

SEPARATOR = b"\x1f"  # CHAR(31) between the canonical texts of a row's columns
CANONICAL_NULL = b"\x1e"  # CHAR(30): a NULL (or a zero date) in the canonical text
CSV_NULL = b""  # an empty unquoted field (EMPTY_FIELD_AS_NULL)

_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_TWO_53 = float(1 << 53)


class RowEncodingError(ValueError):
    """A value the worker cannot spell as MySQL's canonical text (never expected: MySQL's own text)."""


# ---- one column of a batch: the non-NULL values in, one output per value ------------------------


def _decoded_lengths(values: Sequence[bytes]) -> Any:
    joined = b"".join(values)
    if joined.isascii():
        return map(len, values)
    return map(len, map(bytes.decode, values))


def _text_canonical(values: Sequence[bytes]) -> list[bytes]:
    """``CONCAT(CHAR_LENGTH(v), ':', v)``: the length in characters, not bytes."""
    return list(map(b"%d:%b".__mod__, zip(_decoded_lengths(values), values, strict=True)))


def _quoted(values: Sequence[bytes]) -> list[bytes]:
    if b'"' in b"".join(values):
        values = list(map(bytes.replace, values, repeat(b'"'), repeat(b'""')))
    return list(map(b'"%b"'.__mod__, values))


def _hex_quoted(values: Sequence[bytes]) -> list[bytes]:
    return list(map(b'"%b"'.__mod__, values))


def _with_micros(values: Sequence[bytes]) -> list[bytes]:
    """Datetimes spelled with exactly six fractional digits (the file format's ``TIMESTAMP_FORMAT``):
    MySQL prints a column's own number of digits, so one suffix serves a batch of one length."""
    lengths = set(map(len, values))
    if len(lengths) == 1:
        (length,) = lengths
        if length == 26:  # DATETIME(6), TIMESTAMP(6): as MySQL sent them
            return values  # type: ignore[return-value]
        if length == 19:
            return list(map(bytes.__add__, values, repeat(b".000000")))
        if 21 <= length <= 26:
            return list(map(bytes.__add__, values, repeat(b"0" * (26 - length))))
    return [typemap.with_micros(v.decode("ascii")).encode("ascii") for v in values]


def _micros(values: Sequence[bytes]) -> list[bytes]:
    """``TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', v)`` as text (proleptic Gregorian, as MySQL)."""
    moments = map(datetime.fromisoformat, b"\n".join(values).decode("ascii").split("\n"))
    deltas = map(operator.sub, moments, repeat(_EPOCH))
    return list(map(b"%d".__mod__, map(operator.floordiv, deltas, repeat(_MICROSECOND))))


def float_canonical(x: float) -> bytes:
    """``source.sql._float_canonical`` of one double: ``[-]m'p'e`` with ``|x| = m * 2^(e-52)`` and
    ``2^52 <= m < 2^53``, or ``0`` (the reference the batch path is tested against)."""
    if x == 0:
        return b"0"
    if not math.isfinite(x):
        raise RowEncodingError(f"MySQL sent a double that is not finite: {x!r}")
    fraction, exponent = math.frexp(abs(x))  # |x| = fraction * 2^exponent, 0.5 <= fraction < 1
    return b"%s%dp%d" % (b"-" if x < 0 else b"", int(fraction * (1 << 53)), exponent - 1)


def _floats(values: Sequence[bytes]) -> list[bytes]:
    """``float_canonical`` of a batch: ``frexp`` is exact for every double (subnormals too), the
    fraction times 2^53 is a whole number a double holds exactly, and ``%d`` of it keeps its sign."""
    numbers = list(map(float, values))
    if not all(map(math.isfinite, numbers)):
        raise RowEncodingError(f"MySQL sent a double that is not finite among {values[:3]!r}...")
    fractions, exponents = zip(*map(math.frexp, numbers), strict=True)
    mantissas = map(operator.mul, fractions, repeat(_TWO_53))
    out = list(map(b"%dp%d".__mod__, zip(mantissas, map(operator.sub, exponents, repeat(1)), strict=True)))
    if 0.0 in numbers:  # -0.0 too
        for i in _positions(numbers, 0.0):
            out[i] = b"0"
    return out


def _positions(values: list[Any], wanted: Any) -> list[int]:
    """Where ``wanted`` is in ``values`` (found by C's search, not a Python loop over the values)."""
    found: list[int] = []
    start = 0
    try:
        while True:
            start = values.index(wanted, start)
            found.append(start)
            start += 1
    except ValueError:
        return found


def _same(values: Sequence[bytes]) -> Sequence[bytes]:
    return values


def _zero_dates(values: Sequence[bytes]) -> bool:
    """Whether a batch of DATE or DATETIME text may hold a zero or partly zero date (a cheap, exact
    over-approximation: every such value matches one of these patterns)."""
    joined = b"\n" + b"\n".join(values) + b"\n"
    return b"\n0000" in joined or b"-00-" in joined or b"-00 " in joined or b"-00\n" in joined


# ---- a column's two spellings -------------------------------------------------------------------

# a column's slot in a batch's line or canonical format: the format text and its arguments
Slot = tuple[bytes, list[Sequence[Any]]]


class _ColumnCodec:
    """How one column's values become their staging fields and their canonical texts (``canonical``
    None: the column is not in the checksum). Each is a slot of a per-batch ``%`` format, so that a
    whole line (and a whole canonical text) is one C call per row."""

    def __init__(self, c: Column, index: int, zero_dates: str, in_checksum: bool) -> None:
        self.column = c
        self.index = index
        self.dates = c.kind in (typemap.DATE, typemap.DATETIME) and not c.source_expr
        self.fail_on_zero = zero_dates == "fail"
        self.text = c.kind in (typemap.TEXT, typemap.JSON)
        self.field: Callable[[Sequence[bytes]], Sequence[bytes]] = _same
        if c.kind in (typemap.BINARY, typemap.SPATIAL):
            self.field = _hex_quoted
        elif typemap.staged_with_micros(c):
            self.field = _with_micros
        self.canonical: Callable[[Sequence[bytes]], Sequence[bytes]] | None = None
        self.text_canonical = False
        if in_checksum:
            self.canonical = _canonical_of(c)
            self.text_canonical = self.canonical is _text_canonical

    def slots(self, values: Values) -> tuple[Slot, Slot | None]:
        """The column's slot in the batch's line format and in its canonical format."""
        nulls = _nulls(values)
        if self.dates:
            zero = self._zero_dates(values, nulls)
            if zero:
                nulls = sorted(set(nulls).union(zero))
        if nulls:
            if len(nulls) == len(values):
                return (b"%b", [[CSV_NULL] * len(values)]), (
                    (b"%b", [[CANONICAL_NULL] * len(values)]) if self.canonical is not None else None
                )
            present: list[bytes] = list(values)  # type: ignore[arg-type]
            stand_in = present[_first_present(values, nulls)]
            for i in nulls:  # a value the functions take; its outputs are replaced by NULL's below
                present[i] = stand_in
            fields = list(_quoted(present) if self.text else self.field(present))
            for i in nulls:
                fields[i] = CSV_NULL
            line: Slot = (b"%b", [fields])
            if self.canonical is None:
                return line, None
            canon = list(self.canonical(present))
            for i in nulls:
                canon[i] = CANONICAL_NULL
            return line, (b"%b", [canon])
        present_values: Sequence[bytes] = values  # type: ignore[assignment]
        if self.text:
            if b'"' in b"".join(present_values):
                present_values = list(map(bytes.replace, present_values, repeat(b'"'), repeat(b'""')))
            line = (b'"%b"', [present_values])
        else:
            line = (b"%b", [self.field(present_values)])
        if self.canonical is None:
            return line, None
        if self.text_canonical:  # CHAR_LENGTH(v) ':' v
            lengths = list(_decoded_lengths(values))  # type: ignore[arg-type]
            return line, (b"%d:%b", [lengths, values])
        return line, (b"%b", [self.canonical(values)])  # type: ignore[arg-type]

    def _zero_dates(self, values: Values, nulls: list[int]) -> list[int]:
        dates = [v for v in values if v is not None] if nulls else values
        if not _zero_dates(dates):  # type: ignore[arg-type]
            return []
        zero = [i for i, v in enumerate(values) if v is not None and typemap.is_zero_date(v.decode("ascii"))]
        if zero and self.fail_on_zero:
            staging._date_or_fail(values[zero[0]])  # raises ZeroDateError, naming the value
        return zero


def _nulls(values: Values) -> list[int]:
    if None not in values:
        return []
    return list(compress(range(len(values)), map(operator.is_, values, repeat(None))))


def _first_present(values: Values, nulls: list[int]) -> int:
    gone = set(nulls)
    return next(i for i in range(len(values)) if i not in gone)


def _canonical_of(c: Column) -> Callable[[Sequence[bytes]], Sequence[bytes]]:
    """``source.sql.canonical_expr`` of the column, from the value ``source.sql._select_expr`` selects."""
    if c.source_expr or c.kind in (typemap.TEXT, typemap.JSON):
        return _text_canonical
    if c.kind == typemap.DATETIME:
        return _micros
    if c.kind == typemap.FLOAT:
        return _floats
    # integers, decimals, BIT and YEAR (selected as numbers), TIME, DATE, binary and geometries
    # (selected as upper-case hex): MySQL's text of the selected value is the canonical text
    return _same


def _format(slots: list[Slot], separator: bytes, end: bytes = b"") -> tuple[bytes, list[Sequence[Any]]]:
    text = separator.join(s for s, _ in slots) + end.replace(b"%", b"%%")
    return text, [arg for _, args in slots for arg in args]


class RowCodec:
    """The staging lines and checksum terms of a table's rows, one batch at a time (``encode``); the
    count and unfolded sum of the terms so far (``sums``, ``checksum``)."""

    def __init__(self, plan: TablePlan, hashed: bool, json_text: bool = True) -> None:
        self.plan = plan
        self.hashed = hashed
        in_checksum = {c.name for c in checksums.checksum_columns(plan, json_text)} if hashed else set()
        self.columns = [_ColumnCodec(c, i, plan.zero_dates, c.name in in_checksum) for i, c in enumerate(plan.columns)]
        self.checks = staging.size_checks(plan)
        self.rows = 0
        self.total = 0

    def _slots(self, batch: Batch) -> tuple[list[Slot], list[Slot]]:
        columns = list(zip(*batch, strict=True))
        for i, limit, is_hex in self.checks:  # a character is at most 4 bytes: only long values are looked at
            present = [v for v in columns[i] if v]
            if present and max(map(len, present)) * (1 if is_hex else 4) > limit:
                for row in batch:
                    staging.check_sizes(self.plan, self.checks, list(row))
        lines: list[Slot] = []
        canon: list[Slot] = []
        for codec in self.columns:
            line, k = codec.slots(columns[codec.index])
            lines.append(line)
            if k is not None:
                canon.append(k)
        return lines, canon

    def encode(self, batch: Batch, tail: bytes) -> bytes:
        """The batch's staging lines, each ending with ``tail`` (the chunk and attempt fields and the
        newline); the batch's rows are counted and, when hashed, their terms added."""
        if not batch:
            return b""
        lines, canon = self._slots(batch)
        if self.hashed:
            self.total += _sum_terms(_texts(canon, len(batch)))
        self.rows += len(batch)
        text, args = _format(lines, b",", tail)
        return b"".join(map(text.__mod__, zip(*args, strict=True)))

    def terms(self, batch: Batch) -> list[int]:
        """Each row's term (for tests and diagnosis; ``encode`` sums them without a list)."""
        _, canon = self._slots(batch)
        return [int.from_bytes(_DIGEST(_md5_new(t))[:8], "big") for t in _texts(canon, len(batch))]  # noqa: S324

    def sums(self) -> tuple[int, int]:
        return self.rows, self.total

    def checksum(self) -> tuple[int, str]:
        return checksums.fold_sums(self.rows, self.total)


def _texts(canon: list[Slot], n: int) -> Any:
    """Each row's canonical text: its columns' joined by CHAR(31)."""
    if not canon:
        return repeat(b"", n)
    text, args = _format(canon, SEPARATOR)
    return map(text.__mod__, zip(*args, strict=True))


def _sum_terms(texts: Any) -> int:
    """The sum of the first 64 bits (big-endian) of each text's MD5."""
    digests = array("Q")
    digests.frombytes(b"".join(map(_DIGEST, map(_md5_new, texts))))
    if digests.itemsize != 8:  # pragma: no cover - every platform Lambda runs has 8-byte unsigned long long
        raise RuntimeError("array('Q') is not 64 bits here")
    if sys.byteorder == "little":  # each 8 bytes read big-endian
        digests.byteswap()
    return sum(digests[0::2])
