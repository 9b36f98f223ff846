"""Validated, quoted identifiers for MySQL and Snowflake.

Names reach SQL text only through these functions. A name is accepted when it is 1-64
characters (MySQL's limit) with no control characters; every other character, reserved words,
spaces and quotes included, is carried by quoting (the quote character doubled).
"""

from __future__ import annotations

import hashlib
import re

MAX_IDENTIFIER_LENGTH = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidIdentifierError(ValueError):
    """A table or column name that cannot be used safely."""


def validate_identifier(name: object, what: str = "identifier") -> str:
    if not isinstance(name, str) or not name:
        raise InvalidIdentifierError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifierError(
            f"{what} {name[:20]!r}... is {len(name)} characters; MySQL allows at most {MAX_IDENTIFIER_LENGTH}"
        )
    if _CONTROL.search(name):
        raise InvalidIdentifierError(f"{what} {name!r} contains a control character; rename it in MySQL")
    if name != name.strip():
        raise InvalidIdentifierError(f"{what} {name!r} has leading or trailing spaces, which MySQL does not allow")
    return name


def bounded_name(name: str) -> str:
    """A name the pipeline derives from a table's (``_ASR_FULL_<run>_<table>``, ``_ASR_TOMB_<table>``)
    within the 64-character limit: unchanged when it fits, else its first 55 characters, ``_`` and the
    first 8 hex digits of the SHA-1 of the whole name (deterministic, and distinct for names that
    share their first 55 characters)."""
    if len(name) <= MAX_IDENTIFIER_LENGTH:
        return name
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER_LENGTH - 9]}_{digest}"


def mysql_ident(name: str) -> str:
    """Quote a MySQL identifier: `name` with backticks doubled."""
    return "`" + validate_identifier(name).replace("`", "``") + "`"


def snowflake_ident(name: str) -> str:
    """Quote a Snowflake identifier: "name" with double quotes doubled."""
    return '"' + validate_identifier(name).replace('"', '""') + '"'


def target_name(name: str, case: str = "upper") -> str:
    """The Snowflake name for a MySQL table or column (the naming rule of docs/types.md).

    ``upper`` (default) upper-cases the name so it can be queried unquoted when it is a plain
    word; ``preserve`` keeps it exactly. Either way the name is always quoted in SQL.
    """
    validate_identifier(name)
    if case == "preserve":
        return name
    if case == "upper":
        return name.upper()
    raise ValueError(f"identifier case {case!r} is not one of 'upper', 'preserve'")
