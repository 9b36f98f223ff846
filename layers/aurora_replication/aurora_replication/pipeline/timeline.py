"""Where a run's time went: each attempt of a chunk (or of a table's finalise) with its worker and steps.

The worker runs every chunk and finalise through ``timed``; the steps it already times (``extract``,
``stage``, ``copy``, ``merge``, ``reconcile``, ``validate``, ``publish``) report their laps here.
When the attempt ends, succeeded or failed, one small ledger item records it
(``StateStore.record_attempts``; a chunk and the finalise it ran inline, in one request): the run
report (``replicate report``) draws them as a timeline. A failed attempt is recorded too, so a
retried chunk shows each try; recording is best effort and never fails the chunk.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from aurora_replication.ledger.chunks import AttemptItem
from aurora_replication.models import ChunkMessage
from aurora_replication.services import Services

logger = Logger(child=True)
_PROCESS = f"p{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class Attempt:
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (step, offset s, seconds)
    # attempts that ran inside this one (a chunk's inline finalise: the same run and table), written
    # with it in one request
    inner: list[AttemptItem] = field(default_factory=list)


_current: ContextVar[Attempt | None] = ContextVar("timeline_attempt", default=None)


def worker_name() -> str:
    """The worker that runs this attempt: the Lambda execution environment (the log stream name, one
    per container), or this process locally; plus the thread when it is not the main one."""
    stream = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
    base = stream.rsplit("]", 1)[-1][:12] if stream else _PROCESS
    thread = threading.current_thread().name
    return base if thread == "MainThread" else f"{base}/{thread}"


def lap(step: str, started: float, seconds: float) -> None:
    """A step of the attempt in progress took ``seconds`` from ``started`` (time.perf_counter())."""
    attempt = _current.get()
    if attempt is not None:
        attempt.steps.append((step, round(started - attempt.t0, 3), round(seconds, 3)))


def timed(
    fn: Callable[[ChunkMessage, Services], dict[str, Any]], msg: ChunkMessage, services: Services
) -> dict[str, Any]:
    """Run ``fn(msg, services)`` as one recorded attempt."""
    outer = _current.get()
    attempt = Attempt()
    token = _current.set(attempt)
    try:
        result = fn(msg, services)
    except Exception as e:
        _record(services, msg, attempt, {"status": "failed", "error": f"{type(e).__name__}: {e}"[:300]}, outer)
        raise
    finally:
        _current.reset(token)
    status = "skipped" if result.get("skipped") or result.get("repeat") else str(result.get("status") or "ok")
    if msg.kind == "finalise" and status == "ok":  # a finalise that ended the table: published, or not valid
        status = "invalid" if str(result.get("validation", "")).startswith("mismatch") else "published"
    _record(services, msg, attempt, {"status": status, "rows": result.get("rows")}, outer)
    return result


def _record(
    services: Services, msg: ChunkMessage, attempt: Attempt, outcome: AttemptItem, outer: Attempt | None
) -> None:
    """Write the attempt (with those that ran inside it); one inside another waits for the outer one's
    end, so a chunk and its inline finalise are one request."""
    seconds = time.perf_counter() - attempt.t0
    item: AttemptItem = {
        "chunk": msg.chunk_id if msg.kind == "chunk" else "final",
        "attempt": f"{time.time_ns():020d}-{secrets.token_hex(2)}",
        "kind": msg.kind,
        "round": msg.round,
        "worker": worker_name(),
        "start": round(attempt.started, 3),
        "seconds": round(seconds, 3),
        "steps": json.dumps(attempt.steps, separators=(",", ":")),
        **outcome,
    }
    if outer is not None:
        outer.inner.extend([*attempt.inner, item])
        return
    try:
        services.state.record_attempts(msg.run_id, msg.plan.table, [item, *attempt.inner])
    except Exception:  # noqa: BLE001 - the timeline is a report, never a reason to fail a chunk
        logger.warning("could not record the attempt's timeline", extra={"run_id": msg.run_id}, exc_info=True)
