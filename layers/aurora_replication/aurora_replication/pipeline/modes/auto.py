"""``auto``: a requested mode, not a sync mode: each table of the request is copied incrementally where it
can be, in full otherwise. The choice per table is ``modes.choose``, made once at planning; where an
incremental run then finds it cannot carry the table (a rename, a type Snowflake cannot change in place),
planning copies the table in its ``fallback``, full, instead of failing it."""

from __future__ import annotations

from aurora_replication.pipeline.modes.base import RequestedMode


class Auto(RequestedMode):
    name = "auto"
    fallback = "full"

    @property
    def may_read_window(self) -> bool:
        return True  # a table with a key, a watermark column and a committed watermark is copied incrementally
