"""`replicate` as a test drives it: the real CLI, with a gate in the worker so that a test knows a
chunk is in flight. Chunk 1's first copy, once read, writes ``<gate>/in-flight`` (the run id) and
waits until ``<gate>/release`` exists (at most 120 s). Run as a script: ``python gated_replicate.py
--home ... run ...`` with ``REPLICATE_TEST_GATE`` naming the gate directory."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from aurora_replication_dev import cli
from aurora_replication_dev.local.stack import LocalStack

GATE = Path(os.environ["REPLICATE_TEST_GATE"])


def gate(step: str, message: Any = None) -> None:
    if step == "extracted" and message.kind == "chunk" and message.chunk_id == 1 and message.round == 0:
        if (GATE / "in-flight").exists():
            return  # the gate opens once
        (GATE / "in-flight").write_text(message.run_id)
        deadline = time.monotonic() + 120
        while not (GATE / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # another process releases it: a file is the condition there is


_run = LocalStack.run


def run(self: LocalStack, request: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("fault", gate)
    return _run(self, request, *args, **kwargs)


LocalStack.run = run  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(cli.main(sys.argv[1:]))
