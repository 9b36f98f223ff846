"""One binlog window read by several processes: transaction-aligned segments decoded at once, merged in
binlog order into the window one reader would have read.

The reader (``binlog.read_window``) is one Python process decoding every row image, so its pace is one
core's. A window is cut where a transaction commits (an ``XID`` event: a window may end there, and the
next segment starts with the next transaction's own table maps), at about equal bytes; each segment is
read by ``binlog.read_window`` on a binlog connection of its own (a server id of its own), the first in
this process and the others in processes started for the read, and the segments' windows are merged
(``merge``): later changes of a key replace earlier ones, a ``TRUNCATE`` in a segment drops what the
segments before it held for that table, and a segment that stopped early (its time or byte budget, a
schema change) ends the window there, so nothing after it is taken.

Where a cut is found: a scan of the window that reads only the commit events (the server still sends
every byte; the row events are not decoded: about 0.1 s for 20 MB here). A transaction is never cut, so
one very large transaction (a single ``UPDATE`` of a million rows) is one segment, read at one core's
pace. Segments smaller than ``min_bytes`` are not worth a process (its start and the window's transfer
back cost about half a second), so a small window is read as before.

Each process is a fresh interpreter on this one's import path (``python -m`` this module: the scheduler's
connections and threads are not inherited, and no ``multiprocessing`` machinery is needed, which on Lambda
has no ``/dev/shm``); its arguments and its window travel pickled over its stdin and stdout. Each
process's connection costs the source one more binlog dump thread for the window's duration. A process
that ends without its segment (killed, out of memory) fails the read loudly; nothing of the window has
been applied then, so the next run reads it again from the same positions.
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import pickle
import subprocess
import sys
import time
from typing import Any

from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import binlog
from aurora_replication.source.binlog import BinlogUnavailableError, Position, RowChange, TableSpec, Window

# a segment below this is read where the one before it is (a process costs about half a second)
MIN_SEGMENT_BYTES = 8 * 1024 * 1024


def commits(
    settings: MySQLSettings, specs: dict[str, TableSpec], stop_at: Position, server_id: int, max_bytes: int
) -> list[tuple[Position, int]]:
    """The positions after each commit (``XID``) from the window's start up to ``stop_at`` (or the first
    past ``max_bytes``), each with the window's bytes up to it. Row events are received, not decoded."""
    from pymysqlreplication.event import RotateEvent, XidEvent

    start = min((s.start for s in specs.values()), key=lambda p: p.key())
    if start.key() >= stop_at.key():
        return []
    where = {s.where(t, settings.dbname) for t, s in specs.items()}
    stream = binlog.open_stream(
        settings,
        start,
        server_id,
        sorted({w[1] for w in where}),
        sorted({w[0] for w in where}),
        [XidEvent, RotateEvent],
    )
    out: list[tuple[Position, int]] = []
    done, file, last = 0, start.file, start.pos
    try:
        while (event := stream.fetchone()) is not None:
            here = Position(str(stream.log_file), int(stream.log_pos))
            if here.file != file:  # a new file: its bytes count from its start
                file, last = here.file, 4
            if isinstance(event, RotateEvent):
                continue
            done += max(here.pos - last, 0)
            last = here.pos
            if here.key() > stop_at.key():
                break
            out.append((here, done))
            if here.key() == stop_at.key() or done >= max_bytes:
                break
    finally:
        stream.close()
    return out


def cuts(points: list[tuple[Position, int]], parts: int, min_bytes: int) -> list[Position]:
    """Where to cut a window whose commits are ``points`` (each with the window's bytes up to it) into at
    most ``parts`` segments of about equal bytes, none below ``min_bytes`` (pure): each cut is the commit
    nearest its share. The last commit is the window's end, never a cut."""
    if len(points) < 2:
        return []
    total = points[-1][1]
    parts = min(parts, total // max(min_bytes, 1))
    out: list[Position] = []
    taken = 0
    for j in range(1, parts):
        share = total * j / parts
        fitting = [(abs(done - share), done, position) for position, done in points[:-1] if done - taken >= min_bytes]
        fitting = [f for f in fitting if total - f[1] >= min_bytes]
        if not fitting:
            break
        _, taken, position = min(fitting, key=lambda f: (f[0], f[1]))
        out.append(position)
    return out


def segment_specs(specs: dict[str, TableSpec], start: Position) -> dict[str, TableSpec]:
    """``specs`` for a segment starting at ``start``: a table's changes before it belong to the segments
    before (its own start where later)."""
    return {
        label: spec if spec.start.key() >= start.key() else dataclasses.replace(spec, start=start)
        for label, spec in specs.items()
    }


def merge(windows: list[Window]) -> Window:
    """The segments' windows, in binlog order, as the one window one reader would have read (pure)."""
    merged = Window(start=windows[0].start, end=windows[0].start)
    merged.changes = {label: {} for label in windows[0].changes}
    for w in windows:
        merged.events += w.events
        merged.library_events += w.library_events
        merged.bytes += w.bytes
        merged.ddl.extend(w.ddl)
        for label, changes in w.changes.items():
            if label in merged.broken or label in merged.unreadable:
                continue  # stopped in an earlier segment: one reader takes nothing of it after that
            if label in w.truncated:  # emptied in this segment: what came before it is gone
                merged.changes[label] = dict(changes)
                merged.truncated[label] = w.truncated[label]
            else:
                merged.changes.setdefault(label, {}).update(changes)
        for label, at in w.history_truncated.items():
            if label not in merged.broken and label not in merged.unreadable:
                merged.history_truncated.setdefault(label, []).extend(at)
        for label, reason in w.broken.items():
            merged.broken.setdefault(label, reason)
        for label, reason in w.unreadable.items():
            merged.unreadable.setdefault(label, reason)
        merged.renamed.update(w.renamed)
        for noted, seen in ((merged.deleted, w.deleted), (merged.rekeyed, w.rekeyed), (merged.updated, w.updated)):
            for label, last in seen.items():  # the last one: a later segment's is later in the binlog
                noted[label] = max(noted.get(label, last), last)
        if w.newest_event_at is not None:
            merged.newest_event_at = max(merged.newest_event_at or 0, w.newest_event_at)
        merged.end, merged.reached_end, merged.stopped_by = w.end, w.reached_end, w.stopped_by
        merged.schema_moved = list(w.schema_moved)
        merged.segments = len(windows)
        if not w.reached_end:  # stopped early (time, bytes, a schema change): the window ends here
            break
    return merged


def _segment_main() -> None:
    """A decoding process (``python -m aurora_replication.source.binlog_parallel``): its segment's arguments
    from stdin, its window (or its error, as text) to stdout, both pickled."""
    args = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent that started this process, over its pipe
    try:
        window = binlog.read_window(*args)
        # the changes as plain tuples, marshalled: about ten times cheaper than pickling the objects
        changes = {
            label: [(k, c.op, c.pos, c.values, c.at) for k, c in ch.items()] for label, ch in window.changes.items()
        }
        window.changes = {}
        out = pickle.dumps(("window", window, marshal.dumps(changes)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - the parent raises it, named
        out = pickle.dumps(("error", f"{type(e).__name__}: {e}", b""))
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


def _start(args: tuple[Any, ...]) -> subprocess.Popen[bytes]:
    """A decoding process for one segment, on this interpreter and this process's import path (Lambda puts
    the layer on ``sys.path`` at start, not in ``PYTHONPATH``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen(  # noqa: S603 - this interpreter, this module: no input reaches the command
        [sys.executable, "-m", "aurora_replication.source.binlog_parallel"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None
    process.stdin.write(pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL))
    process.stdin.close()
    return process


def read_window(
    settings: MySQLSettings,
    specs: dict[str, TableSpec],
    stop_at: Position,
    server_id: int,
    max_seconds: float,
    max_bytes: int,
    processes: int,
    min_bytes: int = MIN_SEGMENT_BYTES,
) -> Window:
    """``binlog.read_window`` by up to ``processes`` processes (see the module's notes); the same window.
    Segment ``k`` reads as server id ``server_id + k``."""
    if processes < 2:
        return binlog.read_window(settings, specs, stop_at, server_id, max_seconds, max_bytes)
    started = time.monotonic()
    points = commits(settings, specs, stop_at, server_id, max_bytes)
    at = cuts(points, processes, min_bytes)
    if not at:
        return binlog.read_window(settings, specs, stop_at, server_id, max_seconds, max_bytes)
    start = min((s.start for s in specs.values()), key=lambda p: p.key())
    end = points[-1][0]
    # the bytes budget was spent at ``end`` before ``stop_at``: the window ends there, as one reader's would
    # (a window whose last event is not a commit, a DDL statement, is read to ``stop_at`` by its last segment)
    budget_spent = points[-1][1] >= max_bytes and end.key() < stop_at.key()
    bounds = list(zip([start, *at], [*at, end if budget_spent else stop_at], strict=True))
    seconds = max(max_seconds - (time.monotonic() - started), 1.0)
    children: list[subprocess.Popen[bytes]] = []
    try:
        for k, (first, last) in enumerate(bounds[1:], start=1):
            children.append(_start((settings, segment_specs(specs, first), last, server_id + k, seconds, max_bytes)))
        first, last = bounds[0]
        windows = [binlog.read_window(settings, segment_specs(specs, first), last, server_id, seconds, max_bytes)]
        for k, process in enumerate(children, start=1):
            windows.append(_received(process, k, bounds[k]))
    finally:
        for process in children:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()
    merged = merge(windows)
    if budget_spent and merged.reached_end:
        merged.reached_end, merged.stopped_by = False, "bytes"
    return merged


def _received(process: subprocess.Popen[bytes], k: int, bound: tuple[Position, Position]) -> Window:
    assert process.stdout is not None
    data = process.stdout.read()
    process.wait(timeout=10)
    if not data:
        raise BinlogUnavailableError(
            f"the process decoding binlog segment {k} ({bound[0]} to {bound[1]}) ended without it (exit code "
            f"{process.returncode}: killed, or out of memory); nothing of the window was applied, so the next run "
            "reads it again; give the scheduler more memory, or set CDC_DECODE_PROCESSES=1"
        )
    kind, payload, changes = pickle.loads(data)  # noqa: S301 - our own child process's answer, over its own pipe
    if kind != "window":
        raise BinlogUnavailableError(f"decoding binlog segment {k} ({bound[0]} to {bound[1]}) failed: {payload}")
    window: Window = payload
    window.changes = {
        label: {key: RowChange(op, pos, values, at) for key, op, pos, values, at in rows}
        for label, rows in marshal.loads(changes).items()  # noqa: S302 - our own child process's answer
    }
    return window


if __name__ == "__main__":
    _segment_main()
