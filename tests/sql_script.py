"""SQL scripts other projects wrote (the sample schemas under ``tests/fixtures``), split into statements."""

from __future__ import annotations

import re


def statements(text: str) -> list[str]:
    """The statements of a SQL script as the mysql client splits them: comment and blank lines between
    statements skipped, ``DELIMITER`` lines honoured (triggers and procedures), each without its delimiter."""
    out: list[str] = []
    buf: list[str] = []
    delimiter = ";"
    for line in text.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("--")):
            continue
        m = re.match(r"(?i)^DELIMITER\s+(\S+)$", s)
        if m and not buf:
            delimiter = m.group(1)
            continue
        buf.append(line)
        if s.endswith(delimiter):
            statement = "\n".join(buf).rstrip()[: -len(delimiter)].rstrip()
            buf = []
            if statement:
                out.append(statement)
    return out
