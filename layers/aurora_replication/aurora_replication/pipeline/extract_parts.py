"""A large chunk read in parts at once (``EXTRACT_PROCESSES`` > 1).

With ``EXTRACT_FORMAT=worker`` the bound of a chunk's read is the worker's own encoding of the rows
(``pipeline.rowcodec``; MySQL only sends them): parts spread it over the worker's processes, each part a
plain SELECT on a bulk reader's connection of its own. With server-formatted lines the bound is MySQL,
which evaluates one query on one thread: formatting each row's line and its checksum term is the
bound of a chunk's read, not the network or the driver (docs/performance.md). So a chunk estimated at
two parts or more of ``EXTRACT_PART_MIN_ROWS`` is cut into up to ``EXTRACT_PROCESSES`` key sub-ranges
(``source.bounds.split_range``), and each is read by its own query on its own connection: the first
by the worker itself, inside the chunk's snapshot, the others by the worker's helper processes
(``pipeline.extract_part``), so that neither MySQL's formatting nor the worker's decoding and
compression of one part waits for another, and no part shares the worker's GIL.

Each part is one consistent read of its own, taken after the chunk's snapshot started: every change
committed before the chunk's ``snapshot_at`` is in every part, as for the chunks of one table, whose
snapshots differ too. The parts' counts and checksum sums add up to the chunk's, which the finaliser
compares with the chunk's loaded rows as always. Each part is one file; the chunk's files are staged
by one ``PUT`` and loaded by one ``COPY`` (``FILES``).

The helpers are processes of the worker's container, started when a chunk first needs them and kept
warm between messages (and frozen with the container between invocations), one per part but the
first. A helper that dies fails the chunk's attempt, which is retried; its place is taken by a new one.
"""

from __future__ import annotations

import atexit
import glob
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, Any, cast

import pymysql

from aurora_replication import checksums
from aurora_replication.models import ChunkMessage, TablePlan
from aurora_replication.pipeline.extract_part import PartJob, PartResult, read_part
from aurora_replication.pipeline.staging import LineTooLongError
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bounds as source_bounds
from aurora_replication.source.connect import AUTH_ERRORS


class HelperDiedError(ConnectionError):
    """An extraction helper process ended in the middle of a part (a transient error: retried)."""


class _Helper:
    """One helper process and its two pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # the helper imports this layer as the worker does (Lambda: /opt/python; locally: the venv)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aurora_replication.pipeline.extract_part"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def send(self, job: PartJob) -> None:
        try:
            pickle.dump(job, cast(IO[bytes], self.proc.stdin), protocol=pickle.HIGHEST_PROTOCOL)
            cast(IO[bytes], self.proc.stdin).flush()
        except (BrokenPipeError, OSError) as e:
            raise self._died() from e

    def receive(self) -> PartResult:
        try:
            return cast(PartResult, pickle.load(cast(IO[bytes], self.proc.stdout)))  # noqa: S301 - its own child's pipe
        except (EOFError, OSError, pickle.UnpicklingError) as e:
            raise self._died() from e

    def _died(self) -> HelperDiedError:
        self.close()
        return HelperDiedError(
            f"an extraction helper process ended in the middle of a part (exit code {self.proc.returncode}); "
            "the chunk's attempt is retried. If it keeps happening, look for memory exhaustion in the worker's "
            "log (raise MemorySize) or set EXTRACT_PROCESSES=1"
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_idle: list[_Helper] = []
_busy: list[_Helper] = []  # helpers taken by a chunk now (several when worker containers are threads)
_lock = threading.Lock()


@contextmanager
def _helpers(n: int) -> Iterator[list[_Helper]]:
    """``n`` helpers of this container's, warm ones first; back to the idle ones when the block ends
    normally, closed when it raises (a helper may be in the middle of a part)."""
    with _lock:
        warm = _idle[:n]
        del _idle[:n]
    taken: list[_Helper] = []
    for h in warm:  # one look at each: a helper that died while idle is closed, not taken
        if h.alive():
            taken.append(h)
        else:
            h.close()
    try:
        taken += [_Helper() for _ in range(n - len(taken))]
    except BaseException:
        for h in taken:
            h.close()
        raise
    with _lock:
        _busy.extend(taken)
    try:
        yield taken
    except BaseException:
        for h in taken:
            h.close()
        raise
    finally:
        with _lock:
            for h in taken:
                _busy.remove(h)
    with _lock:
        _idle.extend(taken)


@atexit.register
def close_helpers() -> None:
    """End this container's idle helpers (they end by themselves when the worker's process ends, too)."""
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for h in idle:
        h.close()


@dataclass
class PartsRead:
    """A chunk read in parts: its files (in the order of the key), rows and bytes, and its source count
    and checksum (None when the chunk is not compared)."""

    files: list[str]
    rows: int
    bytes: int
    source: tuple[int, str] | None
    part_seconds: list[float]


def _split_suffix(local: str) -> tuple[str, str]:
    stem, dot, compression = local.rpartition(".csv.")
    return (stem, dot + compression) if dot else (local, "")


def part_file(local: str, index: int) -> str:
    """The file of part ``index`` of a chunk whose one file would be ``local`` (``data-<attempt>.csv.gz``
    or ``.csv.zst``)."""
    stem, suffix = _split_suffix(local)
    return f"{stem}-{index:03d}{suffix}"


def part_pattern(local: str) -> str:
    """The wildcard that names the part files of ``local`` (for one ``PUT``)."""
    stem, suffix = _split_suffix(local)
    return f"{stem}-*{suffix}"


def read_in_parts(
    mysql: pymysql.Connection[Any],
    settings: Callable[[bool], MySQLSettings],
    plan: TablePlan,
    msg: ChunkMessage,
    attempt: str,
    local: str,
    processes: int,
    min_rows: int,
    hashed: bool,
    reader: str = "server",
    planner: Any = None,
) -> PartsRead | None:
    """Read the chunk in parts, the first on ``mysql`` (inside the chunk's snapshot, which the caller
    holds open), the rest in helpers, which connect with ``settings(False)`` (``settings(True)``, the
    secret read again, for a part whose login failed: the credentials may have rotated). None when the
    chunk is not worth cutting (the caller reads it in one query), or when a row's line is longer than
    MySQL formats (the caller's one-query path encodes such a chunk value by value). ``reader``:
    ``server`` parts (``mysql`` is pymysql's) or ``worker`` parts (``mysql`` is the bulk reader's, and
    ``planner``, a pymysql connection, cuts the chunk: its key values come back as text there)."""
    cutter = planner if planner is not None else mysql
    ranges = source_bounds.split_range(cutter, plan.table, plan.key, msg.lower, msg.upper, processes, min_rows)
    if len(ranges) < 2:
        return None
    credentials = settings(False)
    jobs = [
        PartJob(credentials, plan, lo, hi, hashed, part_file(local, i), msg.chunk_id, attempt, reader)
        for i, (lo, hi) in enumerate(ranges)
    ]
    results: list[PartResult] = []
    try:
        with _helpers(len(jobs) - 1) as helpers:
            for helper, job in zip(helpers, jobs[1:], strict=True):
                helper.send(job)
            try:
                results.append(read_part(mysql, jobs[0]))
            except BaseException as e:
                results.append(PartResult(error=e))
            # every helper answers before anything is raised: none is left writing a file
            results += [helper.receive() for helper in helpers]
            refused = [i for i, r in enumerate(results) if i and _login_refused(r.error)]
            if refused:
                credentials = settings(True)
                for i in refused:
                    helpers[i - 1].send(replace(jobs[i], settings=credentials))
                for i in refused:
                    results[i] = helpers[i - 1].receive()
        for r in results:
            if r.error is not None:
                raise r.error
    except LineTooLongError:
        _remove(local)
        return None
    except BaseException:
        _remove(local)
        raise
    source = None
    if hashed:
        source = checksums.fold_sums(sum(r.hashed_rows for r in results), sum(r.hash_total for r in results))
    return PartsRead(
        files=[os.path.basename(j.path) for j in jobs],
        rows=sum(r.rows for r in results),
        bytes=sum(r.bytes for r in results),
        source=source,
        part_seconds=[round(r.seconds, 3) for r in results],
    )


def _login_refused(error: BaseException | None) -> bool:
    return isinstance(error, pymysql.err.OperationalError) and bool(error.args) and error.args[0] in AUTH_ERRORS


def _remove(local: str) -> None:
    for path in glob.glob(part_pattern(local)):
        os.remove(path)
