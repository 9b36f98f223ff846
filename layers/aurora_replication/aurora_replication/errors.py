"""Errors that cross module boundaries."""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any, ClassVar


class BadInputError(ValueError):
    """Input (a run request, a chunk message, a setting) that was rejected before any write."""


class EndpointError(RuntimeError):
    """A source or target that could not be used, as one line a person can act on: what was tried
    (endpoint, host, port, user, database; never a password), what went wrong and what to check.

    ``kind`` says which, and the CLI's exit code follows it (``EXIT_CODES``): the endpoint could not
    be reached (``unreachable``, ``timeout``, ``unknown_host``, ``tls``: 3), it refused who we are or
    what we asked (``auth``, ``grants``: 4), or something named does not exist (``missing``: 5).
    """

    EXIT_CODES: ClassVar[dict[str, int]] = {
        "unreachable": 3,
        "timeout": 3,
        "unknown_host": 3,
        "tls": 3,
        "auth": 4,
        "grants": 4,
        "missing": 5,
    }

    def __init__(self, endpoint: str, tried: str, kind: str, cause: str, check: str) -> None:
        self.endpoint, self.tried, self.kind, self.cause, self.check = endpoint, tried, kind, cause, check
        super().__init__(f"{endpoint} {tried}: {cause}; check {check}")

    @property
    def exit_code(self) -> int:
        return self.EXIT_CODES.get(self.kind, 3)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with its fields (multiprocessing, Powertools)
        return (type(self), (self.endpoint, self.tried, self.kind, self.cause, self.check))


def _chain(error: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and the driver's wrapped original (pymysql), in order."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen) or len(seen) > 20:
            continue
        seen.append(e)
        todo.extend([getattr(e, "original_exception", None), e.__cause__, e.__context__])
    return seen


def network_cause(error: BaseException) -> tuple[str, str] | None:
    """(kind, what happened) when an OS-level network or TLS failure is among the error's causes."""
    for e in _chain(error):
        if isinstance(e, ssl.SSLCertVerificationError):
            return "tls", f"TLS certificate not trusted ({e.verify_message or e.reason})"
        if isinstance(e, ssl.SSLError):
            return "tls", f"TLS handshake failed ({e.reason or e})"
    for e in _chain(error):
        if isinstance(e, socket.gaierror):
            return "unknown_host", "the host name does not resolve (DNS)"
        if isinstance(e, ConnectionRefusedError):
            return "unreachable", "connection refused (nothing listens on that port, or a firewall rejects it)"
        if isinstance(e, TimeoutError):
            return "timeout", "no answer in time (a firewall or security group dropping packets, or the wrong host)"
        if isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "unreachable", f"no route to the host ({e.strerror})"
    return None
