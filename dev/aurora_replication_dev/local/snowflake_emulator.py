"""Launcher for the fakesnow Snowflake emulator used by the local stack and the tests.

Run as ``python -m aurora_replication_dev.local.snowflake_emulator --port P --db-path DIR``.
It differs from ``fakesnow -s`` in these ways, both documented in docs/local.md:

* every connection shares one instance persisted under ``--db-path``, so state survives
  between local runs and several workers see the same tables;
* ``TO_NUMBER(x, 'XX..')``, ``MD5_NUMBER_UPPER64(x)`` and ``BINARY(n)``, valid Snowflake, are translated for DuckDB;
* an explicit NUMBER(38,0) keeps 38 digits (fakesnow stores it as a 64-bit integer);
* ``SUM`` of a NUMBER is exact, as in Snowflake (fakesnow summed every argument as a DOUBLE);
* ``$name`` inside a string literal is text, not a session variable;
* NULL timestamps are encoded as NULL (the emulator's server mode turns them into 1970-01-01);
* staged CSV is read as text, so column types come from the table, as in Snowflake, and by the file
  format's dialect (delimiter, doubled quotes, no 2 MB record limit), never a sniffed one;
* an enclosed empty CSV field ("") is the empty string, not NULL, and hex text loaded into BINARY
  columns is decoded, as in Snowflake;
* a CSV file format's ``DATE_FORMAT``, ``TIME_FORMAT`` and ``TIMESTAMP_FORMAT`` (which fakesnow refused)
  parse the text of DATE, TIME and TIMESTAMP columns strictly, as in Snowflake;
* a CSV file format's ``COMPRESSION = ZSTD`` (which fakesnow refused) reads the file as zstd, as in
  Snowflake; a file that is not zstd fails the COPY;
* ``INSERT OVERWRITE`` holds its table's lock until the transaction ends, as in Snowflake, and outside
  a transaction it is all or nothing (fakesnow committed its DELETE before its INSERT); ``UPDATE``,
  ``DELETE`` and ``MERGE`` take the table's lock too (two MERGEs at once inserted a new key twice);
* asynchronous statements (``execute_async``) run on after their session, with their status and errors
  reported by query id; ``STATEMENT_TIMEOUT_IN_SECONDS`` and the connector's cancel stop a statement
  with Snowflake's codes (``_timed_app``);
* ``COPY ... FROM @stage/path/ FILES = (...)`` loads the named files of an internal stage (fakesnow
  refused FILES there);
* creating an object that exists fails with Snowflake's code for it (002002, "already exists"), not
  with the code of a missing object;
* ``ALTER SESSION SET QUERY_TAG = '<string>'`` (and ``UNSET QUERY_TAG``) is accepted, as Snowflake does;
* a result's columns are described as DuckDB reported them when it ran the statement, not from a
  second parse, translation and plan of that statement: the same columns, without the emulator's
  largest per-statement cost.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import threading
from collections import OrderedDict
from typing import Any

from backports import zstd


def _patch_null_timestamps() -> None:
    import fakesnow.arrow as fs_arrow
    import pyarrow as pa
    import pyarrow.compute as pc

    original = fs_arrow.timestamp_to_sf_struct

    def timestamp_to_sf_struct(ts: Any) -> Any:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(ts)
        if ts.null_count == 0:
            return struct
        fields = [struct.type.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(
            [struct.field(i) for i in range(len(fields))], fields=fields, mask=pc.is_null(ts)
        )

    fs_arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


_MAX_CSV_RECORD = 512 * 1024 * 1024
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MIN_CSV_BUFFER = 32 * 1024 * 1024  # DuckDB's own default (16 x its 2 MB line limit)


def _longest_possible_record(url: str) -> int:
    """The uncompressed size of a staged file plus one, within DuckDB's 2 MB default and 512 MB:
    the longest record it can hold. A file that cannot be read here (a remote URL) gets 512 MB."""
    try:
        with open(url, "rb") as raw:
            magic = raw.read(4)
        if magic[:2] == b"\x1f\x8b" or magic == _ZSTD_MAGIC:
            size = 0
            with gzip.open(url, "rb") if magic[:2] == b"\x1f\x8b" else zstd.open(url, "rb") as f:
                while block := f.read(1 << 20):
                    size += len(block)
        else:
            size = os.path.getsize(url)
    except (OSError, EOFError, gzip.BadGzipFile, zstd.ZstdError):
        return _MAX_CSV_RECORD
    return max(2 * 1024 * 1024, min(size + 1, _MAX_CSV_RECORD))


# Snowflake's date and time format elements (the ones a file format of ours names), as strptime's
_FORMAT_ELEMENTS = {"YYYY": "%Y", "MM": "%m", "DD": "%d", "HH24": "%H", "MI": "%M", "SS": "%S", "FF6": "%f"}
_FORMAT_LITERALS = set("-:. T")


def _strptime_format(snowflake_format: str) -> str | None:
    """A Snowflake date/time format as DuckDB's ``strptime`` format (None for AUTO). An element this
    emulator does not know is an error, never guessed."""
    if snowflake_format.upper() == "AUTO":
        return None
    out, rest = [], snowflake_format
    while rest:
        element = next((e for e in sorted(_FORMAT_ELEMENTS, key=len, reverse=True) if rest.startswith(e)), None)
        if element is not None:
            out.append(_FORMAT_ELEMENTS[element])
            rest = rest[len(element) :]
        elif rest[0] in _FORMAT_LITERALS:
            out.append(rest[0])
            rest = rest[1:]
        else:
            raise NotImplementedError(f"date/time format {snowflake_format!r}: unknown element at {rest!r}")
    return "".join(out)


def _patch_csv_types() -> None:
    """Read staged CSV as text and let the target column types convert it, as Snowflake does.

    The emulator otherwise lets DuckDB guess each column's type from a sample, which turns the
    string '007' into the number 7.
    """
    import duckdb
    from fakesnow import copy_into
    from snowflake.connector.errors import ProgrammingError

    original = copy_into.ReadCSV.read_expression

    def read_expression(self: Any, url: str) -> Any:
        expr = original(self, url)
        expr.append("expressions", self.make_eq("all_varchar", True))
        # EMPTY_FIELD_AS_NULL turns an empty field, "two successive delimiters", into NULL
        # (CREATE FILE FORMAT); an enclosed "" is not one: it is the empty string. DuckDB's default
        # reads "" as its null string too. (The staging files use NULL_IF = (), so no other text
        # is ever NULL, and nothing relies on how NULL_IF treats enclosed fields.)
        expr.append("expressions", self.make_eq("allow_quoted_nulls", False))
        # the dialect is the file format's, never guessed: DuckDB sniffs the delimiter when it is
        # the default ',', and gives up on files whose quoted text is full of '|', ';' or tabs.
        # An enclosed quote is doubled (FIELD_OPTIONALLY_ENCLOSED_BY), and a record may be as long
        # as Snowflake's values are (DuckDB stops at 2 MB by default).
        if not self.sep or self.sep == ",":  # another separator is already passed as sep (an alias)
            expr.append("expressions", self.make_eq("delim", ","))
        if self.quote:
            expr.append("expressions", self.make_eq("escape", self.quote))
        # DuckDB's read buffer is 16 x max_line_size unless told, and a compressed file's buffer is
        # allocated whole: 512 MB lines would take 8 GB per COPY. No record is longer than the file
        # it is in, so the limit is the file's uncompressed size (at most 512 MB) and the buffer
        # just holds one such record.
        line = _longest_possible_record(url)
        expr.append("expressions", self.make_eq("max_line_size", line))
        expr.append("expressions", self.make_eq("buffer_size", max(line, _MIN_CSV_BUFFER)))
        # records end with '\n', RECORD_DELIMITER's default: a '\r' inside an enclosed field is text
        # (Snowflake reads it so); DuckDB's sniffer takes it for a line ending and gives up.
        expr.append("expressions", self.make_eq("new_line", "\\n"))
        return expr

    copy_into.ReadCSV.read_expression = read_expression  # type: ignore[method-assign]

    # DuckDB names CSV columns column0..column9, but column00..column10 once there are more than
    # ten: the emulator always says column{i}, so a COPY of 11+ columns fails. Pad the names.
    from sqlglot import exp

    original_inserts = copy_into._inserts

    # COPY of CSV text into a BINARY column decodes it as hex (BINARY_FORMAT's default) in
    # Snowflake; the emulator stores the hex text itself. Decode it for BLOB columns.
    context = threading.local()
    original_copy = copy_into.copy_into

    def copy_into_with_context(
        duck_conn: Any, current_database: Any, current_schema: Any, expr: Any, *a: Any, **k: Any
    ) -> Any:
        context.duck_conn, context.schema = duck_conn, current_schema
        try:
            return original_copy(duck_conn, current_database, current_schema, expr, *a, **k)
        except duckdb.Error as e:
            # Snowflake fails a COPY whose file it cannot read with a query error; the emulator would
            # answer HTTP 500, which the connector retries for as long as it may, so a test hangs
            # instead of failing. Report it as the statement's error.
            raise ProgrammingError(msg=f"COPY could not read the staged file: {e}", errno=100000) from None

    def _column_types(table: Any) -> dict[str, str]:
        duck = getattr(context, "duck_conn", None)
        if duck is None:
            return {}
        rows = duck.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = ?",
            [table.name, table.db or context.schema],
        ).fetchall()
        return {str(r[0]): str(r[1]).upper() for r in rows}

    # DATE_FORMAT, TIME_FORMAT and TIMESTAMP_FORMAT (CREATE FILE FORMAT: "Defines the format of date
    # [time, timestamp] values in the data files"), which fakesnow refused: text is parsed into
    # DATE, TIME and TIMESTAMP columns with exactly that format, and text that does not match it
    # fails the COPY, as in Snowflake; AUTO keeps DuckDB's ISO reading.
    original_handle_csv = copy_into.handle_csv

    def handle_csv(options: dict[str, Any]) -> Any:
        rest = dict(options)
        context.formats = {
            kind: _strptime_format(str(rest.pop(f"{kind}_FORMAT")))
            for kind in ("DATE", "TIME", "TIMESTAMP")
            if f"{kind}_FORMAT" in rest
        }
        # COMPRESSION = ZSTD (CREATE FILE FORMAT, TYPE = CSV: "COMPRESSION = AUTO | GZIP | BZ2 | BROTLI |
        # ZSTD | ..."), which fakesnow refused: DuckDB reads the file as zstd, and a file that is not
        # zstd fails the COPY, as in Snowflake (no guessing from the extension)
        zstd = str(rest.get("COMPRESSION", "")).upper() == "ZSTD"
        if zstd:
            rest.pop("COMPRESSION")
        read = original_handle_csv(rest)
        if zstd:
            read.compression = "zstd"
        return read

    def _parsed(col: Any, duck_type: str) -> Any:
        formats = getattr(context, "formats", {})
        kind = "TIMESTAMP" if duck_type.startswith("TIMESTAMP") else duck_type
        fmt = formats.get(kind) if kind in ("DATE", "TIME", "TIMESTAMP") else None
        if fmt is None:
            return None
        parsed = exp.func("strptime", col.copy(), exp.Literal.string(fmt))
        return parsed if kind == "TIMESTAMP" else exp.cast(parsed, kind)

    def _inserts(expr: Any, params: Any, urls: Any, parquet_info: Any = None) -> Any:
        inserts = original_inserts(expr, params, urls, parquet_info)
        targets = [c.name for c in expr.this.expressions]
        width = len(str(max(len(targets) - 1, 0)))
        types = _column_types(expr.this.this if targets else expr.this) if targets else {}
        for insert in inserts:
            for col in list(insert.find_all(exp.Column)):
                name = col.name
                if name.startswith("column") and name[6:].isdigit():
                    i = int(name[6:])
                    col.set("this", exp.Identifier(this=f"column{i:0{width}d}"))
                    duck_type = types.get(targets[i], "") if i < len(targets) else ""
                    if duck_type == "BLOB":
                        col.replace(exp.func("unhex", col.copy()))
                    elif (parsed := _parsed(col, duck_type)) is not None:
                        col.replace(parsed)
        context.formats = {}
        return inserts

    copy_into.handle_csv = handle_csv
    copy_into._inserts = _inserts
    copy_into.copy_into = copy_into_with_context
    import fakesnow.cursor as fs_cursor

    if getattr(fs_cursor, "copy_into", None) is original_copy:
        fs_cursor.copy_into = copy_into_with_context


def _patch_hex_to_number() -> None:
    """``TO_NUMBER(text, 'XXXXXXXX')`` (hexadecimal digits) is valid Snowflake that fakesnow does
    not translate: spell it as DuckDB's cast of ``'0x' || text`` to BIGINT. ``MD5_NUMBER_UPPER64``
    (checksums use it) likewise, as the digest's first 16 hex digits read as a NUMBER(20,0).
    ``BINARY(n)`` likewise: DuckDB's BLOB takes no length."""
    import re

    import sqlglot
    from fakesnow.cursor import FakeSnowflakeCursor
    from sqlglot import exp

    original = FakeSnowflakeCursor._transform
    if getattr(original, "_asr_hex", False):
        return

    def replace(node: Any) -> Any:
        if (
            isinstance(node, exp.DataType)
            and node.this in (exp.DataType.Type.BINARY, exp.DataType.Type.VARBINARY)
            and node.expressions
        ):
            # BINARY(n) is valid Snowflake (n up to 64 MB); DuckDB's BLOB takes no length (and DuckDB
            # enforces no VARCHAR length either), so the length is dropped rather than the statement
            return exp.DataType(this=node.this)
        if isinstance(node, exp.MD5NumberUpper64):
            # the digest read as a big-endian number, its upper 64 bits: its first 16 hex digits
            # (DuckDB's own md5_number_upper reads the bytes in another order). A NUMBER, as Snowflake
            # returns, so that a SUM of them is a DECIMAL(38,0) in DuckDB and a NUMBER(38,0) to the
            # connector, as in Snowflake
            spelled = sqlglot.parse_one(
                "CAST(CAST('0x' || SUBSTR(MD5(__asr_arg), 1, 16) AS UBIGINT) AS DECIMAL(20, 0))", read="duckdb"
            )
            placeholder = spelled.find(exp.Column)
            assert placeholder is not None
            placeholder.replace(node.this.copy())
            return spelled
        fmt = node.args.get("format") if isinstance(node, exp.ToNumber) else None
        if isinstance(fmt, exp.Literal) and re.fullmatch(r"X{1,15}", str(fmt.this)):
            spelled = sqlglot.parse_one("CAST('0x' || __asr_arg AS BIGINT)", read="duckdb")
            placeholder = spelled.find(exp.Column)
            assert placeholder is not None
            placeholder.replace(node.this.copy())
            return spelled
        return node

    def _transform(self: Any, expression: Any, params: Any) -> Any:
        return original(self, expression.transform(replace, copy=False), params)

    _transform._asr_hex = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor._transform = _transform  # type: ignore[method-assign]


def _patch_insert_overwrite_locks() -> None:
    """``INSERT OVERWRITE`` locks its table until the transaction ends, and truncates the rows committed
    when it runs, as in Snowflake (DML takes the table's lock; a statement sees what was committed before
    it began: *Transactions*, "Resource locking" and "Isolation level"); outside an explicit transaction it
    is one statement, all or nothing ("each statement is its own transaction" in autocommit): the emulator's
    DELETE and INSERT run in one DuckDB transaction, so a failing INSERT leaves the old rows, as in
    Snowflake (fakesnow committed the DELETE alone, leaving the table empty). The emulator turns it into a
    DELETE and an INSERT in DuckDB, whose snapshot is the transaction's start and which sees no conflict
    when the table was empty: two concurrent overwrites would both insert. Here a second overwrite waits
    for the first's transaction; if that one committed after the waiting transaction began, the waiting
    statement fails (Snowflake would instead truncate the newer rows; failing is stricter, never more
    lenient) and its caller's retry finds the work done.

    ``UPDATE``, ``DELETE`` and ``MERGE`` take the same lock ("Resource locking": they do not run in parallel
    with each other on one table): outside a transaction while the statement runs, inside one until it
    ends. fakesnow runs a MERGE as several DuckDB statements, each on its own snapshot (it cannot be one
    DuckDB transaction: its temporary table writes to another attached database): without the lock two
    concurrent MERGEs of a new key each found it missing and both inserted it."""
    import re

    from fakesnow.cursor import FakeSnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    guard = threading.Lock()
    table_locks: dict[str, threading.Lock] = {}
    committed_at: dict[str, int] = {}  # table -> sequence number of the last overwrite committed
    sessions: dict[int, dict[str, Any]] = {}  # id(connection) -> {"begin": seq, "held": [tables]}
    seq = [0]
    overwrite = re.compile(r'^\s*INSERT\s+OVERWRITE\s+INTO\s+("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$.]*)', re.I)
    # UPDATE, DELETE and MERGE take their table's lock too ("Resource locking": they do not run in parallel
    # with each other on one table); DuckDB would run two at once, each on its own snapshot, so two MERGEs
    # of one new key would both insert it (a duplicate Snowflake does not make)
    locking_dml = re.compile(
        r'^\s*(?:MERGE\s+INTO|UPDATE|DELETE\s+FROM)\s+((?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
        r'(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*))*)',
        re.I,
    )
    original = FakeSnowflakeCursor.execute

    def _end(session: dict[str, Any], commit: bool) -> None:
        with guard:
            seq[0] += 1
            for table in session["held"]:
                if commit:
                    committed_at[table] = seq[0]
                table_locks[table].release()
            session["held"] = []
            session["begin"] = None

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        session = sessions.setdefault(id(self._conn), {"begin": None, "held": []})
        word = command.strip().split(None, 1)[0].upper().rstrip(";") if command.strip() else ""
        if word in ("BEGIN", "START"):
            with guard:
                session["begin"] = seq[0]
        elif word in ("COMMIT", "ROLLBACK"):
            try:
                return original(self, command, *args, **kwargs)
            finally:
                _end(session, word == "COMMIT")
        dml = locking_dml.match(command)
        if dml:
            name = dml.group(1)
            table = name if name.startswith('"') else name.upper()
            with guard:
                lock = table_locks.setdefault(table, threading.Lock())
            if table in session["held"]:
                return original(self, command, *args, **kwargs)
            lock.acquire()
            if session["begin"] is not None:  # held until the transaction ends
                session["held"].append(table)
                return original(self, command, *args, **kwargs)
            try:  # autocommit: the statement holds the lock while it runs
                return original(self, command, *args, **kwargs)
            finally:
                lock.release()
        match = overwrite.match(command)
        if match:
            table = match.group(1).upper() if not match.group(1).startswith('"') else match.group(1)
            with guard:
                lock = table_locks.setdefault(table, threading.Lock())
            if table not in session["held"]:
                lock.acquire()
                session["held"].append(table)
            began = session["begin"]
            if began is not None and committed_at.get(table, -1) > began:
                raise ProgrammingError(
                    msg=f"table {table} was overwritten by a transaction that committed after this one began; "
                    "roll back and retry",
                    errno=625,
                )
            if began is None:  # autocommit: the statement is its own transaction, all or nothing
                duck = self._duck_conn
                duck.execute("BEGIN TRANSACTION")
                try:
                    result = original(self, command, *args, **kwargs)
                except BaseException:
                    duck.execute("ROLLBACK")
                    _end(session, False)
                    raise
                duck.execute("COMMIT")
                _end(session, True)
                return result
        return original(self, command, *args, **kwargs)

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]


def _patch_describe_last_sql() -> None:
    """Describe a statement's result by the columns DuckDB reported when it ran the statement.

    The server describes every result (its column names and types go to the connector) through
    ``FakeSnowflakeCursor._describe_last_sql``, which parses the translated statement again with
    sqlglot, writes it back out and has DuckDB plan it once more for a ``DESCRIBE``. Measured here,
    the second parse was about 60 % of the emulator's time for a statement as long as a table's
    checksum query (its canonical forms make a few thousand characters), and the second plan about
    a sixth of what was left for a run of many small tables: a statement's cost grew with its text, not
    its work. DuckDB already said what the result's columns are when it ran the statement (the
    cursor's ``description``: each column's name and its type, the same text as ``DESCRIBE``'s
    ``column_type``; fakesnow reads nothing else of a ``DESCRIBE`` row). That is kept with the SQL
    and bindings it belongs to; a result restored from the result cache (``RESULT_SCAN``, a query's
    status by id) is described by DuckDB's ``DESCRIBE`` of its SQL, without the second parse."""
    from fakesnow.cursor import FakeSnowflakeCursor

    execute = FakeSnowflakeCursor._execute

    def _execute(self: Any, transformed: Any, params: Any = None) -> None:
        self._asr_described = None
        execute(self, transformed, params)
        description = self._duck_conn.description
        if description is not None and not transformed.args.get("result_scan_sfqid"):
            # what the last statement run produced: the result ``_last_sql`` names (a result read back
            # from the cache is not one DuckDB just ran)
            columns = [(str(d[0]), str(d[1])) for d in description]
            self._asr_described = (self._last_sql, self._last_params, columns)

    def _describe_last_sql(self: Any) -> list[Any]:
        described = getattr(self, "_asr_described", None)
        if described is not None and described[0] is self._last_sql and described[1] is self._last_params:
            return [(name, column_type, "YES", None, None, None) for name, column_type in described[2]]
        rows: list[Any] = self._duck_conn.execute(f"DESCRIBE {self._last_sql}", self._last_params).fetchall()
        return rows

    FakeSnowflakeCursor._execute = _execute  # type: ignore[method-assign]
    FakeSnowflakeCursor._describe_last_sql = _describe_last_sql  # type: ignore[method-assign]


def _patch_already_exists() -> None:
    """``CREATE`` of an object that exists fails in Snowflake with 002002 (SQLSTATE 42710, "SQL
    compilation error: Object '...' already exists."). fakesnow reports every DuckDB catalog error
    as 002003, the code of an object that does not exist or is not authorized, so a caller could not
    tell the two apart. Only the code changes; the statement fails as before."""
    from fakesnow.cursor import FakeSnowflakeCursor
    from snowflake.connector.errors import ProgrammingError

    execute = FakeSnowflakeCursor._execute
    if getattr(execute, "_asr_already_exists", False):
        return

    def _execute(self: Any, transformed: Any, params: Any = None) -> None:
        try:
            execute(self, transformed, params)
        except ProgrammingError as e:
            if e.errno == 2003 and "already exists" in str(e.raw_msg or ""):
                raise ProgrammingError(msg=e.raw_msg, errno=2002, sqlstate="42710") from e
            raise

    _execute._asr_already_exists = True  # type: ignore[attr-defined]
    FakeSnowflakeCursor._execute = _execute  # type: ignore[method-assign]


def _patch_files_on_internal_stages() -> None:
    """``COPY INTO t FROM @stage/path/ FILES = ('a.csv.gz', 'b.csv.gz')`` loads the named files of an
    internal stage in Snowflake ("COPY INTO <table>", FILES: "a list of one or more file names
    (separated by commas) to be loaded", for internal and external locations alike). fakesnow keeps an
    internal stage as a local directory, whose path has no URL scheme, and refused FILES there with
    001011 ("invalid URL prefix"). Here the named files of an internal stage are its files; every other
    source is resolved as fakesnow does. A named file that is not there fails the COPY before any file
    is read, so that it loads nothing (Snowflake's COPY, with ON_ERROR = ABORT_STATEMENT, the default
    for bulk loads, aborts the whole statement)."""
    import fakesnow.copy_into as fs_copy
    from fakesnow.transforms import stage as fs_stage
    from snowflake.connector.errors import ProgrammingError

    original = fs_copy._source_urls
    if getattr(original, "_asr_internal_files", False):
        return

    def _source_urls(source: str, files: list[str]) -> list[str]:
        if files and fs_stage.is_internal(source):
            urls = [f"{source.rstrip('/')}/{f}" for f in files]
            # checked before any is read: a COPY with the default ON_ERROR = ABORT_STATEMENT loads
            # nothing when it fails, where fakesnow would have loaded the files before the missing one
            for name, url in zip(files, urls, strict=True):
                if not os.path.isfile(url):
                    raise ProgrammingError(
                        msg=f"Remote file '{name}' was not found in the stage location '{source}'.",
                        errno=1011,
                        sqlstate="42601",
                    )
            return urls
        return original(source, files)

    _source_urls._asr_internal_files = True  # type: ignore[attr-defined]
    fs_copy._source_urls = _source_urls


def _patch_exact_sums() -> None:
    """``SUM`` (and ``AVG``, ``MEDIAN``, the variances) of a NUMBER is exact in Snowflake: the sum of a
    NUMBER(p,0) column is a NUMBER(38,0) ("SUM" in Snowflake's SQL reference). fakesnow casts the
    argument of each of these to DOUBLE (``TRY_CAST(x AS DOUBLE)``, so that a sum of text runs as
    Snowflake's implicit conversion would), unless the argument is already a cast; a sum of
    NUMBER(20,0) values past 2^53 then comes back rounded. Here the argument keeps its own type, and
    only the column name fakesnow gives the result stays (``"SUM(X)"``, as Snowflake names it). A sum
    of text now fails in the emulator: stricter than Snowflake, never more lenient."""
    import fakesnow.transforms as fs_transforms
    from fakesnow.transforms import transforms as fs_impl
    from sqlglot import exp

    original = fs_transforms.numeric_agg_implicit_cast
    if getattr(original, "_asr_exact", False):
        return

    def numeric_agg_names(expression: Any) -> Any:
        if isinstance(expression, fs_impl._NUMERIC_ONLY_AGGS) and isinstance(expression.parent, exp.Select):
            return exp.alias_(expression, fs_impl._numeric_agg_col_name(expression, expression.this), quoted=True)
        return expression

    numeric_agg_names._asr_exact = True  # type: ignore[attr-defined]
    fs_transforms.numeric_agg_implicit_cast = numeric_agg_names


def _patch_number_38() -> None:
    """An explicit NUMBER(38,0) holds 38 digits in Snowflake; fakesnow stores it as a 64-bit BIGINT,
    so a DECIMAL(38,0) value past 2^63 fails to load. Keep an explicit NUMBER(38,0) a DECIMAL(38,0)
    (DuckDB's is exact to 38 digits); bare NUMBER and INT stay BIGINT as fakesnow has them."""
    import fakesnow.transforms as fs_transforms
    from sqlglot import exp

    original = fs_transforms.integer_precision
    if getattr(original, "_asr_number_38", False):
        return

    def integer_precision(expression: Any) -> Any:
        if (
            isinstance(expression, exp.DataType)
            and expression.this == exp.DataType.Type.DECIMAL
            and expression.expressions
        ):
            return expression
        return original(expression)

    integer_precision._asr_number_38 = True  # type: ignore[attr-defined]
    fs_transforms.integer_precision = integer_precision


def _patch_variables_in_literals() -> None:
    """Snowflake substitutes session variables (``$name``) in SQL, never inside a string literal or a
    quoted identifier; fakesnow searches the whole text, so a bound value such as ``'costs $US'``
    fails with ``Session variable '$US' does not exist``. Substitute outside literals only."""
    import re

    from fakesnow.variables import Variables

    original = Variables.inline_variables
    if getattr(original, "_asr_literals", False):
        return
    quoted = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|\$\$.*?\$\$", re.DOTALL)

    def inline_variables(self: Any, sql: str) -> str:
        parts, pos = [], 0
        for m in quoted.finditer(sql):
            parts.append(original(self, sql[pos : m.start()]))
            parts.append(m.group())
            pos = m.end()
        parts.append(original(self, sql[pos:]))
        return "".join(parts)

    inline_variables._asr_literals = True  # type: ignore[attr-defined]
    Variables.inline_variables = inline_variables  # type: ignore[method-assign]


def _patch_query_tag() -> None:
    """``ALTER SESSION SET QUERY_TAG = '<string>'`` sets a session parameter Snowflake documents (a
    string of up to 2,000 characters) that the emulator does not know: accept exactly that form, a
    string constant within the limit, as a no-op (the emulator keeps no query history to tag). Any
    other value, and every other unknown session parameter, still fails as before."""
    from fakesnow import transforms
    from sqlglot import exp

    original = transforms.alter_session
    if getattr(original, "_asr_query_tag", False):
        return

    def alter_session(expression: Any) -> Any:
        if isinstance(expression, exp.Alter) and expression.kind == "SESSION":
            found = expression.find(exp.AlterSession)
            items = (found.args.get("expressions") or []) if found is not None else []
            ident = items[0].find(exp.Identifier) if len(items) == 1 and isinstance(items[0], exp.SetItem) else None
            if ident is not None and str(ident.this).upper() == "QUERY_TAG":
                assert found is not None
                if found.args.get("unset"):
                    return transforms.SUCCESS_NOP
                rhs = items[0].this.args.get("expression") if isinstance(items[0].this, exp.EQ) else None
                if isinstance(rhs, exp.Literal) and rhs.is_string and len(str(rhs.this)) <= 2000:
                    return transforms.SUCCESS_NOP
        return original(expression)

    alter_session._asr_query_tag = True  # type: ignore[attr-defined]
    transforms.alter_session = alter_session


# Snowflake's codes for a statement that ran out of time or was cancelled (the connector's ``errno``)
STATEMENT_TIMEOUT_CODE = 630  # "Statement reached its statement or warehouse timeout of N second(s) and was canceled."
CANCELED_CODE = 604  # "SQL execution canceled"
ASYNC_IN_PROGRESS_CODE = "333334"  # the connector's QUERY_IN_PROGRESS_ASYNC_CODE
_SET_TIMEOUT = re.compile(
    r"^\s*ALTER\s+SESSION\s+(?:SET\s+STATEMENT_TIMEOUT_IN_SECONDS\s*=\s*([0-9]+)|UNSET\s+STATEMENT_TIMEOUT_IN_SECONDS)"
    r"\s*;?\s*$",
    re.I,
)
_SET_ABORT_DETACHED = re.compile(r"^\s*ALTER\s+SESSION\s+SET\s+ABORT_DETACHED_QUERY\s*=\s*(TRUE|FALSE)\s*;?\s*$", re.I)
SNOWFLAKE_DEFAULT_STATEMENT_TIMEOUT = 172800  # STATEMENT_TIMEOUT_IN_SECONDS' default: two days
DONE = "SELECT 'Statement executed successfully.'"  # what an accepted ALTER SESSION answers


class StatementDelays:
    """A test's model of how long statements take in Snowflake (the time-compressed simulation: a
    terabyte's publish runs for minutes there, a second here). ``<db-path>/statement_delays.json`` maps a
    session's schema to rules ``{"match": regex, "seconds": s, "times": n}``, read whenever the file
    changes: a statement of that schema whose text (and, after `` -- ``, its bound values as JSON) the
    regex finds waits ``s`` seconds before it runs, the first ``n`` times (-1: always). The wait is part
    of the statement: a timeout or a cancel ends it as it would end the statement. It never changes what
    a statement does, only when; without the file nothing waits."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.loaded: int | None = None
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def seconds(self, schema: str | None, text: str) -> float:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return 0.0
        import json

        with self.lock:
            if mtime != self.loaded:
                with open(self.path) as f:
                    self.rules = {str(k).upper(): list(v) for k, v in json.load(f).items()}
                self.loaded = mtime
            for rule in self.rules.get(str(schema or "").upper(), []):
                if rule.get("times", -1) != 0 and re.search(rule["match"], text, re.S):
                    if rule.get("times", -1) > 0:
                        rule["times"] -= 1
                    return float(rule["seconds"])
        return 0.0


class _Job:
    """One asynchronous statement: its status as Snowflake's monitoring reports it."""

    def __init__(self) -> None:
        self.status = "RUNNING"
        self.error_code: str | None = None
        self.error_message: str | None = None


def _timed_app(fs_server: Any, delays: StatementDelays | None = None) -> Any:
    """The emulator's web application with what Snowflake documents for time: asynchronous statements
    and statement timeouts. fakesnow ran a statement sent with ``asyncExec`` (the connector's
    ``execute_async``) to its end before answering, and its monitoring endpoint reported any statement
    it did not know as "no data" (which the connector reads as still running) and never an error; it
    ignored ``STATEMENT_TIMEOUT_IN_SECONDS`` and the connector's cancel (``abort-request``).

    * ``asyncExec``: the statement is accepted at once (Snowflake's 333334, "Asynchronous execution
      in progress") with its query id, and runs on a connection of its own, so it goes on after the
      session that sent it closes, as with ``ABORT_DETACHED_QUERY = FALSE`` (Snowflake's default;
      *Using the JDBC driver*, asynchronous queries). ``/monitoring/queries/<id>`` reports it RUNNING,
      then SUCCESS, or FAILED_WITH_ERROR with its error code and message (the connector's
      ``get_query_status_throw_if_error`` raises them); its result is read with RESULT_SCAN.
    * ``STATEMENT_TIMEOUT_IN_SECONDS`` (set at login or by ``ALTER SESSION``; default two days) cancels a
      statement that runs longer, with Snowflake's 000630; the connector's cancel of a synchronous
      statement (its ``network_timeout``) cancels it with 000604, "SQL execution canceled", as Snowflake does.
    """
    import asyncio
    import gzip as gz
    import json
    import uuid

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    original_query = fs_server.query_request
    original_login = fs_server.login_request
    original_monitoring = fs_server.monitoring_query
    timeouts: dict[str, int] = {}  # session token -> STATEMENT_TIMEOUT_IN_SECONDS
    running: dict[str, dict[str, Any]] = {}  # session token -> the synchronous statement in progress
    jobs: OrderedDict[str, _Job] = OrderedDict()
    guard = threading.Lock()

    async def body_of(request: Request) -> dict[str, Any]:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gz.decompress(body)
        loaded: dict[str, Any] = json.loads(body)
        return loaded

    def failure(code: int, message: str) -> JSONResponse:
        text = f"{code:06d}"
        return JSONResponse(
            {"data": {"errorCode": text, "sqlState": "57014"}, "code": text, "message": message, "success": False}
        )

    def timed_out(seconds: int) -> str:
        return f"Statement reached its statement or warehouse timeout of {seconds} second(s) and was canceled."

    def replayed(request: Request, body: dict[str, Any], token: str | None = None) -> Request:
        """The request again, with ``body`` (and another session's token)."""
        raw = json.dumps(body).encode()
        dropped = (b"content-encoding", b"content-length")
        headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in dropped]
        if token is not None:
            headers = [(k, v) for k, v in headers if k.lower() != b"authorization"]
            headers.append((b"authorization", f'Snowflake Token="{token}"'.encode()))
        headers.append((b"content-length", str(len(raw)).encode()))
        scope = {**request.scope, "headers": headers}
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        return Request(scope, receive)

    async def login_request(request: Request) -> Any:
        body = await body_of(request)
        response = await original_login(replayed(request, body))
        seconds = body.get("data", {}).get("SESSION_PARAMETERS", {}).get("STATEMENT_TIMEOUT_IN_SECONDS")
        if seconds is not None:
            token = json.loads(bytes(response.body)).get("data", {}).get("token")
            if token:
                timeouts[token] = int(seconds)
        return response

    def run_job(qid: str, job: _Job, request: Request, body: dict[str, Any], token: str, seconds: int) -> None:
        own = f"async-{qid}"
        session = fs_server.sessions[token]
        fs_server.sessions[own] = fs_server.shared_fs.connect(session.database, session.schema)
        conn = fs_server.sessions[own]
        fired = threading.Event()

        def cancel() -> None:
            fired.set()
            conn._duck_conn.interrupt()  # noqa: SLF001 - the job's own DuckDB connection

        timer = threading.Timer(seconds, cancel)
        timer.start()
        try:
            if fired.wait(delay_of(session.schema, body)):  # the modelled time ran into the timeout
                raise TimeoutError("cancelled while it ran")
            response = asyncio.run(original_query(replayed(request, {**body, "asyncExec": False}, own)))
            answer = json.loads(bytes(response.body))
        except Exception as e:  # noqa: BLE001 - the job fails, as the statement would
            answer = {"success": False, "code": "000603", "message": f"{type(e).__name__}: {e}"}
        finally:
            timer.cancel()
            fs_server.sessions.pop(own, None)
        with guard:
            if fired.is_set():
                job.status, job.error_code, job.error_message = "FAILED_WITH_ERROR", "000630", timed_out(seconds)
            elif answer.get("success"):
                done = (answer.get("data") or {}).get("queryId")
                cached = fs_server.shared_fs.results_cache.get(done) if done else None
                if cached is not None:
                    fs_server.shared_fs.results_cache[qid] = cached
                job.status = "SUCCESS"
            else:
                job.status = "FAILED_WITH_ERROR"
                job.error_code = str(answer.get("code") or "000603")
                job.error_message = str(answer.get("message") or "")

    async def query_request(request: Request) -> Any:
        body = await body_of(request)
        token = fs_server.to_token(request)
        sql = str(body.get("sqlText", ""))
        found = _SET_TIMEOUT.match(sql)
        if found:
            if token in fs_server.sessions:
                timeouts[token] = int(found.group(1)) if found.group(1) else SNOWFLAKE_DEFAULT_STATEMENT_TIMEOUT
            return await original_query(replayed(request, {**body, "sqlText": DONE}))
        detached = _SET_ABORT_DETACHED.match(sql)
        if detached:  # FALSE is how asynchronous statements run here; TRUE is not emulated
            if detached.group(1).upper() == "TRUE":
                return failure(2, "ABORT_DETACHED_QUERY = TRUE is not emulated")
            return await original_query(replayed(request, {**body, "sqlText": DONE}))
        seconds = timeouts.get(token, SNOWFLAKE_DEFAULT_STATEMENT_TIMEOUT)
        if body.get("asyncExec") and not body.get("describeOnly") and token in fs_server.sessions:
            qid = str(uuid.uuid4())
            job = _Job()
            with guard:
                jobs[qid] = job
                while len(jobs) > _RESULTS_KEPT:
                    jobs.popitem(last=False)
            threading.Thread(
                target=run_job, args=(qid, job, request, body, token, seconds), name=f"async-{qid}", daemon=True
            ).start()
            return JSONResponse(
                {
                    "code": ASYNC_IN_PROGRESS_CODE,
                    "data": {"queryId": qid, "getResultUrl": f"/queries/{qid}/result"},
                    "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring "
                    "and management.",
                    "success": True,
                }
            )
        conn = fs_server.sessions.get(token)
        if conn is None:
            return await original_query(replayed(request, body))
        state: dict[str, Any] = {"why": None, "request_id": request.query_params.get("requestId")}
        ended = threading.Event()

        def cancel(why: str) -> None:
            if state["why"] is None:
                state["why"] = why
                ended.set()
                conn._duck_conn.interrupt()  # noqa: SLF001 - the session's DuckDB connection

        state["cancel"] = cancel
        timer = threading.Timer(seconds, cancel, ("timeout",))
        running[token] = state
        timer.start()
        try:
            wait = delay_of(conn.schema, body)
            if wait:
                await asyncio.to_thread(ended.wait, wait)
            response = await original_query(replayed(request, body)) if state["why"] is None else None
        finally:
            timer.cancel()
            running.pop(token, None)
        if state["why"] == "timeout":
            return failure(STATEMENT_TIMEOUT_CODE, timed_out(seconds))
        if state["why"] == "canceled":
            return failure(CANCELED_CODE, "SQL execution canceled")
        assert response is not None
        return response

    def delay_of(schema: str | None, body: dict[str, Any]) -> float:
        if delays is None:
            return 0.0
        bindings = body.get("bindings") or {}
        values = [bindings[k].get("value") for k in sorted(bindings, key=lambda k: int(k) if k.isdigit() else 0)]
        return delays.seconds(schema, f"{body.get('sqlText', '')} -- {json.dumps(values)}")

    async def abort_request(request: Request) -> Any:
        """The connector's cancel of its statement in progress (at its ``timeout`` or ``network_timeout``)."""
        token = fs_server.to_token(request)
        state = running.get(token)
        if state is not None:
            state["cancel"]("canceled")
        return JSONResponse({"success": True})

    def monitoring_query(request: Request) -> Any:
        qid = request.path_params["sfqid"]
        with guard:
            job = jobs.get(qid)
            if job is not None:
                entry: dict[str, Any] = {"id": qid, "status": job.status}
                if job.error_code is not None:
                    entry.update(errorCode=job.error_code, errorMessage=job.error_message)
                return JSONResponse({"data": {"queries": [entry]}, "success": True})
        return original_monitoring(request)

    mine = {
        "/session/v1/login-request": login_request,
        "/queries/v1/query-request": query_request,
        "/queries/v1/abort-request": abort_request,
        "/monitoring/queries/{sfqid}": monitoring_query,
    }
    routes = [
        Route(r.path, mine[r.path], methods=list(r.methods or [])) if r.path in mine else r for r in fs_server.routes
    ]
    return Starlette(routes=routes)


_RESULTS_KEPT = 2000


class RecentResults(OrderedDict[str, tuple[Any, ...]]):
    """A result cache that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: tuple[Any, ...]) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Snowflake emulator (fakesnow) for the local stack")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--db-path", required=True, help="directory where databases persist")
    args = parser.parse_args(argv)

    import fakesnow.server as fs_server
    import uvicorn
    from fakesnow.instance import FakeSnow

    _patch_null_timestamps()
    _patch_csv_types()
    _patch_hex_to_number()
    _patch_insert_overwrite_locks()
    _patch_number_38()
    _patch_exact_sums()
    _patch_variables_in_literals()
    _patch_query_tag()
    _patch_describe_last_sql()
    _patch_already_exists()
    _patch_files_on_internal_stages()
    os.makedirs(args.db_path, exist_ok=True)
    fs_server.shared_fs = FakeSnow(db_path=args.db_path)
    # the emulator keeps every statement's result (for RESULT_SCAN and async status) for as long as
    # it runs, which grows without bound over a test session; Snowflake keeps them 24 hours. Keep
    # the most recent ones: nothing here reads an older result.
    fs_server.shared_fs.results_cache = RecentResults(_RESULTS_KEPT)
    delays = StatementDelays(os.path.join(args.db_path, "statement_delays.json"))
    server = uvicorn.Server(
        uvicorn.Config(_timed_app(fs_server, delays), host=args.host, port=args.port, log_level="warning")
    )
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
