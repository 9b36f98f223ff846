"""``services.connections.Opening``: a connection opened on a thread while the caller works (a cdc window's
PUT connection, opened while the window is read)."""

from __future__ import annotations

import threading
from contextvars import ContextVar

import pytest

from aurora_replication.services.connections import Opening

WHERE: ContextVar[str] = ContextVar("where", default="nowhere")


class Conn:
    def __init__(self, where: str = "") -> None:
        self.closed = False
        self.where = where

    def close(self) -> None:
        self.closed = True


def test_take_hands_over_the_connection_opened_in_the_callers_context() -> None:
    WHERE.set("the scheduler's unit of work")
    opening = Opening(lambda: Conn(WHERE.get()))
    conn = opening.take()
    assert isinstance(conn, Conn) and conn.where == "the scheduler's unit of work" and not conn.closed
    assert opening.take() is None  # once
    opening.close()  # taken: not the closer's to close
    assert not conn.closed


def test_take_raises_what_opening_raised() -> None:
    def fail() -> Conn:
        raise ConnectionError("login failed")

    with pytest.raises(ConnectionError, match="login failed"):
        Opening(fail).take()


def test_close_closes_one_not_taken_without_waiting_for_it() -> None:
    release = threading.Event()
    opened = Conn()

    def slow() -> Conn:
        release.wait(10)
        return opened

    opening = Opening(slow)
    opening.close()  # returns at once: the connection is still opening
    assert not opened.closed
    release.set()
    for _ in range(200):
        if opened.closed:
            break
        threading.Event().wait(0.01)
    assert opened.closed  # closed once it was open
    assert opening.take() is None


def test_close_of_one_that_failed_to_open_raises_nothing() -> None:
    def fail() -> Conn:
        raise ConnectionError("down")

    opening = Opening(fail)
    opening.close()
