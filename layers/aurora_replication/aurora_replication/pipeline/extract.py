"""The one extractor: a chunk's rows read inside its snapshot, as bound values (a small chunk) or as
staged file(s), with the source's count and checksum where the chunk is compared.

Three readers, one entry point (``extract_chunk``), chosen by the settings and the plan:

- in parts (``extract_parts``: several connections, each in the same snapshot, each reading a part of
  the key range), when EXTRACT_PROCESSES allows and the chunk is a whole key range;
- on the worker (EXTRACT_FORMAT=worker, the default): a plain SELECT through the bulk reader
  (``source.bulk``), each row's line and checksum term made here (``rowcodec``);
- on the server (EXTRACT_FORMAT=server or python, or a Python transform): MySQL formats each row's
  line (or pymysql's values go through the transform).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.config import Settings
from aurora_replication.models import ChunkMessage, TablePlan
from aurora_replication.pipeline import extract_parts, rowcodec, staging, transforms
from aurora_replication.services import Services
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql

logger = Logger(child=True)


@dataclass(frozen=True)
class Extracted:
    """What a chunk's read produced: ``rows`` (bound values, a small chunk), or one ``staged`` file, or
    ``parts`` (the files of a read in parts); and ``source``, the chunk's (count, checksum) as read, or
    None where the snapshot's checksum query must give it."""

    rows: list[list[Any]] | None
    staged: staging.StagedFile | None
    parts: extract_parts.PartsRead | None
    source: tuple[int, str] | None


def extract_chunk(
    mysql: Any,
    services: Services,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    compared: bool,
) -> Extracted:
    """The chunk's rows from ``mysql``, inside the snapshot the caller holds on it; files are written at
    ``local`` (and beside it, for parts)."""
    s = services.settings
    on_worker = reads_on_worker(plan, s)
    if reads_in_parts(plan, window, s):
        # worker parts: the chunk is cut on pymysql's connection (key values as text)
        with services.connections.source() if on_worker else nullcontext(mysql) as planner:
            parts = extract_parts.read_in_parts(
                mysql,
                services.endpoints.located_mysql_settings,
                plan,
                msg,
                attempt,
                local,
                s.extract_processes,
                s.extract_part_min_rows,
                compared,
                reader="worker" if on_worker else "server",
                planner=planner,
            )
        if parts is not None:
            return Extracted(None, None, parts, parts.source)
    read = _on_worker if on_worker else _on_server
    rows, staged, source = read(mysql, plan, msg, window, attempt, local, s, compared)
    return Extracted(rows, staged, None, source)


def _on_server(
    mysql: Any,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    s: Settings,
    compared: bool,
) -> tuple[list[list[Any]] | None, staging.StagedFile | None, tuple[int, str] | None]:
    """(EXTRACT_FORMAT=server or python, or a Python transform.) The chunk's rows as bound values (at
    most SMALL_CHUNK_ROWS rows: the INSERT path), or the
    staged file written to ``local``; and, when the chunk is ``compared`` and MySQL formatted its
    lines, the chunk's source count and checksum from the same scan (None: ask ``chunk_checksum``;
    a small chunk takes its values from a second query, and its checksum from the lines' scan).
    With EXTRACT_FORMAT=server MySQL formats every row as a line of the file; a small chunk, a Python
    transform, ZERO_DATE_POLICY=fail or a row longer than max_allowed_packet take the per-value path
    instead."""
    source: tuple[int, str] | None = None
    if s.extract_format == "server" and not plan.transform and plan.zero_dates == "null":
        query, params = source_sql.line_query(plan, msg.lower, msg.upper, window, hashed=compared)
        lines = source_read.stream_rows(mysql, query, params)
        hashes = source_read.RowHashes(plan) if compared else None
        rows = hashes.feed(lines) if hashes else lines
        try:
            head = list(itertools.islice(rows, s.small_chunk_rows + 1))
            if len(head) > s.small_chunk_rows:
                staged = staging.write_lines_gz(local, itertools.chain(head, rows), msg.chunk_id, attempt)
                return None, staged, hashes.checksum() if hashes else None
            if hashes is not None and hashes.complete:  # every row of the small chunk was read and hashed
                source = hashes.checksum()
        except BaseException as e:
            if os.path.exists(local):
                os.remove(local)
            if not isinstance(e, staging.LineTooLongError):
                raise
            logger.warning(f"{e}; encoding the chunk value by value", extra={"chunk": msg.chunk_id})
        finally:
            rows.close()
            lines.close()  # the connection is free for the next query in the same snapshot
    query, params = source_sql.chunk_query(plan, msg.lower, msg.upper, window)
    stream = source_read.stream_rows(mysql, query, params)
    rows_iter: Iterator[tuple[Any, ...]] = stream
    if plan.transform:
        rows_iter = iter(transforms.registered(plan.transform, s.transform_modules)(rows_iter, plan))
    try:
        head = list(itertools.islice(rows_iter, s.small_chunk_rows + 1))
        if len(head) <= s.small_chunk_rows:
            return staging.bound_rows(plan, head), None, source  # names a value longer than Snowflake holds
        return None, staging.write_csv_gz(local, plan, itertools.chain(head, rows_iter), msg.chunk_id, attempt), None
    finally:
        stream.close()  # the connection is free for the checksum in the same snapshot


def reads_on_worker(plan: TablePlan, s: Settings) -> bool:
    """Whether the chunk's rows come as MySQL sent them to the bulk reader (``source.bulk``) and are
    encoded and checksummed on the worker (``pipeline.rowcodec``): EXTRACT_FORMAT=worker, except for a
    table with a Python transform (its rows go through the transform as pymysql's values)."""
    return s.extract_format == "worker" and not plan.transform


def _on_worker(
    conn: Any,
    plan: TablePlan,
    msg: ChunkMessage,
    window: tuple[str | None, str | None] | None,
    attempt: str,
    local: str,
    s: Settings,
    compared: bool,
) -> tuple[list[list[Any]] | None, staging.StagedFile | None, tuple[int, str] | None]:
    """``_on_server``'s work for EXTRACT_FORMAT=worker: a plain SELECT of the chunk's columns
    (``source.sql.chunk_query``) on the bulk reader's connection, inside the chunk's snapshot; the rows'
    lines and checksum terms made on the worker from the same bytes (``pipeline.rowcodec``). A chunk
    of at most SMALL_CHUNK_ROWS rows goes as bound values (its checksum from the same rows); a larger
    one as a zstd staging file. MySQL computes no checksum: the worker's is of the values it sent."""
    query, params = source_sql.chunk_query(plan, msg.lower, msg.upper, window)
    codec = rowcodec.RowCodec(plan, hashed=compared)
    batches = source_bulk.batches(conn, query, params)
    try:
        head: list[Any] = []
        for batch in batches:
            head.extend(batch)
            if len(head) > s.small_chunk_rows:
                break
        if len(head) <= s.small_chunk_rows:
            rows = staging.bound_rows(plan, head)  # names a value longer than Snowflake holds
            codec.encode(head, b"\n")  # the checksum of exactly these rows
            return rows, None, codec.checksum() if compared else None
        tail = msg.chunk_id, attempt
        staged = staging.write_encoded(local, itertools.chain([head], batches), codec, *tail)
        return None, staged, codec.checksum() if compared else None
    except BaseException:
        if os.path.exists(local):
            os.remove(local)
        raise
    finally:
        batches.close()  # the rest of the result read off: the connection is free for the next statement


def reads_in_parts(plan: TablePlan, window: tuple[str | None, str | None] | None, s: Settings) -> bool:
    """Whether a chunk may be read in parts (``pipeline.extract_parts``): a whole key range (not an
    incremental window, which is small by design) of MySQL-formatted lines (``server``, where
    ZERO_DATE_POLICY=fail takes the value path) or of rows encoded on the worker (``worker``), with more
    than one process allowed."""
    return (
        s.extract_processes > 1
        and bool(plan.key)
        and window is None
        and not plan.transform
        and (s.extract_format == "worker" or (s.extract_format == "server" and plan.zero_dates == "null"))
    )
