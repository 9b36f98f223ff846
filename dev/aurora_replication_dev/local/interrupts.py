"""Ctrl-C in the local CLI: a step that must not stop half-way finishes first.

SIGINT raises ``KeyboardInterrupt`` in the main thread wherever it is. Most places are safe to stop
at (a run's chunks are resumable; the state file is replaced whole), but two are not: the
scheduler's invocation, which takes leases, records the run and sends its messages (stopped in
between, a run would be half-recorded), and the writing of the state file, which is the only copy
of the ledger between commands. Inside ``deferred`` a Ctrl-C is noted and said, and raised as
``KeyboardInterrupt`` once the step is done.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO


@contextlib.contextmanager
def deferred(what: str, stream: TextIO | None = None) -> Iterator[None]:
    """Hold Ctrl-C until ``what`` is done. Outside the main thread (where no signal arrives) or
    where SIGINT is not Python's ``KeyboardInterrupt`` (a test runner's own handler), it does nothing."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pending: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if not pending:
            print(f"\ninterrupt: finishing {what} first", file=stream or sys.stderr, flush=True)
        pending.append(signum)

    previous: Any = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
