"""One part of a chunk read into a staging file of its own: what a worker's extraction helper
process does for every part but the first, and what the worker does for the first
(``pipeline.extract_parts`` cuts the chunk and gathers the parts).

A part is one query (``source.sql.line_query``: the server formats each row's line and its checksum
term; or, for a ``worker`` part, ``source.sql.chunk_query`` on the bulk reader, lines and terms made
here by ``pipeline.rowcodec``), so it reads one consistent view: InnoDB gives each consistent read
statement a read view of its own, taken when the statement starts, that sees exactly the changes committed before then
(MySQL reference manual, "Consistent Nonlocking Reads"). The part's rows, count and checksum all come
from that one scan (``source.read.RowHashes``).

Run as ``python -m aurora_replication.pipeline.extract_part`` it is a helper: it reads a pickled
``PartJob`` from its standard input, writes the part's file, answers a pickled ``PartResult`` on its
standard output, and ends when its input ends (its worker closed it, or ended). Its MySQL connection
stays open between parts (pinged after a pause) and is opened again when the credentials change
(after a rotation the worker sends the new ones). Python's ``multiprocessing`` is not used: Lambda has
no ``/dev/shm``, so its ``Queue`` and ``Pool`` do not work there; a child process and pipes do.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

from aurora_replication.models import TablePlan
from aurora_replication.pipeline import rowcodec, staging
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bulk as source_bulk
from aurora_replication.source import connect as source_connect
from aurora_replication.source import read as source_read
from aurora_replication.source import sql as source_sql

# a helper's connection idle longer than this is pinged before its next part
PING_AFTER_SECONDS = 30.0


@dataclass(frozen=True)
class PartJob:
    """One part of a chunk: its key range ``lower < key <= upper``, the file it is written to, and the
    chunk and attempt ids each line carries. ``hashed``: the part's count and checksum are taken too."""

    settings: MySQLSettings
    plan: TablePlan
    lower: list[str] | None
    upper: list[str] | None
    hashed: bool
    path: str
    chunk_id: int
    attempt: str
    # "server": MySQL formats the lines and terms (pymysql); "worker": a plain SELECT through the C
    # client, lines and terms made here (``pipeline.rowcodec``), a zstd file (EXTRACT_FORMAT)
    reader: str = "server"


@dataclass
class PartResult:
    """What a part read: its file's rows and bytes and, when hashed, the count and unfolded sum of its
    rows' checksum terms (``RowHashes.sums``). ``error``: the exception that stopped it (its file is
    removed), re-raised by the worker."""

    rows: int = 0
    bytes: int = 0
    hashed_rows: int = 0
    hash_total: int = 0
    seconds: float = 0.0
    error: BaseException | None = None


def read_part(conn: Any, job: PartJob) -> PartResult:
    """Read one part into its file (removed again if the read fails); ``conn`` is pymysql's for a
    ``server`` part, the bulk reader's (``source.bulk``) for a ``worker`` part."""
    if job.reader == "worker":
        return _read_rows(conn, job)
    started = time.perf_counter()
    query, params = source_sql.line_query(job.plan, job.lower, job.upper, None, hashed=job.hashed)
    lines = source_read.stream_rows(conn, query, params)
    hashes = source_read.RowHashes(job.plan) if job.hashed else None
    rows = hashes.feed(lines) if hashes else lines
    try:
        staged = staging.write_lines_gz(job.path, rows, job.chunk_id, job.attempt)
    except BaseException:
        if os.path.exists(job.path):
            os.remove(job.path)
        raise
    finally:
        rows.close()
        lines.close()
    count, total = hashes.sums() if hashes else (0, 0)
    return PartResult(staged.rows, staged.bytes, count, total, time.perf_counter() - started)


def _read_rows(conn: Any, job: PartJob) -> PartResult:
    """A ``worker`` part: its rows as MySQL sent them, lines and terms made here, one zstd file."""
    started = time.perf_counter()
    query, params = source_sql.chunk_query(job.plan, job.lower, job.upper, None)
    codec = rowcodec.RowCodec(job.plan, hashed=job.hashed)
    batches = source_bulk.batches(conn, query, params)
    try:
        with source_bulk.translated():
            staged = staging.write_encoded(job.path, batches, codec, job.chunk_id, job.attempt)
    except BaseException:
        if os.path.exists(job.path):
            os.remove(job.path)
        raise
    finally:
        batches.close()
    count, total = codec.sums() if job.hashed else (0, 0)
    return PartResult(staged.rows, staged.bytes, count, total, time.perf_counter() - started)


class _Connection:
    """The helper's warm MySQL connection (pymysql's, or the bulk reader's for ``worker`` parts)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.settings: tuple[MySQLSettings, str] | None = None
        self.used = 0.0

    def get(self, settings: MySQLSettings, reader: str = "server") -> Any:
        if self.conn is not None and (settings, reader) != self.settings:
            self.close()
        if self.conn is not None and time.monotonic() - self.used > PING_AFTER_SECONDS:
            try:
                source_bulk.ping(self.conn) if reader == "worker" else self.conn.ping(reconnect=False)
            except Exception:  # noqa: BLE001 - it does not answer: open a new one
                self.close()
        if self.conn is None:
            self.conn = source_bulk.connect(settings) if reader == "worker" else source_connect.connect(settings)
            self.settings = (settings, reader)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self.conn = None

    def done(self) -> None:
        self.used = time.monotonic()


def _picklable(error: BaseException) -> BaseException:
    try:
        copy: BaseException = pickle.loads(pickle.dumps(error))  # noqa: S301 - its own bytes
        return copy
    except Exception:  # noqa: BLE001 - an error that does not travel is described instead
        return RuntimeError(f"{type(error).__name__}: {error}")


def serve(jobs: IO[bytes], answers: IO[bytes]) -> None:
    """Answer every job of ``jobs`` until it ends."""
    warm = _Connection()
    while True:
        try:
            job: PartJob = pickle.load(jobs)  # noqa: S301 - from the worker that started it, over its own pipe
        except EOFError:
            break
        try:
            result = read_part(warm.get(job.settings, job.reader), job)
            warm.done()
        except Exception as e:  # noqa: BLE001 - every failure is the worker's to raise
            warm.close()  # the connection may be in the middle of a result
            result = PartResult(error=_picklable(e))
        pickle.dump(result, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()
    warm.close()


def main() -> None:
    # the answers go to the original standard output; anything printed goes to standard error
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin.buffer, answers)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    # by its package name, not as __main__: the results it pickles name their class as the worker knows it
    from aurora_replication.pipeline import extract_part

    extract_part.main()
