"""The only SQL fragments a table plan may carry: mask expressions and rebuilt row filters.

A chunk message is data from a queue, so the worker re-checks every fragment against these
(``models.ChunkMessage``); a ``where`` predicate is parsed into tokens and rebuilt from them with
quoted identifiers and re-quoted literals, so nothing the user wrote reaches SQL unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aurora_replication.errors import BadInputError
from aurora_replication.identifiers import mysql_ident

MASKS = {
    "sha256": "SHA2({}, 256)",
    "md5": "MD5({})",
    # the salt: the source secret's ``mask_salt``, set on every source connection (``source.connect.init_command``)
    "salted_sha256": "SHA2(CONCAT(CAST(@asr_mask_salt AS BINARY), {}), 256)",
}
SALTED = "salted_sha256"


# ---- WHERE predicates -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^'\\]|'')*')|(?P<bq>`(?:[^`]|``)+`)"
    r"|(?P<op><=|>=|<>|!=|=|<|>|\(|\)|,)|(?P<word>[A-Za-z_][A-Za-z0-9_$]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "TRUE", "FALSE"}


def safe_predicate(predicate: str, columns: Iterable[str] | None) -> str:
    """Rebuild a WHERE predicate from validated tokens, or raise BadInputError naming the problem.

    ``columns`` limits the identifiers to the table's columns; None accepts any (still quoted), which
    is how a worker re-checks a predicate the scheduler already rebuilt.
    """
    names = None if columns is None else {c.lower(): c for c in columns}
    out: list[str] = []
    pos = 0
    depth = 0
    text = predicate.strip()
    if not text:
        raise BadInputError("where predicate is empty")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadInputError(f"where predicate {predicate!r}: unexpected text at {text[pos : pos + 15]!r}")
        pos = m.end()
        if m.group("num"):
            out.append(m.group("num"))
        elif m.group("str"):
            inner = m.group("str")[1:-1].replace("''", "'")
            out.append("'" + inner.replace("'", "''") + "'")
        elif m.group("op"):
            op = m.group("op")
            depth += op == "("
            depth -= op == ")"
            if depth < 0:
                raise BadInputError(f"where predicate {predicate!r}: unbalanced parentheses")
            out.append(op)
        else:
            word = m.group("bq")[1:-1].replace("``", "`") if m.group("bq") else m.group("word")
            if not m.group("bq") and word.upper() in _KEYWORDS:
                out.append(word.upper())
            elif names is None:
                out.append(mysql_ident(word))
            elif word.lower() in names:
                out.append(mysql_ident(names[word.lower()]))
            else:
                raise BadInputError(
                    f"where predicate {predicate!r}: {word!r} is not a column of the table or an allowed keyword "
                    f"({', '.join(sorted(_KEYWORDS))}); functions and subqueries are not allowed"
                )
    if depth:
        raise BadInputError(f"where predicate {predicate!r}: unbalanced parentheses")
    return " ".join(out)
