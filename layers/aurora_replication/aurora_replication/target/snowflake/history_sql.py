"""Pure builders of the history-mode (type-2) statements. No connection here.

A table in history mode (``"history": true`` in its table options, or ``HISTORY_TABLES``) keeps one
row per version of each source row in its target table, with five hidden columns:

- ``_ASR_VALID_FROM``: when the version began (cdc: the binlog event's time; a copy: the time of the
  run's snapshot), never before the version it follows;
- ``_ASR_VALID_TO``: when the next change of the key ended it (NULL while it is current);
- ``_ASR_IS_CURRENT``: TRUE for the one version that is the row as the source holds it now;
- ``_ASR_OP``: ``I`` (the key's first version, or the first after a delete), ``U`` (an update) or ``D``
  (a delete: a zero-length marker, ``_ASR_VALID_FROM = _ASR_VALID_TO``, holding the deleted row's
  values; a deleted key has no current version);
- ``_ASR_POS``: what ordered the version: the binlog position of its change (cdc, fixed-width text
  that sorts as the binlog does; the initial copy's versions hold the position the copy started at),
  or the id of the run that saw it (incremental and full copies).

The intervals are half-open, ``[_ASR_VALID_FROM, _ASR_VALID_TO)``: "as of T" is
``_ASR_VALID_FROM <= T AND (_ASR_VALID_TO > T OR _ASR_VALID_TO IS NULL)``, which a ``D`` marker never
meets. A view ``<target>_CURRENT`` beside the table holds the current versions.

cdc (``cdc_merge``): a batch's changes are versions, each identified by its key and position; the
batch's new versions are inserted and every version of the keys it touches is re-derived from their
order by position (``_ASR_VALID_TO`` from the next version, ``_ASR_IS_CURRENT``, ``I``/``U``), in one
MERGE. The result depends only on the set of changes applied, so a batch applied twice, or an older
batch after a newer one, gives the same table: no other guard is needed. Batches of one window applied
at the same moment may each derive a key's chain without the other's versions (each MERGE reads the
table as committed when it began), so the window's finaliser settles them: the same MERGE over every
batch of the window, which inserts nothing new and derives every touched key's chain from all of them.

Copies (``snapshot_merge``: a full copy, the cdc initial copy, incremental runs, the rolling audit): a
row whose current version holds other values (or that has none) gets a new version, and the current
one is closed, in one MERGE; a repeat finds the new version current and equal, and does nothing. A
full copy also closes the keys the source no longer has (``close_absent``).

``invariants``: the history's rules, counted over the keys a run touched: no two versions of a key
at one position, at most one current version per key, no overlapping intervals, a current version
only as a key's last version and never a delete. The finaliser fails the table when any is broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aurora_replication import typemap
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.models import Column, TablePlan
from aurora_replication.target.names import current_view_name
from aurora_replication.target.snowflake.types import column_type

VALID_FROM = "_ASR_VALID_FROM"
VALID_TO = "_ASR_VALID_TO"
IS_CURRENT = "_ASR_IS_CURRENT"
OP = "_ASR_OP"
POS = "_ASR_POS"
# the cdc load table's column with the binlog event's time (epoch seconds), ``target.cdc_sql``
AT = "_ASR_AT"
INSERTED, UPDATED, DELETED = "I", "U", "D"
# a source row's change in a cdc load table (``target.cdc_sql``): U upsert, D delete
_CDC_DELETE = "D"
# the columns history mode adds, in the order they follow the row's own
HISTORY_COLUMNS = (
    (VALID_FROM, "TIMESTAMP_NTZ"),
    (VALID_TO, "TIMESTAMP_NTZ"),
    (IS_CURRENT, "BOOLEAN"),
    (OP, "VARCHAR(1)"),
    (POS, "VARCHAR"),
)
_INSERTED_COLUMNS = ", ".join(q(n) for n in (VALID_FROM, VALID_TO, IS_CURRENT, OP, POS))
_EPOCH = "TO_TIMESTAMP_NTZ('1970-01-01 00:00:00')"
# names the statements below use for their own columns (never a plan's: those are checked not to start with _ASR_)
_CUR_POS, _MATCH, _RAW_OP, _AT_RAW, _PREV_OP, _NEXT_FROM, _NEXT_POS = (
    "_ASR_CUR_POS",
    "_ASR_MATCH",
    "_ASR_RAW_OP",
    "_ASR_AT_RAW",
    "_ASR_PREV_OP",
    "_ASR_NEXT_FROM",
    "_ASR_NEXT_POS",
)


def is_history_table(columns: Sequence[Sequence[object]]) -> bool:
    """Whether a target's ``(name, ...)`` column rows are a history table's."""
    return any(str(c[0]) == IS_CURRENT for c in columns)


def mode_mismatch(plan: TablePlan, columns: Sequence[Sequence[object]]) -> str | None:
    """Why ``plan`` cannot write into an existing target with ``columns`` (None: it can): versions written
    as plain rows, or plain rows read as versions, would both be silently wrong."""
    if not columns or plan.history == is_history_table(columns):
        return None
    if plan.history:
        return (
            f"table {plan.table!r}: history mode is on, but its target {plan.target_table!r} holds plain rows "
            "(copied before history mode was chosen): rename or drop it in Snowflake and the next run copies "
            "the table as versions, or turn history mode off"
        )
    return (
        f"table {plan.table!r}: its target {plan.target_table!r} is a history table (every version, "
        f'{IS_CURRENT}), but history mode is off for it: set "history": true in its table options (or name '
        "it in HISTORY_TABLES), or rename the history table in Snowflake to copy the table as plain rows"
    )


def _keys(plan: TablePlan) -> list[Column]:
    keys = {plan.column(k).target for k in plan.key}
    if not keys:
        raise ValueError(f"table {plan.table!r}: history mode needs a key")
    return sorted((c for c in plan.columns if c.target in keys), key=lambda c: c.target)


def _match(plan: TablePlan, a: str, b: str) -> str:
    return " AND ".join(f"{a}.{q(c.target)} = {b}.{q(c.target)}" for c in _keys(plan))


def _partition(plan: TablePlan, alias: str) -> str:
    return ", ".join(f"{alias}.{q(c.target)}" for c in _keys(plan))


def _typed(c: Column, ref: str) -> str:
    """A load table's value as the target's type (JSON text parsed, 'd': a duplicate key keeps its last value)."""
    value = f"PARSE_JSON({ref}, 'd')" if c.kind == typemap.JSON else ref
    return f"CAST({value} AS {column_type(c)})"


def create_history_table(plan: TablePlan) -> str:
    cols = [f"{q(c.target)} {column_type(c)}" for c in plan.columns]
    cols += [f"{q(name)} {kind}" for name, kind in HISTORY_COLUMNS]
    return f"CREATE TABLE IF NOT EXISTS {q(plan.target_table)} ({', '.join(cols)})"


def create_current_view(plan: TablePlan) -> str:
    """The current versions, with every column of the table but the interval's end and the flag (made
    again after the table's columns change: a view's ``*`` is expanded when it is created)."""
    return (
        f"CREATE OR REPLACE VIEW {q(current_view_name(plan))} COPY GRANTS AS "
        f"SELECT * EXCLUDE ({q(VALID_TO)}, {q(IS_CURRENT)}) FROM {q(plan.target_table)} WHERE {q(IS_CURRENT)}"
    )


def cdc_merge(plan: TablePlan, load_table: str, chunks: Literal["=", "<"] = "=") -> str:
    """Apply one batch of a cdc load table (params: its chunk id, twice; ``chunks="<"``: every batch with
    a chunk id below the one bound, the window's settling by its finaliser): insert its changes not yet in
    the target as versions, and derive every version of the keys it touches from their order by
    ``_ASR_POS``: ``_ASR_VALID_FROM`` the running maximum of the versions' times (a clock that went back
    cannot make an interval end before it starts), ``_ASR_VALID_TO`` the next version's start (a delete
    marker's own start), ``_ASR_IS_CURRENT`` for the last version unless it is a delete, ``_ASR_OP``
    ``I`` after nothing or a delete, ``U`` otherwise. Only versions whose derived fields differ are
    updated."""
    load = q(load_table)
    chunk = q("_ASR_CHUNK")
    batch = (
        f"SELECT DISTINCT {', '.join(f'{_typed(c, "l." + q(c.target))} AS {q(c.target)}' for c in plan.columns)}, "
        f"l.{q(POS)} AS {q(POS)}, l.{q(OP)} AS {q(_RAW_OP)}, "
        f"DATEADD(second, l.{q(AT)}, {_EPOCH}) AS {q(_AT_RAW)} FROM {load} l WHERE l.{chunk} {chunks} %s"
    )
    new = (
        f"SELECT b.* FROM ({batch}) b WHERE NOT EXISTS (SELECT 1 FROM {q(plan.target_table)} h "
        f"WHERE {_match(plan, 'h', 'b')} AND h.{q(POS)} = b.{q(POS)})"
    )
    keys_from = f"SELECT k.* FROM {load} k WHERE k.{chunk} {chunks} %s"
    return _derive(plan, f"{_versions_of(plan, keys_from)} UNION ALL {new}")


def _versions_of(plan: TablePlan, keys_from: str) -> str:
    """Every version of the keys ``keys_from`` (a relation with the key columns) names, as ``_derive`` reads
    versions: the row's columns, the position, the operation as a change's, the start as its time."""
    cols = [q(c.target) for c in plan.columns]
    return (
        f"SELECT {', '.join('h.' + c for c in cols)}, h.{q(POS)}, h.{q(OP)} AS {q(_RAW_OP)}, "
        f"h.{q(VALID_FROM)} AS {q(_AT_RAW)} FROM {q(plan.target_table)} h "
        f"WHERE EXISTS (SELECT 1 FROM ({keys_from}) k WHERE {_match(plan, 'k', 'h')})"
    )


def _derive(plan: TablePlan, versions: str) -> str:
    """The MERGE that inserts the ``versions`` (the row's columns, ``_ASR_POS``, ``_ASR_RAW_OP``,
    ``_ASR_AT_RAW``) the target lacks and derives every field of each key's chain from their order by
    position (``cdc_merge``); only versions whose derived fields differ are updated."""
    cols = [q(c.target) for c in plan.columns]
    keys = _partition(plan, "u")
    order = f"PARTITION BY {keys} ORDER BY u.{q(POS)}"
    w = f"PARTITION BY {_partition(plan, 'v')} ORDER BY v.{q(POS)}"
    ordered = (
        f"SELECT u.*, MAX(u.{q(_AT_RAW)}) OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
        f"AS {q(VALID_FROM)} FROM ({versions}) u"
    )
    chained = (
        f"SELECT v.*, LAG(v.{q(_RAW_OP)}) OVER ({w}) AS {q(_PREV_OP)}, "
        f"LEAD(v.{q(VALID_FROM)}) OVER ({w}) AS {q(_NEXT_FROM)}, "
        f"LEAD(v.{q(POS)}) OVER ({w}) AS {q(_NEXT_POS)} FROM ({ordered}) v"
    )
    op = (
        f"CASE WHEN w.{q(_RAW_OP)} = '{_CDC_DELETE}' THEN '{DELETED}' WHEN w.{q(_PREV_OP)} IS NULL "
        f"OR w.{q(_PREV_OP)} = '{_CDC_DELETE}' THEN '{INSERTED}' ELSE '{UPDATED}' END"
    )
    valid_to = f"CASE WHEN w.{q(_RAW_OP)} = '{_CDC_DELETE}' THEN w.{q(VALID_FROM)} ELSE w.{q(_NEXT_FROM)} END"
    current = f"(w.{q(_RAW_OP)} <> '{_CDC_DELETE}' AND w.{q(_NEXT_POS)} IS NULL)"
    source = (
        f"SELECT {', '.join('w.' + c for c in cols)}, w.{q(POS)}, {op} AS {q(OP)}, w.{q(VALID_FROM)}, "
        f"{valid_to} AS {q(VALID_TO)}, {current} AS {q(IS_CURRENT)} FROM ({chained}) w"
    )
    derived = [VALID_FROM, VALID_TO, IS_CURRENT, OP]
    same = " AND ".join(f"t.{q(n)} IS NOT DISTINCT FROM s.{q(n)}" for n in derived)
    insert = [*cols, *(q(n) for n in derived), q(POS)]
    return (
        f"MERGE INTO {q(plan.target_table)} t USING ({source}) s "
        f"ON {_match(plan, 't', 's')} AND t.{q(POS)} = s.{q(POS)} "
        f"WHEN MATCHED AND NOT ({same}) THEN UPDATE SET {', '.join(f't.{q(n)} = s.{q(n)}' for n in derived)} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(insert)}) VALUES ({', '.join('s.' + c for c in insert)})"
    )


def changed_rows(plan: TablePlan, load_table: str, rows: str) -> str:
    """The rows of the load table that ``rows`` (a predicate on it, by its name) picks whose key has no
    current version or a current version with other values, each with its current version's position
    (params: the version's time twice, its position, then ``rows``' params)."""
    load = q(load_table)
    typed = [_typed(c, f"{load}.{q(c.target)}") for c in plan.columns]
    same = " AND ".join(f"c.{q(c.target)} IS NOT DISTINCT FROM {t}" for c, t in zip(plan.columns, typed, strict=True))
    at = "CAST(%s AS TIMESTAMP_NTZ)"
    return (
        f"SELECT {', '.join(f'{t} AS {q(c.target)}' for c, t in zip(plan.columns, typed, strict=True))}, "
        f"c.{q(POS)} AS {q(_CUR_POS)}, GREATEST({at}, COALESCE(c.{q(VALID_FROM)}, {at})) AS {q(VALID_FROM)}, "
        f"CAST(%s AS VARCHAR) AS {q(POS)} FROM {load} LEFT JOIN {q(plan.target_table)} c "
        f"ON {_match(plan, 'c', load)} AND c.{q(IS_CURRENT)} "
        f"WHERE ({rows}) AND (c.{q(POS)} IS NULL OR NOT ({same}))"
    )


def snapshot_merge(plan: TablePlan, load_table: str, rows: str) -> str:
    """Versions from copied rows (a full copy, the cdc initial copy, an incremental run, the rolling
    audit): each row ``rows`` picks whose current version differs (or that has none) becomes the new
    current version, starting at the given time (or at its predecessor's start, if that is later), and
    the version it replaces is closed then, in one MERGE (params: ``changed_rows``' twice). A repeat
    finds the new versions current and equal: nothing changes."""
    changed = changed_rows(plan, load_table, rows)
    cols = [q(c.target) for c in plan.columns]
    op = f"CASE WHEN x.{q(_CUR_POS)} IS NULL THEN '{INSERTED}' ELSE '{UPDATED}' END AS {q(OP)}"
    picked = ", ".join([*(f"x.{f}" for f in [*cols, q(VALID_FROM), q(POS)]), op])
    source = (
        f"SELECT {picked}, x.{q(_CUR_POS)} AS {q(_MATCH)} FROM ({changed}) x WHERE x.{q(_CUR_POS)} IS NOT NULL "
        f"UNION ALL SELECT {picked}, NULL AS {q(_MATCH)} FROM ({changed}) x"
    )
    return (
        f"MERGE INTO {q(plan.target_table)} t USING ({source}) s "
        f"ON {_match(plan, 't', 's')} AND t.{q(POS)} = s.{q(_MATCH)} AND t.{q(IS_CURRENT)} "
        f"WHEN MATCHED THEN UPDATE SET t.{q(VALID_TO)} = s.{q(VALID_FROM)}, t.{q(IS_CURRENT)} = FALSE "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}, {_INSERTED_COLUMNS}) "
        f"VALUES ({', '.join('s.' + c for c in cols)}, s.{q(VALID_FROM)}, NULL, TRUE, s.{q(OP)}, s.{q(POS)})"
    )


def close_absent(plan: TablePlan, load_table: str, rows: str) -> str:
    """After a full copy: the current versions whose key is not among the rows ``rows`` picks (every
    row of the source's snapshots) are closed, and a delete marker follows each, in one MERGE (params:
    the time, the position, then ``rows``' params, twice)."""
    load = q(load_table)
    at = "CAST(%s AS TIMESTAMP_NTZ)"
    cols = [q(c.target) for c in plan.columns]
    keys = ", ".join(q(c.target) for c in _keys(plan))
    gone = (
        f"SELECT {', '.join('c.' + c for c in cols)}, c.{q(POS)} AS {q(_CUR_POS)}, "
        f"GREATEST({at}, c.{q(VALID_FROM)}) AS {q(VALID_FROM)}, CAST(%s AS VARCHAR) AS {q(POS)} "
        f"FROM {q(plan.target_table)} c WHERE c.{q(IS_CURRENT)} AND NOT EXISTS "
        f"(SELECT 1 FROM (SELECT {keys} FROM {load} WHERE {rows}) k WHERE {_match(plan, 'k', 'c')})"
    )
    fields = ", ".join(f"x.{f}" for f in [*cols, q(VALID_FROM), q(POS)])
    source = (
        f"SELECT {fields}, x.{q(_CUR_POS)} AS {q(_MATCH)} FROM ({gone}) x "
        f"UNION ALL SELECT {fields}, NULL AS {q(_MATCH)} FROM ({gone}) x"
    )
    return (
        f"MERGE INTO {q(plan.target_table)} t USING ({source}) s "
        f"ON {_match(plan, 't', 's')} AND t.{q(POS)} = s.{q(_MATCH)} AND t.{q(IS_CURRENT)} "
        f"WHEN MATCHED THEN UPDATE SET t.{q(VALID_TO)} = s.{q(VALID_FROM)}, t.{q(IS_CURRENT)} = FALSE "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}, {_INSERTED_COLUMNS}) "
        f"VALUES ({', '.join('s.' + c for c in cols)}, s.{q(VALID_FROM)}, s.{q(VALID_FROM)}, FALSE, "
        f"'{DELETED}', s.{q(POS)})"
    )


def truncate_markers(plan: TablePlan) -> str:
    """A ``TRUNCATE`` in the binlog (params: its time as epoch seconds twice, then its position three
    times): every key whose last version before that position is not a delete gets a
    delete marker there, holding that version's values, as a ``DELETE`` of each row would have. A repeat
    finds the markers and adds none; ``rederive_truncated`` then closes the versions they follow."""
    cols = [q(c.target) for c in plan.columns]
    keys = _partition(plan, "h")
    at = f"GREATEST(DATEADD(second, %s, {_EPOCH}), h.{q(VALID_FROM)})"
    return (
        f"INSERT INTO {q(plan.target_table)} ({', '.join(cols)}, {_INSERTED_COLUMNS}) "
        f"SELECT {', '.join('h.' + c for c in cols)}, {at}, {at}, FALSE, '{DELETED}', CAST(%s AS VARCHAR) "
        f"FROM {q(plan.target_table)} h WHERE h.{q(POS)} < %s AND NOT EXISTS (SELECT 1 FROM "
        f"{q(plan.target_table)} x WHERE {_match(plan, 'x', 'h')} AND x.{q(POS)} = %s) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY h.{q(POS)} DESC) = 1 "
        f"AND h.{q(OP)} <> '{DELETED}'"
    )


def rederive_truncated(plan: TablePlan) -> str:
    """After ``truncate_markers`` (params: the ``TRUNCATE``'s position): the chains of the keys with a
    marker there derived again from their order by position, so the version before the marker ends at
    it and the first after it is an insert (``I``). Inserts nothing; a repeat changes nothing."""
    marked = f"SELECT m.* FROM {q(plan.target_table)} m WHERE m.{q(POS)} = %s AND m.{q(OP)} = '{DELETED}'"
    return _derive(plan, _versions_of(plan, marked))


INVARIANTS = (
    ("duplicate_versions", "versions of one key at one position"),
    ("several_current", "current versions beside another current version of their key"),
    ("overlapping", "versions whose interval overlaps the next version's"),
    ("stale_current", "current versions that are not their key's last version, or are a delete"),
    ("open_closed", "versions neither current nor closed, or closed before they start"),
)


def invariants(plan: TablePlan, keys_from: str | None = None) -> str:
    """How many versions break each of the history's rules (``INVARIANTS``, one column each), over the
    keys ``keys_from`` names (a relation with the key columns, e.g. ``SELECT ... FROM load WHERE ...``;
    its params are the statement's), or every key (None)."""
    h = "h"
    keys = _partition(plan, h)
    where = f" WHERE EXISTS (SELECT 1 FROM ({keys_from}) k WHERE {_match(plan, 'k', h)})" if keys_from else ""
    by_pos = f"PARTITION BY {keys} ORDER BY {h}.{q(POS)}"
    inner = (
        f"SELECT {h}.{q(IS_CURRENT)} AS cur, {h}.{q(OP)} AS op, {h}.{q(VALID_FROM)} AS vf, {h}.{q(VALID_TO)} AS vt, "
        f"COUNT(*) OVER (PARTITION BY {keys}, {h}.{q(POS)}) AS n_pos, "
        f"SUM(CASE WHEN {h}.{q(IS_CURRENT)} THEN 1 ELSE 0 END) OVER (PARTITION BY {keys}) AS n_cur, "
        f"LEAD({h}.{q(VALID_FROM)}) OVER ({by_pos}) AS next_from, LEAD({h}.{q(POS)}) OVER ({by_pos}) AS next_pos "
        f"FROM {q(plan.target_table)} {h}{where}"
    )
    rules = [
        "n_pos > 1",
        "cur AND n_cur > 1",
        "next_pos IS NOT NULL AND (vt IS NULL OR vt > next_from)",
        f"cur AND (next_pos IS NOT NULL OR op = '{DELETED}')",
        "(vt IS NULL AND NOT cur) OR vt < vf OR cur IS NULL",
    ]
    counts = ", ".join(
        f"SUM(CASE WHEN {rule} THEN 1 ELSE 0 END) AS {name}" for rule, (name, _) in zip(rules, INVARIANTS, strict=True)
    )
    return f"SELECT {counts} FROM ({inner})"


def describe_broken(table: str, counts: Sequence[int | None]) -> str | None:
    """One line naming the broken rules (None: every rule holds)."""
    broken = [f"{int(n or 0):,} {what}" for n, (_, what) in zip(counts, INVARIANTS, strict=True) if n]
    if not broken:
        return None
    return (
        f"the history of {table!r} breaks its rules: " + "; ".join(broken) + ". Nothing else was changed by this "
        "run's commit step after the check; the target was written by something other than the pipeline, or "
        "two writers raced: inspect the keys, then re-copy the table (a cdc re-snapshot, or a full run)"
    )


def current_rows(plan: TablePlan) -> str:
    """How many current versions the table holds."""
    return f"SELECT COUNT(*) FROM {q(plan.target_table)} WHERE {q(IS_CURRENT)}"
