"""Change data capture (mode ``cdc``), in one package: the mode and every part of its flow.

- ``mode.py``: the mode (``Cdc``), the worker's side: apply a batch of changes, then commit its window.
- ``reader.py``: the scheduler's side: positions, initial copies, schema checks, one binlog window read,
  its batches staged and sent; resuming a cdc table.
- ``databases.py``: one request over several source databases, read in one window.
- ``budget.py``: a window inside the scheduler's invocation: the tables it has no time for wait for the next.
- ``follow.py``: a request that follows the binlog, windows back to back within one invocation.
- ``options.py``: a table's per-table options applied to binlog row images.
- ``health.py``: cdc's check in the health report.

The binlog reader and decoder are the source's (``source/binlog*.py``), the stored position and phase the
ledger's (``ledger/cdc.py``). Importing this package imports the mode only (``modes/__init__.py`` registers
it); the scheduler's side imports planning, which imports the modes, so it is imported by its users.
"""

from __future__ import annotations

from aurora_replication.pipeline.modes.cdc.mode import Cdc

__all__ = ["Cdc"]
