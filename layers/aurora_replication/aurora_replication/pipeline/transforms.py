"""Per-table transformation hooks: exclude, rename, mask, cast, filter, and registered Python functions.

Options come from the run request (``table_options``) or a JSON file named by the
``TABLE_OPTIONS_FILE`` setting (the request wins); Python transforms are registered by the
modules the ``TRANSFORM_MODULES`` setting names. Both settings come from ``config.Settings``.
Every name is checked against the table's columns; a ``where`` predicate is parsed into tokens
and rebuilt from them with quoted identifiers and re-quoted literals, so nothing the user wrote
reaches SQL unchecked.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from aurora_replication.errors import BadInputError
from aurora_replication.generated_sql import MASKS, SALTED, safe_predicate
from aurora_replication.identifiers import mysql_ident, target_name
from aurora_replication.models import Column, TableOptions, TablePlan

Row = tuple[Any, ...]
Transform = Callable[[Iterable[Row], TablePlan], Iterable[Row]]
_REGISTRY: dict[str, Transform] = {}

CAST_TYPE = re.compile(
    r"^(VARCHAR(\(\d{1,8}\))?|NUMBER\(\d{1,2},\d{1,2}\)|FLOAT|BOOLEAN|DATE|TIMESTAMP_NTZ(\([0-9]\))?|VARIANT|BINARY)$"
)


def register(name: str) -> Callable[[Transform], Transform]:
    """Register ``fn(rows, plan) -> rows`` under ``name``; rows are tuples in the plan's column order.

    Example (a module listed in ``TRANSFORM_MODULES``)::

        from aurora_replication.pipeline.transforms import register

        @register("lowercase_emails")
        def lowercase_emails(rows, plan):
            i = [c.name for c in plan.columns].index("email")
            for row in rows:
                yield row[:i] + (row[i].lower() if row[i] is not None else None,) + row[i + 1 :]
    """

    def decorate(fn: Transform) -> Transform:
        _REGISTRY[name] = fn
        return fn

    return decorate


def load_transform_modules(modules: str) -> None:
    """Import each module of the comma-separated ``modules`` (the ``TRANSFORM_MODULES`` setting)."""
    for module in filter(None, (m.strip() for m in modules.split(","))):
        importlib.import_module(module)


def registered(name: str, modules: str) -> Transform:
    """The transform registered as ``name``, once the ``modules`` that register transforms are imported."""
    load_transform_modules(modules)
    if name not in _REGISTRY:
        raise BadInputError(
            f"no transform named {name!r} is registered; list its module in TRANSFORM_MODULES "
            f"(registered: {', '.join(sorted(_REGISTRY)) or 'none'})"
        )
    return _REGISTRY[name]


def options_from_file(path: str | None) -> dict[str, TableOptions]:
    if not path:
        return {}
    try:
        raw = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(f"TABLE_OPTIONS_FILE {path!r} cannot be read as JSON: {e}") from None
    return {t: TableOptions.model_validate(o) for t, o in raw.items()}


def with_history_tables(
    options: dict[str, TableOptions], history_tables: str, column_drop_tables: str = ""
) -> dict[str, TableOptions]:
    """``options`` with ``"history": true`` for each table ``HISTORY_TABLES`` names, and ``"on_column_drop":
    "drop"`` for each table ``COLUMN_DROP_TABLES`` names (both comma-separated)."""
    out = dict(options)
    for setting, update in ((history_tables, {"history": True}), (column_drop_tables, {"on_column_drop": "drop"})):
        for name in [n.strip() for n in setting.split(",") if n.strip()]:
            out[name] = (out.get(name) or TableOptions()).model_copy(update=update)
    return out


# ---- applying options to a plan ---------------------------------------------------------------


def apply_options(
    plan: TablePlan,
    options: TableOptions | None,
    identifier_case: str,
    *,
    transform_modules: str,
    mask_salt: bool = True,
) -> TablePlan:
    """The plan with ``options`` applied and checked; a ``transform`` must be registered by a module
    of ``transform_modules``; a ``salted_sha256`` mask needs the source secret's salt (``mask_salt``)."""
    if options is None:
        return plan
    table = plan.table
    salted = [c for c, kind in options.mask.items() if kind == SALTED]
    if salted and not mask_salt:
        raise BadInputError(
            f"table {table!r}: column {salted[0]!r} is masked with {SALTED!r}, which needs a salt: add "
            '"mask_salt" (a long random string, kept as long as the masked values must stay comparable) to the '
            "source secret"
        )
    by_name = {c.name: c for c in plan.columns}

    def known(col: str, what: str) -> Column:
        if col not in by_name:
            raise BadInputError(f"table {table!r}: {what} names column {col!r}, which the table does not have")
        return by_name[col]

    protected = set(plan.key) | ({plan.watermark} if plan.watermark else set())
    for col in options.exclude:
        known(col, "exclude")
        if col in protected:
            raise BadInputError(f"table {table!r}: column {col!r} is a key or the watermark and cannot be excluded")
    for col in options.mask:
        known(col, "mask")
        if col in protected:
            raise BadInputError(f"table {table!r}: column {col!r} is a key or the watermark and cannot be masked")
    columns: list[Column] = []
    for c in plan.columns:
        if c.name in options.exclude:
            continue
        update: dict[str, Any] = {}
        if c.name in options.rename:
            update["target"] = target_name(options.rename[c.name], identifier_case)
        if c.name in options.mask:
            update.update(
                kind="text",  # a hash's hex digits: VARCHAR in Snowflake
                precision=None,
                scale=None,
                size=None,
                warehouse_type=None,
                source_expr=MASKS[options.mask[c.name]].format(mysql_ident(c.name)),
            )
        if c.name in options.cast:
            cast = options.cast[c.name].upper().replace(" ", "")
            if not CAST_TYPE.match(cast):
                raise BadInputError(
                    f"table {table!r}: cast of {c.name!r} to {options.cast[c.name]!r} is not a supported "
                    "Snowflake type (VARCHAR, NUMBER(p,s), FLOAT, BOOLEAN, DATE, TIMESTAMP_NTZ(p), VARIANT, BINARY)"
                )
            update.update(warehouse_type=cast, checksum=False)
        columns.append(c.model_copy(update=update))
    for col in options.rename:
        known(col, "rename")
    for col in options.cast:
        known(col, "cast")
    targets = [c.target for c in columns]
    if len(set(targets)) != len(targets):
        raise BadInputError(f"table {table!r}: renames make two columns share a Snowflake name")
    if not columns:
        raise BadInputError(f"table {table!r}: every column is excluded")
    where = safe_predicate(options.where, by_name) if options.where else None
    if options.transform:
        registered(options.transform, transform_modules)
    notes = list(plan.notes)
    if options.transform:
        notes.append(
            f"table {table!r}: rows pass through Python transform {options.transform!r}; not compared with the source"
        )
    if options.history and not plan.key:
        raise BadInputError(
            f"table {table!r}: history mode keeps the versions of each key, and the table has no primary key; "
            'add one in MySQL, or drop "history" from its table options (and HISTORY_TABLES)'
        )
    if options.history and options.on_column_drop == "drop":
        raise BadInputError(
            f'table {table!r}: "on_column_drop": "drop" would remove a column\'s values from every past version '
            'of a history table; keep the column (the default, "keep") or replicate the table without "history"'
        )
    update = {"columns": columns, "where": where, "transform": options.transform, "notes": notes}
    if options.history:
        update["history"] = True
    if options.on_column_drop != "keep":
        update["on_column_drop"] = options.on_column_drop
    planned = {c.target for c in columns}
    hidden = sorted({c.target for c in plan.columns} - planned)  # excluded or renamed: MySQL still has them
    if hidden:
        update["kept_by_options"] = hidden
    return plan.model_copy(update=update)
