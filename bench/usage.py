"""What a process used: this process's peak memory and CPU, and another's CPU by its pid (MariaDB's)."""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mariadb_pid(db: Any) -> int | None:
    pid_file = Path(db.base) / "mysqld.pid"
    return int(pid_file.read_text().strip()) if pid_file.exists() else None


def process_cpu(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
