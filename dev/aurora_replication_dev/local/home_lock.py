"""One command at a time per ``--home``: an exclusive lock on ``<home>/replicate.lock``.

Every local command loads the state file into a fresh moto when it starts and writes the state
table back when it stops (``local/stack.py``): two commands at once on one home would each write
what they saw, and the last one would drop the other's whole ledger. The lock (``fcntl.flock``,
released by the kernel when its process ends, however it ends) makes the second command wait a
bounded time, then refuse with the holder's pid and command. Within one process the lock is
re-entrant: the CLI holds it for the whole command and the stack takes it again while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_FILE = "replicate.lock"
POLL_SECONDS = 0.2  # how often a waiting command tries the lock again (flock has no timeout of its own)

_held: dict[Path, list[int]] = {}  # home -> [file descriptor, depth], in this process
_guard = threading.Lock()


class HomeInUseError(RuntimeError):
    """Another process holds the home's lock: one line naming it and what to do."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    pid, _, what = text.partition(" ")
    return f"pid {pid} ({what})" if pid.isdigit() else "another process (pid not recorded yet)"


def acquire(home: Path, what: str, wait_seconds: float = 0.0, notify: Callable[[str], None] | None = None) -> None:
    """Take the lock of ``home`` for this process (again, if it holds it already); wait up to
    ``wait_seconds`` for another process to let it go, then raise ``HomeInUseError``. ``notify``
    hears once that the command waits, and for whom."""
    home.mkdir(parents=True, exist_ok=True)
    key = home.resolve()
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return
        path = key / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if notify is not None and not told and wait_seconds > 0:
                        notify(f"waiting up to {wait_seconds:g} s for --home {home}, in use by {_holder(path)}")
                        told = True
                    if time.monotonic() >= deadline:
                        waited = f" after waiting {wait_seconds:g} s" if wait_seconds > 0 else ""
                        raise HomeInUseError(
                            f"--home {home} is in use by {_holder(path)}{waited}; wait for it to finish "
                            "(--lock-wait SECONDS waits for it), or give this command another --home"
                        ) from None
                    time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        _held[key] = [fd, 1]


def release(home: Path) -> None:
    key = home.resolve()
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])  # closing the descriptor releases the lock


@contextlib.contextmanager
def held(
    home: Path, what: str, wait_seconds: float = 0.0, notify: Callable[[str], None] | None = None
) -> Iterator[None]:
    acquire(home, what, wait_seconds, notify)
    try:
        yield
    finally:
        release(home)
