"""The MySQL binlog: positions, the preconditions of change data capture, and a bounded window reader.

Positions are binlog file and offset (``Position``); the GTID set at that point is recorded beside
them (MariaDB's ``@@gtid_binlog_pos``, ``0-1-42``; MySQL's ``@@gtid_executed``, ``uuid:1-42``) for
the operator and for a move to another server, but the reader streams by file and offset, the one
coordinate both engines share and one that orders every event totally (``Position.key``).

The reader (``read_window``) uses the ``mysql-replication`` library (module ``pymysqlreplication``)
in non-blocking mode: it reads from the earliest stored position of the tables asked for up to the
server's end as it was when the window started, stopping early at a transaction boundary once its
time or byte budget is spent. Only committed transactions are returned; a window always ends at a
transaction boundary, so the next one starts exactly where it stopped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql

from aurora_replication.errors import BadInputError
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import binlog_decode, binlog_rows
from aurora_replication.source.binlog_values import ColumnFacts, Converter, UnrepresentableValueError, converter
from aurora_replication.source.statements import query

_DDL = re.compile(r"^\s*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\s+(ONLINE\s+|IGNORE\s+|TEMPORARY\s+)*TABLE\b", re.I)
# statements after which rows of the table can no longer be matched to the target's: a new copy is needed
_BREAKING = re.compile(r"^\s*(DROP|RENAME|TRUNCATE)\b|\bRENAME\b|\bCHANGE\b", re.I)


# TRUNCATE [TABLE] [db.]name: the statement a cdc table follows by emptying its target at that position
_NAME = r"(?:`(?:[^`]|``)+`|[^\s.`;]+)"
_TRUNCATE = re.compile(
    rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<first>{_NAME})(?:\s*\.\s*(?P<second>{_NAME}))?\s*;?\s*$", re.I
)
_TRUNCATE_WORD = re.compile(r"\bTRUNCATE\b", re.I)
_LEADING_COMMENTS = re.compile(r"^\s*(?:/\*(?!!).*?\*/\s*)+", re.S)


_ALTER_RENAME = re.compile(
    rf"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?P<first>{_NAME})(?:\s*\.\s*(?P<second>{_NAME}))?\s+"
    rf"(?:RENAME\s+COLUMN\s+(?P<old>{_NAME})\s+TO\s+(?P<new>{_NAME})\s*;?\s*"
    rf"|CHANGE\s+(?:COLUMN\s+)?(?P<cold>{_NAME})\s+(?P<cnew>{_NAME})\s+(?P<definition>.+))$",
    re.I | re.S,
)


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _one_clause(definition: str) -> bool:
    """Whether a column definition is one clause: no comma outside parentheses and quotes."""
    depth, quote = 0, ""
    for ch in definition:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            return False
    return True


def renamed_column(statement: str, schema: str) -> tuple[str, str, str, str] | None:
    """``(database, table, old, new)`` of an ``ALTER TABLE`` whose one clause renames one column
    (``RENAME COLUMN a TO b``, or ``CHANGE [COLUMN] a b <definition>``, whose type a caller compares
    with information_schema); None for any other statement (several clauses included)."""
    m = _ALTER_RENAME.match(_LEADING_COMMENTS.sub("", statement))
    if m is None:
        return None
    if m.group("definition") is not None and not _one_clause(m.group("definition")):
        return None
    database, table = (
        (schema, _unquote(m.group("first")))
        if m.group("second") is None
        else (_unquote(m.group("first")), _unquote(m.group("second")))
    )
    old, new = (m.group("old"), m.group("new")) if m.group("old") else (m.group("cold"), m.group("cnew"))
    return database, table, _unquote(old), _unquote(new)


def truncated_table(statement: str, schema: str) -> tuple[str, str] | None:
    """The ``(database, table)`` a ``TRUNCATE`` statement empties (``schema``: the session's database,
    for an unqualified name), or None for any other statement."""
    m = _TRUNCATE.match(_LEADING_COMMENTS.sub("", statement))
    if m is None:
        return None

    def unquote(name: str) -> str:
        return name[1:-1].replace("``", "`") if name.startswith("`") else name

    if m.group("second") is None:
        return schema, unquote(m.group("first"))
    return unquote(m.group("first")), unquote(m.group("second"))


class BinlogUnavailableError(BadInputError):
    """The binlog cannot be read as change data capture needs it (settings, grants, retention)."""


@dataclass(frozen=True)
class Position:
    """A point in the binlog: the next event starts at ``pos`` in ``file``."""

    file: str
    pos: int
    gtid: str = ""

    @property
    def sequence(self) -> int:
        """The numeric extension of the file name (``mysql-bin.000042`` is 42)."""
        try:
            return int(self.file.rsplit(".", 1)[1])
        except (IndexError, ValueError):
            raise BinlogUnavailableError(f"binlog file name {self.file!r} has no numeric extension") from None

    def key(self, row: int = 0) -> str:
        """Fixed-width text that sorts as the binlog does: file, offset, then row within the event."""
        return f"{self.sequence:010d}:{self.pos:012d}:{row:06d}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Position:
        return cls(str(d["file"]), int(d["pos"]), str(d.get("gtid") or ""))

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}" + (f" (GTID {self.gtid})" if self.gtid else "")


def is_mariadb(conn: pymysql.Connection[Any]) -> bool:
    return "mariadb" in str(query(conn, "SELECT VERSION()")[0][0]).lower()


def _variables(conn: pymysql.Connection[Any], names: list[str]) -> dict[str, str]:
    placeholders = ", ".join(["%s"] * len(names))
    rows = query(conn, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({placeholders})", names)
    return {str(n).lower(): str(v) for n, v in rows}


def gtid_set(conn: pymysql.Connection[Any]) -> str:
    """The server's GTID set now: MariaDB ``@@gtid_binlog_pos`` (domain-server-sequence per domain),
    MySQL ``@@gtid_executed`` (source uuid and intervals) when gtid_mode is ON; empty otherwise."""
    if is_mariadb(conn):
        return str(query(conn, "SELECT @@GLOBAL.gtid_binlog_pos")[0][0] or "")
    mode = _variables(conn, ["gtid_mode"]).get("gtid_mode", "OFF")
    if mode.upper() != "ON":
        return ""
    return str(query(conn, "SELECT @@GLOBAL.gtid_executed")[0][0] or "").replace("\n", "")


def current_position(conn: pymysql.Connection[Any]) -> Position:
    """The server's end of the binlog now (``SHOW BINARY LOG STATUS``, or ``SHOW MASTER STATUS``)."""
    row: tuple[Any, ...] | None = None
    for statement in ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):
        try:
            rows = query(conn, statement)
        except pymysql.err.ProgrammingError:
            continue
        row = rows[0] if rows else None
        break
    if row is None:
        raise BinlogUnavailableError(
            "the server has no binary log (log_bin is OFF): change data capture reads the binlog; turn it on "
            "(Aurora MySQL: binlog_format=ROW in the DB cluster parameter group, then reboot the writer)"
        )
    return Position(str(row[0]), int(row[1]), gtid_set(conn))


def binlog_files(conn: pymysql.Connection[Any]) -> list[tuple[str, int]]:
    """The binlog files the server still has, oldest first, with their sizes."""
    return [(str(r[0]), int(r[1])) for r in query(conn, "SHOW BINARY LOGS")]


def is_retained(position: Position, files: list[tuple[str, int]]) -> bool:
    """Whether the server still has the binlog file a position points into."""
    return any(name == position.file for name, _ in files)


def retention_seconds(conn: pymysql.Connection[Any]) -> int | None:
    """How long the server keeps binlogs: Aurora's ``binlog retention hours``, else
    ``binlog_expire_logs_seconds`` or ``expire_logs_days``; None when they are never purged by age.
    Aurora with no retention set (NULL) purges them as soon as it can: that is 0 here."""
    try:
        rows = query(conn, "CALL mysql.rds_show_configuration")
        for row in rows:
            if str(row[0]).lower() == "binlog retention hours":
                return 0 if row[1] is None else int(float(row[1]) * 3600)
    except pymysql.err.MySQLError:
        pass  # not RDS or Aurora
    v = _variables(conn, ["binlog_expire_logs_seconds", "expire_logs_days"])
    seconds = int(float(v.get("binlog_expire_logs_seconds") or 0))
    if not seconds:
        seconds = int(float(v.get("expire_logs_days") or 0) * 86400)
    return seconds or None


_SLAVE = ("REPLICATION SLAVE", "REPLICATION REPLICA", "ALL PRIVILEGES")
_CLIENT = ("REPLICATION CLIENT", "BINLOG MONITOR", "ALL PRIVILEGES")


def missing_grants(grants: list[str]) -> list[str]:
    """The replication privileges (on ``*.*``) that ``SHOW GRANTS`` lines lack. MariaDB 10.5+ names
    REPLICATION CLIENT ``BINLOG MONITOR`` and accepts REPLICATION REPLICA for REPLICATION SLAVE."""
    global_grants = " ".join(g.upper() for g in grants if " ON *.* " in g.upper())
    missing = []
    if not any(p in global_grants for p in _SLAVE):
        missing.append("REPLICATION SLAVE")
    if not any(p in global_grants for p in _CLIENT):
        missing.append("REPLICATION CLIENT (MariaDB: BINLOG MONITOR)")
    return missing


def check_preconditions(conn: pymysql.Connection[Any]) -> list[str]:
    """What keeps change data capture from working on this server, each with its fix (empty: ready)."""
    v = _variables(
        conn, ["log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "binlog_row_value_options"]
    )
    where = "the DB cluster parameter group (Aurora) or the server's configuration"
    problems = []
    if v.get("log_bin", "OFF").upper() not in ("ON", "1"):
        problems.append(f"the binary log is off (log_bin=OFF): set binlog_format=ROW in {where} and reboot")
    if v.get("binlog_format", "").upper() != "ROW":
        problems.append(f"binlog_format is {v.get('binlog_format')!r}, not ROW: set binlog_format=ROW in {where}")
    if v.get("binlog_row_image", "").upper() != "FULL":
        problems.append(
            f"binlog_row_image is {v.get('binlog_row_image')!r}, not FULL: row events must carry whole rows; "
            f"set binlog_row_image=FULL in {where}"
        )
    if v.get("binlog_row_metadata", "").upper() != "FULL":
        problems.append(
            f"binlog_row_metadata is {v.get('binlog_row_metadata', 'unsupported')!r}, not FULL: row events must "
            f"name their columns (MySQL 8.0.14+, MariaDB 10.5+); set binlog_row_metadata=FULL in {where}"
        )
    if v.get("binlog_row_value_options", ""):
        problems.append(
            "binlog_row_value_options is PARTIAL_JSON: JSON updates would carry no full value; set it to '' in " + where
        )
    grants = [str(r[0]) for r in query(conn, "SHOW GRANTS")]
    lacking = missing_grants(grants)
    if lacking:
        problems.append(
            f"the replication user lacks {' and '.join(lacking)} on *.*: "
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the user (MariaDB 10.5+: "
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*)"
        )
    return problems


# ---- the window reader -------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One table the reader follows: where its changes start, its columns now, and its key."""

    start: Position
    columns: list[ColumnFacts]
    key: list[str]
    # columns older events may still carry (dropped in MySQL since): their values are ignored
    dropped: frozenset[str] = frozenset()
    # columns the table's options exclude (``pipeline/modes/cdc/options.py``): their values are ignored
    excluded: frozenset[str] = frozenset()
    # history mode: every change of the window is kept, not only the latest of each key
    history: bool = False
    # a column renamed since ``start`` (old name -> new): older events carry the old name, whose values
    # are the new column's; the window confirms it by the ALTER statement (``Window.renamed``)
    renames: dict[str, str] = field(default_factory=dict)
    # the table in the binlog: its database (None: the source secret's) and name (None: the spec's key in
    # ``read_window``'s ``specs``). A window of several databases' tables (a cdc request naming several,
    # ``pipeline/modes/cdc/databases.py``) keys each spec by a label of its own and names its table here
    database: str | None = None
    table: str | None = None
    # a parent of a foreign key that changes another table's rows inside MySQL (ON DELETE / ON UPDATE
    # CASCADE, SET NULL, SET DEFAULT: ``pipeline/modes/cdc/cascades.py``): its row removals and updates are
    # noted in the window (``Window.deleted``, ``rekeyed``, ``updated``) from this position on, before ``start`` too
    watch_from: Position | None = None

    def where(self, label: str, default_database: str) -> tuple[str, str]:
        """The (database, table) the spec follows in the binlog."""
        return (self.database or default_database, self.table or label)


@dataclass(slots=True)
class RowChange:
    op: str  # "U" (insert or update: the row as it is after) or "D" (delete: the row as it was)
    pos: str  # Position.key of the event, with the row's index in it
    values: list[str | None]  # MySQL's text of each column of the TableSpec, in its order
    at: int | None = None  # the event's time (epoch seconds; history mode's _ASR_VALID_FROM)


@dataclass
class Window:
    start: Position
    end: Position
    # per table: the latest change of each key in the window (history mode: every change, keyed with its position)
    changes: dict[str, dict[tuple[str | None, ...], RowChange]] = field(default_factory=dict)
    events: int = 0
    # row events whose images went through the library (a column ``source.binlog_rows`` does not read)
    library_events: int = 0
    bytes: int = 0
    reached_end: bool = False
    newest_event_at: int | None = None
    # tables whose statement in the window (DROP, RENAME, CHANGE COLUMN) cannot be applied
    broken: dict[str, str] = field(default_factory=dict)
    # tables emptied by a TRUNCATE in the window: the position key of the last one (their changes in the
    # window are only those after it; the target's rows of older positions are removed at that point)
    truncated: dict[str, str] = field(default_factory=dict)
    # history-mode tables: every TRUNCATE in the window, (position key, epoch seconds), in binlog order (their
    # changes are all kept: each is a version; each TRUNCATE closes the keys live before it)
    history_truncated: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # tables whose expected rename (``TableSpec.renames``) the window holds as a statement: its position key
    renamed: dict[str, str] = field(default_factory=dict)
    # tables with a value the reader cannot spell as MySQL does (the reason): they fail this window alone
    unreadable: dict[str, str] = field(default_factory=dict)
    # a row event named a column the plan does not know: the window ends before it (re-plan first)
    schema_moved: list[str] = field(default_factory=list)
    ddl: list[str] = field(default_factory=list)
    stopped_by: str = "end"
    # the processes that decoded the window (``source/binlog_parallel.py``): each a segment of it
    segments: int = 1
    # watched tables (``TableSpec.watch_from``): the position key of the last row event that deleted rows,
    # that changed a row's key, and that updated rows; before the table's start, where its rows are not
    # decoded, every update counts as a key change (it may have been one)
    deleted: dict[str, str] = field(default_factory=dict)
    rekeyed: dict[str, str] = field(default_factory=dict)
    updated: dict[str, str] = field(default_factory=dict)


def open_stream(
    settings: MySQLSettings,
    start: Position,
    server_id: int,
    tables: list[str],
    schemas: list[str],
    events: list[Any] | None = None,
) -> Any:
    """A non-blocking binlog stream from ``start`` of ``tables`` in ``schemas`` (``events``: the event types
    returned; None: the row events, statements, commits and rotations ``read_window`` reads)."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    binlog_decode.install()  # temporal values decoded as MySQL decodes them

    connection: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.username,
        "password": settings.password,
        "connect_timeout": 10,
        "read_timeout": 120,
    }
    if settings.tls:
        import ssl

        bundle = settings.ca_bundle or str(MySQLSettings.PACKAGED_CA_BUNDLE)
        ctx = (
            ssl.create_default_context()
            if bundle == MySQLSettings.SYSTEM_CA_STORE
            else ssl.create_default_context(cafile=bundle)
        )
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        connection["ssl"] = ctx
    return BinLogStreamReader(
        connection_settings=connection,
        server_id=server_id,
        resume_stream=True,
        log_file=start.file,
        log_pos=start.pos,
        blocking=False,
        only_schemas=schemas,
        only_tables=tables,
        only_events=events or [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent, XidEvent, RotateEvent],
        enable_logging=False,
    )


EMPTY_SET = "empty set"  # pymysqlreplication.constants.NONE_SOURCE.EMPTY_SET: a SET holding no member


def _image(
    columns: list[tuple[str, Converter]], values: dict[str, Any], none_sources: dict[str, str]
) -> list[str | None]:
    """A row image as MySQL's text per column (``columns``: each column's name and ``converter``); the
    library reads an empty SET as None, MySQL as ''."""
    out: list[str | None] = []
    for name, convert in columns:
        v = values.get(name)
        if v is None:
            out.append("" if none_sources.get(name) == EMPTY_SET else None)
        else:
            out.append(convert(v))
    return out


def _unknown_columns(spec: TableSpec, names: list[str]) -> list[str]:
    known = {c.name for c in spec.columns} | spec.dropped | spec.excluded | set(spec.renames)
    return [n for n in names if n not in known]


def read_window(
    settings: MySQLSettings,
    specs: dict[str, TableSpec],
    stop_at: Position,
    server_id: int,
    max_seconds: float,
    max_bytes: int,
    text_rows: bool = True,
) -> Window:
    """The committed row changes of ``specs``' tables after each table's start, up to ``stop_at``
    (the server's end when the window began), within the time and byte budget. ``specs`` is keyed by a
    label (the table's name for the source secret's database), which the window's fields are keyed by;
    each spec's ``where`` is the (database, table) it follows, so one read serves the tables of several
    databases (the binlog is the server's, not a database's). ``text_rows``: row images read straight to
    text where ``source.binlog_rows`` reads every column of the table (False: always through the library;
    the tests compare the two)."""
    from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    start = min((s.start for s in specs.values()), key=lambda p: p.key())
    window = Window(start=start, end=start)
    window.changes = {t: {} for t in specs}
    if start.key() >= stop_at.key():
        window.end, window.reached_end = stop_at, True
        return window
    deadline = time.monotonic() + max_seconds
    where = {t: s.where(t, settings.dbname) for t, s in specs.items()}
    labels = {w: t for t, w in where.items()}
    shown = {t: f"{w[0]}.{w[1]}" if specs[t].database else w[1] for t, w in where.items()}
    key_index = {t: [i for i, c in enumerate(s.columns) if c.name in s.key] for t, s in specs.items()}
    converters = {t: [(c.name, converter(c)) for c in s.columns] for t, s in specs.items()}
    pending: list[tuple[str, list[RowChange]]] = []  # each row event's changes of the open transaction
    pending_at: int | None = None
    schemas = sorted({w[0] for w in where.values()})
    stream = open_stream(settings, start, server_id, sorted({w[1] for w in where.values()}), schemas)
    try:
        for event in _events(stream):
            window.events += 1
            window.bytes += int(getattr(event, "event_size", 0) or 0)
            here = Position(str(stream.log_file), int(stream.log_pos))
            if isinstance(event, RotateEvent):
                continue
            if isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                label = labels.get((str(event.schema), str(event.table)))
                spec = specs.get(label) if label is not None else None
                if label is None or spec is None:
                    continue
                if here.key() <= spec.start.key():
                    if spec.watch_from is not None and here.key() > spec.watch_from.key():
                        update = isinstance(event, UpdateRowsEvent)  # not decoded: its key may have changed
                        _watch(window, label, here.key(), isinstance(event, DeleteRowsEvent), update, update)
                    continue
                names = [str(c.name) for c in event.columns]
                if any(n.startswith("UNKNOWN_COL") for n in names):
                    raise BinlogUnavailableError(
                        f"row events of table {shown[label]!r} carry no column names: set binlog_row_metadata=FULL"
                    )
                unknown = _unknown_columns(spec, names)
                if unknown:
                    window.schema_moved.append(f"{shown[label]}: {', '.join(unknown)}")
                    pending = []
                    window.stopped_by = "schema change"
                    break
                try:
                    reader = _text_reader(event, names, spec) if text_rows else None
                    if reader is not None:
                        changes = list(_text_changes(event, here, reader))
                    else:
                        window.library_events += 1
                        changes = list(_changes(event, here, converters[label], key_index[label], spec))
                except UnrepresentableValueError as e:
                    window.unreadable.setdefault(label, f"table {shown[label]!r}: {e}")
                    continue
                if spec.watch_from is not None:
                    update = isinstance(event, UpdateRowsEvent)
                    rekeyed = update and any(c.op == "D" for c in changes)  # an update's delete: its old key
                    _watch(window, label, here.key(), isinstance(event, DeleteRowsEvent), rekeyed, update)
                pending.append((label, changes))
                pending_at = int(event.timestamp)
                continue
            boundary = isinstance(event, XidEvent)
            truncating: list[str] = []
            history_truncating: list[tuple[str, int]] = []
            if isinstance(event, QueryEvent):
                statement = _text(event.query)
                boundary = True  # COMMIT of a non-transactional table, or a DDL statement (its own commit)
                if statement.upper() in ("BEGIN", "XA START"):
                    continue
                session = _text(event.schema)
                emptied = truncated_table(statement, session)
                if emptied is not None:
                    window.ddl.append(statement[:500])
                    for label, spec in specs.items():
                        if here.key() <= spec.start.key():
                            continue
                        database, table = where[label]
                        if emptied == (database, table) and spec.history:
                            history_truncating.append((label, int(event.timestamp)))
                        elif emptied == (database, table):
                            truncating.append(label)
                        elif (emptied[0].lower(), emptied[1].lower()) == (database.lower(), table.lower()):
                            # a name equal but for case (lower_case_table_names): not followed, stopped loudly
                            window.broken.setdefault(label, statement[:300])
                elif _DDL.match(statement) and session in schemas:
                    window.ddl.append(statement[:500])
                    renaming = renamed_column(statement, session)
                    for label, spec in specs.items():
                        database, table = where[label]
                        after_start = here.key() > spec.start.key()
                        if (
                            after_start
                            and renaming is not None
                            and renaming[:2] == (database, table)
                            and spec.renames.get(renaming[2]) == renaming[3]
                        ):
                            window.renamed[label] = here.key()  # the rename planning expected: followed
                            continue
                        if renaming is not None and renaming[:2] == (database, table) and renaming[2] == renaming[3]:
                            continue  # CHANGE keeping the name: a MODIFY (a type change planning compares)
                        mentioned = database == session and _mentions(statement, table)
                        if after_start and mentioned and _BREAKING.search(statement):
                            window.broken.setdefault(label, statement[:300])
                elif _TRUNCATE_WORD.search(statement):  # a TRUNCATE not parsed (several tables, a comment...)
                    for label, spec in specs.items():
                        if here.key() > spec.start.key() and _mentions(statement, where[label][1]):
                            window.broken.setdefault(label, statement[:300])
            if not boundary:
                continue
            for label, changes in pending:
                if label in window.broken or label in window.unreadable:
                    continue
                keyed, at_key = window.changes[label], key_index[label]
                if specs[label].history:  # every version: one entry per change (its position is unique)
                    for change in changes:
                        keyed[(*(change.values[i] for i in at_key), change.pos)] = change
                elif len(at_key) == 1:
                    k = at_key[0]
                    for change in changes:
                        keyed[(change.values[k],)] = change
                else:
                    for change in changes:
                        keyed[tuple([change.values[i] for i in at_key])] = change
            for label in truncating:  # after the changes committed before it: they are all emptied
                if label not in window.broken and label not in window.unreadable:
                    window.changes[label] = {}
                    window.truncated[label] = here.key()
            for label, at in history_truncating:  # after the changes committed before it, which stay versions
                if label not in window.broken and label not in window.unreadable:
                    window.history_truncated.setdefault(label, []).append((here.key(), at))
            if pending_at is not None:
                window.newest_event_at = max(window.newest_event_at or 0, pending_at)
            pending, pending_at = [], None
            window.end = here
            if here.key() >= stop_at.key():
                window.reached_end = True
                break
            if window.bytes >= max_bytes:
                window.stopped_by = "bytes"
                break
            if time.monotonic() >= deadline:
                window.stopped_by = "time"
                break
        else:  # the server had nothing more: what was not seen belongs to other tables
            if not pending and stop_at.key() > window.end.key():
                window.end = stop_at
            window.reached_end = window.end.key() >= stop_at.key()
    finally:
        stream.close()
    if window.reached_end:
        window.end = Position(window.end.file, window.end.pos, stop_at.gtid if window.end == stop_at else "")
    return window


def _watch(window: Window, label: str, at: str, deleted: bool, rekeyed: bool, updated: bool) -> None:
    """Note a watched table's row event at position key ``at``: it deleted rows, changed a key, updated rows."""
    for noted, happened in ((window.deleted, deleted), (window.rekeyed, rekeyed), (window.updated, updated)):
        if happened:
            noted[label] = at


def _events(stream: Any) -> Iterator[Any]:
    while True:
        event = stream.fetchone()
        if event is None:
            return
        yield event


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)


def _mentions(statement: str, table: str) -> bool:
    pattern = r"(^|[\s.,`(])`?" + re.escape(table.replace("`", "``")) + r"`?($|[\s,;(`])"
    return re.search(pattern, statement, re.I) is not None


def _changes(
    event: Any, here: Position, columns: list[tuple[str, Converter]], key_index: list[int], spec: TableSpec
) -> Iterator[RowChange]:
    """The changes of one row event: an update that changes the key deletes the old key."""
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

    at = int(event.timestamp) if getattr(event, "timestamp", None) is not None else None
    key_columns = [columns[k] for k in key_index]
    rows = event.rows
    if spec.renames:  # an event older than a rename names the column by its old name
        rows = [{k: _renamed(spec, v) if isinstance(v, dict) else v for k, v in row.items()} for row in rows]
    for i, row in enumerate(rows):
        pos = here.key(i)
        if isinstance(event, UpdateRowsEvent):
            after = _image(columns, row["after_values"], row.get("after_none_sources") or {})
            before = row["before_values"]
            old_key = [None if before.get(name) is None else convert(before[name]) for name, convert in key_columns]
            if old_key != [after[k] for k in key_index]:  # the key changed: the old key is deleted
                yield RowChange("D", pos, _image(columns, before, row.get("before_none_sources") or {}), at)
            yield RowChange("U", pos, after, at)
        elif isinstance(event, DeleteRowsEvent):
            yield RowChange("D", pos, _image(columns, row["values"], row.get("none_sources") or {}), at)
        else:
            yield RowChange("U", pos, _image(columns, row["values"], row.get("none_sources") or {}), at)


# MySQL's PARTIAL_UPDATE_ROWS_EVENT (binlog_row_value_options=PARTIAL_JSON): its after image is not whole
_PARTIAL_UPDATE_ROWS = 39


def _text_reader(event: Any, names: list[str], spec: TableSpec) -> binlog_rows.TableReader | None:
    """The event's rows read straight to text (``source.binlog_rows``), or None: the library reads them."""
    if event.event_type == _PARTIAL_UPDATE_ROWS or not getattr(event, "complete", True):
        return None
    if not binlog_rows.whole_images(event):
        return None
    named = [spec.renames.get(n, n) for n in names] if spec.renames else names
    return binlog_rows.table_reader(event, named, spec.columns, spec.key)


def _text_changes(event: Any, here: Position, reader: binlog_rows.TableReader) -> Iterator[RowChange]:
    """``_changes`` of an event whose images ``reader`` reads: the same changes, the same text."""
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent

    at = int(event.timestamp) if getattr(event, "timestamp", None) is not None else None
    update, op = isinstance(event, UpdateRowsEvent), "D" if isinstance(event, DeleteRowsEvent) else "U"
    buf = binlog_rows.event_body(event)
    o, end, i = 0, len(buf), 0
    row, key_of, spec_key = reader.row, reader.key_of, reader.spec_key
    event_key = here.key()[:-6]  # the row's index follows (``Position.key``)
    while o < end:
        pos = f"{event_key}{i:06d}"
        if update:
            start = o
            old_key, o = key_of(buf, o)
            after, o = row(buf, o)
            if old_key != [after[k] for k in spec_key]:  # the key changed: the old key is deleted
                yield RowChange("D", pos, row(buf, start)[0], at)
            yield RowChange("U", pos, after, at)
        else:
            image, o = row(buf, o)
            yield RowChange(op, pos, image, at)
        i += 1


def _renamed(spec: TableSpec, values: dict[str, Any]) -> dict[str, Any]:
    return {spec.renames.get(k, k): v for k, v in values.items()}


def column_facts(conn: pymysql.Connection[Any], database: str, table: str) -> dict[str, ColumnFacts]:
    """What ``to_text`` needs of each column beside its kind, and what a schema change compares."""
    from aurora_replication import typemap

    rows = query(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, "
        "IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_OCTET_LENGTH, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        [database, table],
    )
    out: dict[str, ColumnFacts] = {}
    for name, data_type, column_type, prec, scale, dt_prec, nullable, default, octets, charset in rows:
        try:
            kind = typemap.map_column(
                str(name),
                str(data_type),
                str(column_type),
                int(prec) if prec is not None else None,
                int(scale) if scale is not None else None,
                int(dt_prec) if dt_prec is not None else None,
            ).kind
        except typemap.UnsupportedTypeError:
            kind = "unsupported"
        # MariaDB spells "no default" of a nullable column as the text NULL; MySQL as SQL NULL
        no_default = default is None or (str(default).upper() == "NULL" and str(nullable) == "YES")
        out[str(name)] = ColumnFacts(
            name=str(name),
            kind=kind,
            data_type=str(data_type).lower(),
            column_type=str(column_type).lower(),
            datetime_precision=int(dt_prec or 0),
            nullable=str(nullable) == "YES",
            default=None if no_default else str(default),
            length=int(octets) if octets is not None else None,
            charset=str(charset).lower() if charset is not None else None,
        )
    return out
