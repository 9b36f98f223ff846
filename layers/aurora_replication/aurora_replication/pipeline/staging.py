"""The staging file: CSV compressed with zstd (the rows MySQL sent to the worker, ``write_encoded``) or
gzip (lines MySQL formatted, values pymysql decoded, cdc batches), that Snowflake's COPY reads without loss.

Format (matching ``target.sql.CSV_FILE_FORMAT``: ``FIELD_OPTIONALLY_ENCLOSED_BY = '"'
EMPTY_FIELD_AS_NULL = TRUE NULL_IF = ()``): comma-separated; NULL is an empty unquoted field (two
successive delimiters, which ``EMPTY_FIELD_AS_NULL`` loads as SQL NULL); every text, JSON, binary
(hex) and geometry (hex EWKB) value is enclosed in double quotes with inner quotes doubled, so
commas, newlines, backslashes and the empty string (``""``) survive; numbers, dates and times are
unquoted and never empty. With ``NULL_IF = ()`` no value's text is ever read as NULL: the text
``\\N`` or ``NULL`` is text. (docs/types.md cites the Snowflake documentation.) The last two
fields are the chunk id and the attempt id, which tag each attempt's rows so that readers take
exactly the validated attempt of each chunk. Change-capture batches use the same encoding.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

if sys.version_info >= (3, 14):  # pragma: no cover - Lambda runs 3.12: the backport of the same module
    from compression import zstd
else:
    from backports import zstd

from aurora_replication import typemap
from aurora_replication.errors import BadInputError
from aurora_replication.models import TablePlan

NULL = ""
Encoder = Callable[[Any], str]


def _text(v: Any) -> str:
    text: str = bytes(v).decode("utf-8") if isinstance(v, (bytes, bytearray)) else v
    return '"' + text.replace('"', '""') + '"'


def _hex(v: Any) -> str:
    """Hex text (binary, geometries) is quoted too: an empty binary value is ``""``, not NULL."""
    return '"' + (v.decode("ascii") if isinstance(v, (bytes, bytearray)) else str(v)) + '"'


def _raw(v: Any) -> str:
    return v.decode("ascii") if isinstance(v, (bytes, bytearray)) else str(v)


def _date(v: Any) -> str:
    s = _raw(v)
    return NULL if typemap.is_zero_date(s) else s


class ZeroDateError(BadInputError):
    """A zero date met under ZERO_DATE_POLICY=fail."""


def _date_or_fail(v: Any) -> str:
    s = _raw(v)
    if typemap.is_zero_date(s):
        raise ZeroDateError(
            f"zero date {s!r} found and ZERO_DATE_POLICY=fail; fix the row in MySQL or use ZERO_DATE_POLICY=null"
        )
    return s


_ENCODERS: dict[str, Encoder] = {
    typemap.TEXT: _text,
    typemap.JSON: _text,
    typemap.BINARY: _hex,
    typemap.SPATIAL: _hex,
    typemap.TIME: _raw,
    typemap.DATE: _date,
    typemap.DATETIME: _date,
}


def _timestamp(v: Any) -> str:
    s = _date(v)
    if len(s) == 26:  # six fractional digits already (a DATETIME(6), or DATE_FORMAT's %f)
        return s
    return s and typemap.with_micros(s)


def _timestamp_or_fail(v: Any) -> str:
    return typemap.with_micros(_date_or_fail(v))


def encoders(plan: TablePlan) -> list[Encoder]:
    """Each column's encoder; a datetime loaded as a timestamp is spelled with six fractional digits,
    the file format's ``TIMESTAMP_FORMAT`` (``typemap.STAGED_TIMESTAMP_FORMAT``)."""
    encs = [_timestamp if typemap.staged_with_micros(c) else _ENCODERS.get(c.kind, _raw) for c in plan.columns]
    if plan.zero_dates == "fail":
        fail: dict[Encoder, Encoder] = {_date: _date_or_fail, _timestamp: _timestamp_or_fail}
        encs = [fail.get(e, e) for e in encs]
    return encs


def plain_encoders(plan: TablePlan) -> list[Encoder | None]:
    """``encoders`` with None where a column's text is staged as it is (``fields`` passes it on)."""
    return [None if e is _raw else e for e in encoders(plan)]


def fields(encs: list[Encoder | None], values: Sequence[Any]) -> list[str]:
    """One row's staged fields (``encs``: ``plain_encoders``): plain text passes as it is, the rest is encoded."""
    return [
        NULL if v is None else (v if e is None and type(v) is str else e(v) if e else _raw(v))
        for e, v in zip(encs, values, strict=True)
    ]


def line_writer(encs: list[Encoder | None]) -> Callable[[Sequence[Any]], str]:
    """One row's staged line (its ``fields`` joined by commas) by one function written for the columns'
    encoders: no loop and no list per row. The code is made from column indexes alone."""
    if not encs:
        return lambda values: ""
    names: dict[str, Any] = {"_raw": _raw}
    parts = []
    for i, e in enumerate(encs):
        if e is None:  # plain text passes as it is (``fields``)
            parts.append(f"{{'' if v{i} is None else v{i} if v{i}.__class__ is str else _raw(v{i})}}")
        else:
            names[f"_e{i}"] = e
            parts.append(f"{{'' if v{i} is None else _e{i}(v{i})}}")
    unpack = ", ".join(f"v{i}" for i in range(len(encs)))
    code = f'def line(values):\n    {unpack}, = values\n    return f"{",".join(parts)}"\n'
    exec(compile(code, "<staging.line>", "exec"), names)  # noqa: S102 - made from column indexes
    line: Callable[[Sequence[Any]], str] = names["line"]
    return line


class ValueTooLargeError(BadInputError):
    """A value longer than Snowflake can hold (``typemap.value_limit``)."""


def size_checks(plan: TablePlan) -> list[tuple[int, int, bool]]:
    """(column index, byte limit, value is hex) of the columns whose values may exceed Snowflake's limit."""
    checks = []
    for i, c in enumerate(plan.columns):
        limit = typemap.value_limit(c)
        if limit is not None and not c.source_expr:
            checks.append((i, limit, c.kind in (typemap.BINARY, typemap.SPATIAL)))
    return checks


def _value_bytes(v: Any, is_hex: bool) -> int:
    if is_hex:
        return len(v) // 2
    return len(v.encode("utf-8")) if isinstance(v, str) else len(v)


def check_sizes(plan: TablePlan, checks: list[tuple[int, int, bool]], row: tuple[Any, ...] | list[Any]) -> None:
    for i, limit, is_hex in checks:
        v = row[i]
        # a character is at most 4 bytes: only a long value needs its bytes counted
        if v is not None and len(v) * (1 if is_hex else 4) > limit and _value_bytes(v, is_hex) > limit:
            c = plan.columns[i]
            names = [plan.column(k) for k in plan.key]
            key = ", ".join(f"{k.name}={_shown(row[plan.columns.index(k)])!r}" for k in names) or "(table has no key)"
            raise ValueTooLargeError(
                f"table {plan.table!r}, row {key}: column {c.name!r} holds {_value_bytes(v, is_hex):,} bytes, "
                f"more than Snowflake's {typemap.limited_type(c)} holds ({limit:,} bytes); shorten the "
                "value in MySQL, or exclude the column (table_options exclude)"
            )


def _shown(v: Any) -> Any:
    """A key's value as an error names it: text, whether the driver decoded it or sent bytes."""
    return bytes(v).decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else v


def bound_rows(plan: TablePlan, rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as bound values of a multi-row INSERT (the small-chunk path); a value longer than
    Snowflake holds is a ``ValueTooLargeError`` naming the table, row key and column."""
    kinds = [c.kind for c in plan.columns]
    checks = size_checks(plan)
    out = []
    for r in rows:
        if checks:
            check_sizes(plan, checks, r)
        out.append([bound_value(k, v, plan.zero_dates) for k, v in zip(kinds, r, strict=True)])
    return out


def bound_value(kind: str, v: Any, zero_dates: str = "null") -> Any:
    """A value as bound into a multi-row INSERT (the small-chunk path): text, or None."""
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("utf-8")
    if kind in (typemap.DATE, typemap.DATETIME) and typemap.is_zero_date(v):
        return _date_or_fail(v) if zero_dates == "fail" else None
    return v


class LineTooLongError(RuntimeError):
    """The server returned NULL for a formatted line: the row is longer than max_allowed_packet, or
    one of its values longer than Snowflake holds (``source.sql._csv_field``)."""


def _server_line(line: Any) -> str:
    if line is None:
        raise LineTooLongError(
            "MySQL returned no line for a row (longer than max_allowed_packet, or a value longer than Snowflake holds)"
        )
    return line if type(line) is str else bytes(line).decode("utf-8")


def write_lines_gz(path: str, lines: Iterable[tuple[Any, ...]], chunk_id: int, attempt: str) -> StagedFile:
    """The staging file from lines the server formatted (``source.line_query``; each row's first
    value is its line, a second one is its checksum term): only the chunk and attempt fields are added here."""
    return _write_gz(path, (_server_line(row[0]) for row in lines), chunk_id, attempt)


@dataclass
class StagedFile:
    path: str
    rows: int
    bytes: int


def write_csv_gz(
    path: str, plan: TablePlan, rows: Iterable[tuple[Any, ...]], chunk_id: int, attempt: str
) -> StagedFile:
    # the hot loop: values arrive as text from the unconverted cursor, so plain columns pass as
    # they are and only text, JSON and date columns go through an encoder
    encs = plain_encoders(plan)
    checks = size_checks(plan)
    if checks:
        rows = _checked(plan, checks, rows)
    line = line_writer(encs)
    lines = (line(row) for row in rows)
    return _write_gz(path, lines, chunk_id, attempt)


def _checked(
    plan: TablePlan, checks: list[tuple[int, int, bool]], rows: Iterable[tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    for r in rows:
        check_sizes(plan, checks, r)
        yield r


def _write_gz(path: str, lines: Iterator[str], chunk_id: int, attempt: str) -> StagedFile:
    """Write ``lines`` with the chunk and attempt fields appended, gzip level 1, in batches."""
    tail = f",{chunk_id},{attempt}\n"
    count = 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1, newline="") as f:
        while batch := list(itertools.islice(lines, 5000)):
            f.write(tail.join(batch) + tail)
            count += len(batch)
    return StagedFile(path=path, rows=count, bytes=os.path.getsize(path))


def write_encoded(
    path: str, batches: Iterable[Sequence[Sequence[bytes | None]]], codec: RowCodecLike, chunk_id: int, attempt: str
) -> StagedFile:
    """The staging file from the rows MySQL sent as bytes (``source.bulk``), each batch encoded by
    ``codec`` (``pipeline.rowcodec.RowCodec``, which also sums the rows' checksum terms), zstd level 1:
    Snowflake's COPY reads it with ``COMPRESSION = ZSTD`` (``target.sql.copy_into``)."""
    tail = f",{chunk_id},{attempt}\n".encode()
    count = 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    compressor = zstd.ZstdCompressor(level=1)
    with open(path, "wb") as f:
        for batch in batches:
            f.write(compressor.compress(codec.encode(batch, tail)))
            count += len(batch)
        f.write(compressor.flush())
    return StagedFile(path=path, rows=count, bytes=os.path.getsize(path))


class RowCodecLike(Protocol):
    def encode(self, batch: Sequence[Sequence[bytes | None]], tail: bytes) -> bytes: ...


def stage_path_component(name: str) -> str:
    """A stage-path-safe, deterministic and unique spelling of any valid table name: its ASCII letters,
    digits and underscores (every other character, CJK and accented letters included, as ``_``; at most
    40), then the first 8 hex digits of the SHA-1 of its UTF-8 bytes, so ``顧客`` and ``café`` give paths
    of ``[A-Za-z0-9_]`` only, two names that share their safe part still differ, and a plain name keeps
    the path it always had."""
    safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch == "_" else "_" for ch in name)[:40]
    return f"{safe}_{hashlib.sha1(name.encode('utf-8'), usedforsecurity=False).hexdigest()[:8]}"
