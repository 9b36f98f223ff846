"""Pure builders of the Snowflake statements, from a table plan. No connection here.

Identifiers are quoted by ``snowflake_ident``; values are bound (``%s``), never pasted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aurora_replication import typemap
from aurora_replication.identifiers import bounded_name
from aurora_replication.identifiers import snowflake_ident as q
from aurora_replication.keyset import range_predicate
from aurora_replication.models import Column, TablePlan

# the project's names (``target.names``), used here and by the rest of the Snowflake folder
from aurora_replication.target.names import ATTEMPT_COLUMN as ATTEMPT_COLUMN
from aurora_replication.target.names import CHUNK_COLUMN as CHUNK_COLUMN
from aurora_replication.target.names import load_table_name as load_table_name
from aurora_replication.target.snowflake.types import column_type
from aurora_replication.target.warehouse import Attempts

HASH_COLUMN = "_ASR_HASH"
TERM_COLUMN = "_ASR_TERM"
DELETED_COLUMN = "_ASR_DELETED_AT"
TOKEN_COLUMN = "_ASR_TOKEN"
# key kinds that MySQL and Snowflake order alike, so a key range selects the same rows in both
# (text keys do not: MySQL's default collations ignore case, Snowflake compares bytes)
ORDER_SAFE_KINDS = frozenset({typemap.INTEGER, typemap.DECIMAL, typemap.DATE, typemap.DATETIME, typemap.YEAR})


# NULL is an empty unquoted field (EMPTY_FIELD_AS_NULL); every text, JSON and hex value is quoted,
# so "" is the empty string; NULL_IF = () reads no text as NULL (``pipeline.staging``, docs/types.md).
# Dates and timestamps are read in the formats the staging writes (``typemap.STAGED_*``), never AUTO,
# which reads them with the account's or user's DATE/TIME/TIMESTAMP_INPUT_FORMAT
# The staged file's compression is named, never AUTO: gzip (``.csv.gz``: lines MySQL formatted, values
# pymysql decoded, cdc batches) or zstd (``.csv.zst``: rows encoded on the worker); Snowflake's CSV
# file format reads both ("COMPRESSION = AUTO | GZIP | BZ2 | BROTLI | ZSTD | ...", CREATE FILE FORMAT)
def csv_file_format(compression: str = "GZIP") -> str:
    if compression not in COMPRESSIONS.values():
        raise ValueError(f"staged files are compressed with {sorted(COMPRESSIONS.values())}, not {compression!r}")
    return (
        "FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = ',' FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
        f"ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () EMPTY_FIELD_AS_NULL = TRUE COMPRESSION = {compression} "
        f"DATE_FORMAT = '{typemap.STAGED_DATE_FORMAT}' TIME_FORMAT = '{typemap.STAGED_TIME_FORMAT}' "
        f"TIMESTAMP_FORMAT = '{typemap.STAGED_TIMESTAMP_FORMAT}')"
    )


# a staged file's name ends with the compression it was written with
COMPRESSIONS = {".csv.gz": "GZIP", ".csv.zst": "ZSTD"}
CSV_FILE_FORMAT = csv_file_format("GZIP")


def compression_of(files: Sequence[str]) -> str:
    """The one compression of a COPY's files, from their names (``COMPRESSIONS``)."""
    found = {next((c for suffix, c in COMPRESSIONS.items() if f.endswith(suffix)), f) for f in files}
    if len(found) != 1 or not found <= set(COMPRESSIONS.values()):
        raise ValueError(f"files {list(files)!r}: a COPY loads files of one compression, named {list(COMPRESSIONS)}")
    return found.pop()


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def staging_type(c: Column) -> str:
    """Staging tables hold JSON as text; PARSE_JSON turns it into VARIANT on the way to the target."""
    return typemap.VARCHAR_MAX if c.kind == typemap.JSON else column_type(c)


def create_schema(schema: str) -> str:
    """The schema of one source database (``database_mapping: schema``), in the session's database."""
    return f"CREATE SCHEMA IF NOT EXISTS {q(schema)}"


def use_schema(schema: str) -> str:
    """Make ``schema`` of the session's database the session's current one (``Services.locate``)."""
    return f"USE SCHEMA {q(schema)}"


def schema_names() -> str:
    """The schemas of the session's database (those made beforehand need no CREATE SCHEMA privilege)."""
    return "SELECT schema_name FROM information_schema.schemata"


def create_stage(stage: str) -> str:
    return f"CREATE STAGE IF NOT EXISTS {q(stage.upper())}"


def attempts_table_name(plan: TablePlan, run_id: str) -> str:
    """The run's table of validated attempts: which (chunk, attempt) pairs a finaliser checked."""
    return bounded_name(f"_ASR_OK_{run_id}_{plan.target_table}")


def create_attempts_table(name: str) -> str:
    return (
        f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(name)} "
        f"({q(TOKEN_COLUMN)} VARCHAR, {q(CHUNK_COLUMN)} NUMBER(10,0), {q(ATTEMPT_COLUMN)} VARCHAR)"
    )


def insert_attempts(name: str, nrows: int) -> str:
    """Rows of (token, chunk, attempt), bound: one finaliser's view of the ledger, written once and
    only read afterwards (INSERT only, so concurrent finalisers never lock each other out)."""
    rows = ", ".join(["(%s, %s, %s)"] * nrows)
    return (
        f"INSERT INTO {q(name)} ({q(TOKEN_COLUMN)}, {q(CHUNK_COLUMN)}, {q(ATTEMPT_COLUMN)}) "
        f"SELECT column1, column2, column3 FROM VALUES {rows}"
    )


# at most this many validated (chunk, attempt) pairs are bound into each statement that reads them,
# instead of written to the run's attempts table first (two statements, and a DROP, fewer per table)
INLINE_ATTEMPTS = 100


def attempts_in_table(name: str, token: str) -> Attempts:
    """The pairs a finaliser wrote to the attempts table ``name`` under ``token``."""
    return Attempts(q(name), (token,), name)


def attempts_inline(token: str, pairs: Sequence[tuple[int, str]]) -> Attempts:
    """At most INLINE_ATTEMPTS pairs, bound as a VALUES list (Snowflake: "VALUES" in a FROM clause)."""
    if not pairs or len(pairs) > INLINE_ATTEMPTS:
        raise ValueError(f"{len(pairs)} pairs: bind 1 to {INLINE_ATTEMPTS} inline, or write them to the attempts table")
    rows = ", ".join(["(%s, %s, %s)"] * len(pairs))
    source = (
        f"(SELECT column1 AS {q(TOKEN_COLUMN)}, column2 AS {q(CHUNK_COLUMN)}, column3 AS {q(ATTEMPT_COLUMN)} "
        f"FROM VALUES {rows})"
    )
    return Attempts(source, (*(v for chunk, attempt in pairs for v in (token, chunk, attempt)), token))


def validated(load_table: str, attempts: Attempts) -> str:
    """The load table's rows of exactly the (chunk, attempt) pairs one finaliser validated (bind
    ``attempts.params``). Whatever else the load table holds (earlier attempts, a late duplicate's
    rows) is invisible to validation, publish, merge and reconcile alike."""
    rows = q(load_table)
    return (
        f"EXISTS (SELECT 1 FROM {attempts.source} a WHERE a.{q(TOKEN_COLUMN)} = %s "
        f"AND a.{q(CHUNK_COLUMN)} = {rows}.{q(CHUNK_COLUMN)} AND a.{q(ATTEMPT_COLUMN)} = {rows}.{q(ATTEMPT_COLUMN)})"
    )


def _load_table_columns(plan: TablePlan) -> list[tuple[str, str]]:
    """A load table's columns and their types: the plan's (JSON as text), then the chunk and attempt."""
    return [(c.target, staging_type(c)) for c in plan.columns] + [
        (CHUNK_COLUMN, "NUMBER(10,0)"),
        (ATTEMPT_COLUMN, "VARCHAR"),
    ]


def create_load_table(plan: TablePlan, name: str) -> str:
    cols = ", ".join(f"{q(column)} {type_}" for column, type_ in _load_table_columns(plan))
    return f"CREATE TRANSIENT TABLE IF NOT EXISTS {q(name)} ({cols})"


def create_load_table_of_values(plan: TablePlan, name: str, nrows: int) -> str:
    """The load table created with a small chunk's rows in it (``CREATE TABLE ... AS SELECT`` of bound
    values): one statement where ``create_load_table`` and ``insert_values`` are two. Each value is
    cast to its column's type, the conversion an ``INSERT`` into the table makes, so the table has
    exactly ``create_load_table``'s columns. No ``IF NOT EXISTS``: that would leave an existing table
    without the rows, so an existing table fails the statement (Snowflake's 002002, "already exists")
    and the caller inserts the rows instead."""
    typed = [
        f"CAST({value} AS {type_}) AS {q(column)}"
        for value, (column, type_) in zip(_bound_values(plan), _load_table_columns(plan), strict=True)
    ]
    return f"CREATE TRANSIENT TABLE {q(name)} AS SELECT {', '.join(typed)} FROM VALUES " + _value_rows(plan, nrows)


def create_target_table(plan: TablePlan) -> str:
    cols = ", ".join(f"{q(c.target)} {column_type(c)}" for c in plan.columns)
    return f"CREATE TABLE IF NOT EXISTS {q(plan.target_table)} ({cols})"


def stage_location(stage: str, path: str, file: str = "") -> str:
    """``@STAGE/path/``: the stage name is validated as a plain identifier (``STAGE_NAME``) and the path
    is built from safe characters only (``source.stage_path_component``, run ids, chunk ids)."""
    if (
        not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", stage)
        or not re.fullmatch(r"[A-Za-z0-9_/-]+", path)
        or not re.fullmatch(r"[A-Za-z0-9_.-]*", file)
    ):
        raise ValueError(f"unsafe stage location {stage!r}/{path!r}/{file!r}")
    return f"@{stage.upper()}/{path}/{file}"


def put_file(local_path: str, stage: str, path: str) -> str:
    return f"PUT {_lit('file://' + local_path)} {stage_location(stage, path)} AUTO_COMPRESS = FALSE OVERWRITE = TRUE"


def _load_columns(plan: TablePlan) -> str:
    return ", ".join([q(c.target) for c in plan.columns] + [q(CHUNK_COLUMN), q(ATTEMPT_COLUMN)])


# Every attempt at a chunk tags its rows with its attempt id. The pipeline reads a load table
# through ``validated`` (the pairs its ledger names); this clause (the latest attempt of each chunk)
# remains for reading a load table by hand, without the ledger.
ONE_ATTEMPT_PER_CHUNK = f"QUALIFY {q(ATTEMPT_COLUMN)} = MAX({q(ATTEMPT_COLUMN)}) OVER (PARTITION BY {q(CHUNK_COLUMN)})"


# Snowflake's COPY takes at most 1,000 names in FILES (docs.snowflake.com, COPY INTO <table>, FILES)
MAX_COPY_FILES = 1000


def copy_into(plan: TablePlan, table: str, stage: str, path: str, files: Sequence[str]) -> str:
    """COPY one attempt's files of a chunk (one file, or one per part of a chunk read in parts), alone:
    no DELETE beside it, so the chunks of a table load concurrently (COPY and INSERT write new
    partitions and do not wait for each other; DELETE, UPDATE and MERGE lock the table). Each attempt
    has its own file names, so the load history never skips a new attempt and never loads one file
    twice; PURGE removes the loaded files. Several files are named in ``FILES``, which Snowflake loads
    in parallel in one statement."""
    if not files or len(files) > MAX_COPY_FILES:
        raise ValueError(f"a COPY names 1 to {MAX_COPY_FILES} files, not {len(files)}")
    if len(files) == 1:
        source = stage_location(stage, path, files[0])
    else:
        for f in files:
            stage_location(stage, path, f)  # each name validated as a safe file name
        source = f"{stage_location(stage, path)} FILES = ({', '.join(_lit(f) for f in files)})"
    return (
        f"COPY INTO {q(table)} ({_load_columns(plan)}) FROM {source} {csv_file_format(compression_of(files))} "
        "PURGE = TRUE"
    )


def _bound_values(plan: TablePlan) -> list[str]:
    """The columns of a ``VALUES`` list of bound rows as a load table's values (``_load_columns``'
    order: the plan's, the chunk, the attempt); binary values travel as hex."""
    exprs = [
        f"TO_BINARY(column{i}, 'HEX')" if c.kind in (typemap.BINARY, typemap.SPATIAL) else f"column{i}"
        for i, c in enumerate(plan.columns, start=1)
    ]
    n = len(plan.columns)
    return [*exprs, f"column{n + 1}", f"column{n + 2}"]


def _value_rows(plan: TablePlan, nrows: int) -> str:
    row = "(" + ", ".join(["%s"] * (len(plan.columns) + 2)) + ")"
    return ", ".join([row] * nrows)


def insert_values(plan: TablePlan, table: str, nrows: int) -> str:
    """One multi-row INSERT of bound values (the small-chunk path)."""
    return (
        f"INSERT INTO {q(table)} ({_load_columns(plan)}) SELECT {', '.join(_bound_values(plan))} FROM VALUES "
        + _value_rows(plan, nrows)
    )


def _typed(c: Column, alias: str = "") -> str:
    ref = f"{alias}{q(c.target)}"
    if c.kind == typemap.JSON:
        # 'd': a duplicate key keeps its last value, as MySQL 8's JSON type does; by default
        # PARSE_JSON rejects the document (MariaDB stores JSON text with duplicates as written)
        return f"PARSE_JSON({ref}, 'd')"
    return ref


def _published_columns(plan: TablePlan) -> str:
    return ", ".join(f"CAST({_typed(c)} AS {column_type(c)}) AS {q(c.target)}" for c in plan.columns)


# the text of the error a guarded statement raises (``guard_rows``): what ``Target`` recognises it by
GUARD_TEXT = "the load table no longer holds the validated rows"
COUNT_COLUMN = "_ASR_N"


def guard_rows(plan: TablePlan, load_table: str, attempts: Attempts) -> str:
    """A relation with no row while the load table holds exactly the validated attempts' rows, whose
    evaluation fails otherwise (params: the attempts', then their number of rows): the one row of the
    count is always read and its condition always evaluated (its value depends on the data), and the
    text that is not a number makes the statement fail and roll back (Snowflake: "Numeric value '...' is
    not recognized"). Its columns are NULLs of the target's types, for a UNION ALL with the rows."""
    nulls = ", ".join(f"CAST(NULL AS {column_type(c)}) AS {q(c.target)}" for c in plan.columns)
    n = q(COUNT_COLUMN)
    return (
        f"SELECT {nulls} FROM (SELECT COUNT(*) AS {n} FROM {q(load_table)} WHERE {validated(load_table, attempts)}) "
        f"WHERE CAST(IFF({n} = %s, '0', '{GUARD_TEXT}: ' || TO_VARCHAR({n}) || ' rows') AS NUMBER(1,0)) = 1"
    )


def overwrite(plan: TablePlan, load_table: str, attempts: Attempts) -> str:
    """Replace the target's rows with the validated attempts of the load table, in one statement that is
    its own transaction (params: the attempts' twice, then their number of rows): a load table that no
    longer holds exactly those rows (another finaliser published and dropped it, and a straggling chunk
    made it again) fails the statement (``guard_rows``), which leaves the old rows, instead of publishing
    fewer. The table object stays: its grants, comment, clustering key, tags, policies, streams and time
    travel (Snowflake: "OVERWRITE ... does not affect the access control privileges on the table").
    Columns the plan does not name (dropped in MySQL, or a hidden ``_ASR_`` column) are NULL in every row.
    One statement, not a transaction of several, so that it can run asynchronously: a transaction does
    not outlive its session, which a Lambda invocation does not keep."""
    cols = ", ".join(q(c.target) for c in plan.columns)
    return (
        f"INSERT OVERWRITE INTO {q(plan.target_table)} ({cols}) SELECT {_published_columns(plan)} "
        f"FROM {q(load_table)} WHERE {validated(load_table, attempts)} "
        f"UNION ALL {guard_rows(plan, load_table, attempts)}"
    )


def attempt_checksum_query(table: str, checksum_columns: list[Column], without_json: list[Column] | None) -> str:
    """Count and checksum of one attempt's rows of one chunk in a load table (params: the chunk, then the
    attempt), folded inside Snowflake: what the worker records in the chunk's ledger entry right after
    the attempt loaded, and what validation compares with the chunk's snapshot. With ``without_json`` a
    second checksum leaves the JSON columns out (what a target's VARIANT rows are compared with)."""
    terms = [f"{_row_term(checksum_columns)} AS {q(TERM_COLUMN)}"]
    sums = [f"SUM({q(TERM_COLUMN)})"]
    if without_json is not None:
        terms.append(f"{_row_term(without_json)} AS {q(TERM_COLUMN + '2')}")
        sums.append(f"SUM({q(TERM_COLUMN + '2')})")
    where = f"{q(CHUNK_COLUMN)} = %s AND {q(ATTEMPT_COLUMN)} = %s"
    return f"SELECT COUNT(*), {', '.join(sums)} FROM (SELECT {', '.join(terms)} FROM {q(table)} WHERE {where})"


def row_count(table: str) -> str:
    """How many rows ``table`` holds (inside a transaction: with its own uncommitted changes)."""
    return f"SELECT COUNT(*) FROM {q(table)}"


def published_copy_name(load_table: str, suffix: str) -> str:
    """A finaliser round's copy of the rows it publishes by recreating the target (``published_copy``)."""
    return f"{load_table}_NEW_{suffix}"


def published_copy(plan: TablePlan, name: str, load_table: str, attempts: Attempts) -> str:
    """The validated attempts of the load table, with the target's column types, in a table of their
    own (params: the attempts'): counted before ``publish`` recreates the target from it."""
    return (
        f"CREATE TRANSIENT TABLE {q(name)} AS SELECT {_published_columns(plan)} "
        f"FROM {q(load_table)} WHERE {validated(load_table, attempts)}"
    )


def publish(plan: TablePlan, copy: str) -> str:
    """Recreate the target from a counted ``published_copy``, keeping only its grants: for a column
    type Snowflake cannot change in place; otherwise ``overwrite``, which keeps the table object."""
    cols = ", ".join(q(c.target) for c in plan.columns)
    return f"CREATE OR REPLACE TABLE {q(plan.target_table)} COPY GRANTS AS SELECT {cols} FROM {q(copy)}"


def validated_count(load_table: str, attempts: Attempts) -> str:
    """How many rows of the validated attempts the load table holds (bind ``attempts.params``)."""
    return f"SELECT COUNT(*) FROM {q(load_table)} WHERE {validated(load_table, attempts)}"


def validated_count_is(load_table: str, attempts: Attempts) -> str:
    """A condition that holds only while the load table still holds the validated attempts' rows (bind
    ``attempts.params``, then the number of rows they carry). A statement that deletes by what the
    load table lacks takes it, so a load table dropped and created again, empty, by a straggling chunk
    after another finaliser published deletes nothing: one statement reads one version of each table."""
    return f"({validated_count(load_table, attempts)}) = %s"


def merge_validated(plan: TablePlan, load_table: str, attempts: Attempts) -> str:
    """MERGE the validated attempts of every chunk into the target on the key, in one statement
    (param: the finaliser's token): applying it twice gives the same result."""
    cols = ", ".join(f"{_typed(c)} AS {q(c.target)}" for c in plan.columns)
    keys = {plan.column(k).target for k in plan.key}
    on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in sorted(keys))
    non_key = [c for c in plan.columns if c.target not in keys]
    sql = (
        f"MERGE INTO {q(plan.target_table)} t USING (SELECT {cols} FROM {q(load_table)} "
        f"WHERE {validated(load_table, attempts)}) s ON {on}"
    )
    if non_key:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{q(c.target)} = s.{q(c.target)}" for c in non_key)
    all_cols = [q(c.target) for c in plan.columns]
    sql += f" WHEN NOT MATCHED THEN INSERT ({', '.join(all_cols)}) VALUES ({', '.join('s.' + c for c in all_cols)})"
    return sql


def drop_table(name: str) -> str:
    return f"DROP TABLE IF EXISTS {q(name)}"


def table_exists() -> str:
    return "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s"


def existing_tables(count: int) -> str:
    """Which of ``count`` named tables exist in the session's schema (bind the names): one query for a
    group of tables, not one per table."""
    if count < 1:
        raise ValueError("existing_tables: name at least one table")
    names = ", ".join(["%s"] * count)
    return (
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = CURRENT_SCHEMA() AND table_name IN ({names})"
    )


def row_counts(tables: Sequence[str]) -> str:
    """Each table's row count, as ``(position in tables, count)`` rows, in one statement: Snowflake
    answers ``COUNT(*)`` of a whole table from its metadata (no scan, docs/architecture.md)."""
    if not tables:
        raise ValueError("row_counts: name at least one table")
    return " UNION ALL ".join(f"SELECT {i} AS n, COUNT(*) FROM {q(t)}" for i, t in enumerate(tables))


def audit_differences(
    plan: TablePlan,
    load_table: str,
    attempts: Attempts,
    checksum_columns: list[Column],
    bounded: bool = True,
    order_safe_range: str = "",
) -> str:
    """How many of the audited rows the target does not hold as they are (params: the attempts', then
    the first audited chunk id, then, when ``bounded``, the watermark bound as text, then the range's
    own). The audited rows are the validated
    attempts of the chunks from the first audited one on (whole key ranges read in their own snapshots,
    ``pipeline/audit.py``), less those whose watermark is above the bound (a window's rows: changed
    since the last run, so not yet in the target by design). Each is looked up in the target by its
    key and compared by its checksum term (``checksum_columns``: JSON is left out, as the target holds
    it as VARIANT). ``order_safe_range`` (a ``target_range`` predicate, for keys that order alike in
    both engines) lets Snowflake prune the target's micro-partitions to the audited key range."""
    keys = sorted({plan.column(k).target for k in plan.key})
    wm = plan.column(plan.watermark) if plan.watermark else None
    audited = f"{validated(load_table, attempts)} AND {q(CHUNK_COLUMN)} >= %s"
    if wm is not None and bounded:
        audited += f" AND ({q(wm.target)} IS NULL OR {q(wm.target)} <= CAST(%s AS {column_type(wm)}))"
    loaded = hashed_rows(load_table, checksum_columns, load_table=False, where=audited, extra_columns=tuple(keys))
    target = hashed_rows(
        plan.target_table, checksum_columns, load_table=False, where=order_safe_range, extra_columns=tuple(keys)
    )
    match = " AND ".join(f"t.{q(k)} = l.{q(k)}" for k in keys)
    return (
        f"SELECT COUNT(*) FROM ({loaded}) l WHERE NOT EXISTS "
        f"(SELECT 1 FROM ({target}) t WHERE {match} AND t.{q(TERM_COLUMN)} = l.{q(TERM_COLUMN)})"
    )


_NUMBER_TYPE = re.compile(r"NUMBER\((\d+),(\d+)\)")
TWO_52 = 4503599627370496
TWO_53 = 9007199254740992


def _float_canonical(x: str) -> str:
    """``source.sql._float_canonical`` in Snowflake: ``[-]m'p'e`` with ``|x| = m * 2^(e-52)``."""
    e0 = f"LEAST(GREATEST(FLOOR(LOG(2, ABS({x}))), -1074), 1023)"
    m0 = f"(ABS({x}) / POWER(2, {e0}) * {TWO_52})"
    m = f"CASE WHEN {m0} >= {TWO_53} THEN {m0} / 2 WHEN {m0} < {TWO_52} THEN {m0} * 2 ELSE {m0} END"
    e = f"{e0} + CASE WHEN {m0} >= {TWO_53} THEN 1 WHEN {m0} < {TWO_52} THEN -1 ELSE 0 END"
    return (
        f"CASE WHEN {x} = 0 THEN '0' ELSE IFF({x} < 0, '-', '') || CAST(CAST({m} AS NUMBER(16,0)) AS VARCHAR) "
        f"|| 'p' || CAST(CAST({e} AS NUMBER(5,0)) AS VARCHAR) END"
    )


def canonical(c: Column, alias: str = "") -> str:
    """The column's canonical text, byte for byte ``source.sql.canonical_expr``'s (docs/types.md). A
    JSON column's is its text, as a load table holds it (``checksums.checksum_columns``)."""
    ref = f"{alias}{q(c.target)}"
    if c.kind == typemap.DATE:
        return f"TO_CHAR({ref}, 'YYYY-MM-DD')"
    if c.kind == typemap.DATETIME:
        return f"CAST(DATE_PART(EPOCH_MICROSECOND, {ref}) AS VARCHAR)"
    if c.kind in (typemap.TEXT, typemap.JSON) or c.source_expr:
        return f"LENGTH({ref}) || ':' || {ref}"
    if c.kind == typemap.TIME:
        return ref
    if c.kind in (typemap.BINARY, typemap.SPATIAL):
        return f"HEX_ENCODE({ref})"
    if c.kind == typemap.FLOAT:
        return _float_canonical(ref)
    text = f"CAST({ref} AS VARCHAR)"
    m = _NUMBER_TYPE.fullmatch(column_type(c))
    if c.kind == typemap.DECIMAL and m and m.group(1) == m.group(2):
        # NUMBER(p,p) has no integer digits: MySQL prints 0.5 as '0.5', and the leading zero is
        # put back wherever an engine leaves it out ('.5'), so only digits are compared
        return (
            f"CASE WHEN LEFT({text}, 1) = '.' THEN '0' || {text} "
            f"WHEN LEFT({text}, 2) = '-.' THEN '-0' || SUBSTR({text}, 2) ELSE {text} END"
        )
    return text


def _md5_of(parts: list[str], function: str = "MD5") -> str:
    return f"{function}(CONCAT_WS(CHR(31), {', '.join(parts) or chr(39) * 2}))"


def _row_parts(checksum_columns: list[Column]) -> list[str]:
    return [f"COALESCE({canonical(c)}, CHR(30))" for c in checksum_columns]


def _row_md5(checksum_columns: list[Column]) -> str:
    return _md5_of(_row_parts(checksum_columns))


def _row_term(checksum_columns: list[Column]) -> str:
    """One row's term of the checksum: the first 64 bits of its MD5 as a number, what MySQL's
    ``CAST(CONV(SUBSTRING(MD5(...), 1, 16), 16, 10) AS UNSIGNED)`` gives. ``MD5_NUMBER_UPPER64`` reads
    the digest as a big-endian 128-bit number and returns its upper 64 bits unsigned (Snowflake's SQL
    reference, "MD5_NUMBER_UPPER64"): one function a row instead of the hex digest, two substrings and
    two conversions."""
    return _md5_of(_row_parts(checksum_columns), "MD5_NUMBER_UPPER64")


def key_md5(plan: TablePlan) -> str:
    """``source.sql.key_md5`` in Snowflake."""
    return _md5_of([canonical(plan.column(k)) for k in plan.key])


def checksum_query(
    plan: TablePlan, table: str, checksum_columns: list[Column], load_table: bool = False, where: str = ""
) -> str:
    """Each row's checksum term (as ``_ASR_TERM``, ``_row_term``) of the same canonical text
    ``source.checksum_query`` builds in MySQL; a load table gives one attempt per chunk."""
    return hashed_rows(table, checksum_columns, load_table, where)


def hashed_rows(
    table: str,
    checksum_columns: list[Column],
    load_table: bool = False,
    where: str = "",
    extra_columns: tuple[str, ...] = (),
) -> str:
    """Each row's checksum term (``_ASR_TERM``) with ``extra_columns`` beside it; ``load_table``: the
    latest attempt of each chunk only."""
    select = ", ".join([*(q(c) for c in extra_columns), f"{_row_term(checksum_columns)} AS {q(TERM_COLUMN)}"])
    sql = f"SELECT {select} FROM {q(table)}"
    if where:
        sql += f" WHERE {where}"
    return f"{sql} {ONE_ATTEMPT_PER_CHUNK}" if load_table else sql


# the rows' terms summed: at most 2^64 each, so the sum of a table fits NUMBER(38,0) exactly
_FOLD = f"COUNT(*), SUM({q(TERM_COLUMN)})"


def checksum_aggregate_query(
    plan: TablePlan, table: str, checksum_columns: list[Column], load_table: bool = False, where: str = ""
) -> str:
    """Count and checksum folded inside Snowflake (one row), as ``source.checksum_aggregate_query``
    folds them inside MySQL."""
    return f"SELECT {_FOLD} FROM ({checksum_query(plan, table, checksum_columns, load_table, where)})"


def checksum_by_chunk_query(table: str, checksum_columns: list[Column], where: str = "") -> str:
    """Count and checksum of each chunk's rows in a load table, folded inside Snowflake: one row per
    chunk. ``where`` (``validated``) picks the rows; without it, the latest attempt of each chunk."""
    inner = hashed_rows(table, checksum_columns, load_table=not where, where=where, extra_columns=(CHUNK_COLUMN,))
    return f"SELECT {q(CHUNK_COLUMN)}, {_FOLD} FROM ({inner}) GROUP BY {q(CHUNK_COLUMN)}"


def order_safe(plan: TablePlan) -> bool:
    """Whether a key range means the same rows in Snowflake as in MySQL."""
    return bool(plan.key) and all(plan.column(k).kind in ORDER_SAFE_KINDS for k in plan.key)


def target_range(
    plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None, alias: str = ""
) -> tuple[str, list[object]]:
    """``lower < key <= upper`` on the target's key columns (only for ``order_safe`` plans)."""
    if not order_safe(plan) and (lower is not None or upper is not None):
        raise ValueError(f"table {plan.table!r}: its key does not order alike in both engines")
    keys = [plan.column(k).target for k in plan.key]
    return range_predicate(keys, lower, upper, lambda k: alias + q(k))


def in_keys(plan: TablePlan, source: str, source_filter: str = "") -> str:
    """``EXISTS`` a row with the same key in ``source`` (for the target aliased ``t``)."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in keys)
    inner = f"SELECT {', '.join(q(k) for k in keys)} FROM {q(source)}"
    inner += f" WHERE {source_filter}" if source_filter else f" {ONE_ATTEMPT_PER_CHUNK}"
    return f"EXISTS (SELECT 1 FROM ({inner}) s WHERE {match})"


def not_in_keys(plan: TablePlan, source: str, source_filter: str = "") -> str:
    return "NOT " + in_keys(plan, source, source_filter)


def merged_rows(plan: TablePlan, load_table: str, attempts: Attempts) -> str:
    """The target's rows whose key is among the validated rows of the load table (params: the
    token), for checking a MERGE: a filter on the target table, referenced by its own name."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"s.{q(k)} = {q(plan.target_table)}.{q(k)}" for k in keys)
    inner = f"SELECT {', '.join(q(k) for k in keys)} FROM {q(load_table)} WHERE {validated(load_table, attempts)}"
    return f"EXISTS (SELECT 1 FROM ({inner}) s WHERE {match})"


def _own(own: str) -> str:
    """``own``: a condition on the target aliased ``t`` that keeps a statement to some of its rows (a merged
    table's database, ``merged_sql.database_filter``), put first; empty: every row."""
    return f"{own} AND " if own else ""


def reconcile_delete(plan: TablePlan, keys_table: str, attempts: Attempts, own: str = "") -> str:
    """Delete the target's rows whose key is not among the validated keys read from MySQL (params:
    the attempts' twice, then the number of validated keys). The keys table holds every source key
    of the chunks' snapshots."""
    gone = not_in_keys(plan, keys_table, validated(keys_table, attempts))
    return (
        f"DELETE FROM {q(plan.target_table)} t WHERE {_own(own)}{gone} AND {validated_count_is(keys_table, attempts)}"
    )


def add_deleted_column(plan: TablePlan) -> str:
    return f"ALTER TABLE {q(plan.target_table)} ADD COLUMN IF NOT EXISTS {q(DELETED_COLUMN)} TIMESTAMP_NTZ"


def reconcile_mark(plan: TablePlan, keys_table: str, attempts: Attempts, own: str = "") -> str:
    """Mark (instead of delete) the target's rows whose key MySQL no longer has (params: as
    ``reconcile_delete``)."""
    gone = not_in_keys(plan, keys_table, validated(keys_table, attempts))
    return (
        f"UPDATE {q(plan.target_table)} t SET {q(DELETED_COLUMN)} = SYSDATE() "
        f"WHERE {_own(own)}t.{q(DELETED_COLUMN)} IS NULL AND {gone} AND {validated_count_is(keys_table, attempts)}"
    )


def reconcile_unmark(plan: TablePlan, keys_table: str, attempts: Attempts, own: str = "") -> str:
    """Clear the mark of rows that exist in MySQL again (params: the token)."""
    back = in_keys(plan, keys_table, validated(keys_table, attempts))
    return (
        f"UPDATE {q(plan.target_table)} t SET {q(DELETED_COLUMN)} = NULL "
        f"WHERE {_own(own)}t.{q(DELETED_COLUMN)} IS NOT NULL AND {back}"
    )


def keys_missing_in_target(plan: TablePlan, keys_table: str, attempts: Attempts, own: str = "") -> str:
    """How many validated source keys the target lacks (params: the token): rows inserted in MySQL
    since the last copy (lag, carried by the next incremental run), or rows lost."""
    keys = sorted({plan.column(k).target for k in plan.key})
    match = " AND ".join(f"t.{q(k)} = {q(keys_table)}.{q(k)}" for k in keys)
    return (
        f"SELECT COUNT(*) FROM {q(keys_table)} WHERE {validated(keys_table, attempts)} "
        f"AND NOT EXISTS (SELECT 1 FROM {q(plan.target_table)} t WHERE {_own(own)}{match})"
    )


def target_columns() -> str:
    """A table's columns as ``(name, data_type, precision, scale)`` in order (bind the table name);
    what ``evolution.diff`` compares the plan with."""
    return (
        "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = CURRENT_SCHEMA() AND table_name = %s ORDER BY ordinal_position"
    )


# ---- naming differences (pipeline.diagnose) ---------------------------------------------------
# Snowflake's halves of ``source.sql``'s bucket, row-hash and canonical-value queries. ``where`` selects
# the rows (a key range, or a load table's chunk); in a load table one attempt per chunk is taken
# first and the bucket filter applies after it, so it cannot change which attempt counts.

BUCKET_COLUMN = "_ASR_BUCKET"
KEY_COLUMN = "_ASR_KEY"


def _selected(table: str, load_table: bool, where: str, columns: list[tuple[str, str]]) -> str:
    select = ", ".join(f"{expr} AS {q(name)}" for name, expr in columns)
    sql = f"SELECT {select} FROM {q(table)}"
    if where:
        sql += f" WHERE {where}"
    return f"{sql} {ONE_ATTEMPT_PER_CHUNK}" if load_table else sql


def _prefix_filter(column: str, depth: int, count: int) -> str:
    return f" WHERE LEFT({q(column)}, {int(depth)}) IN ({', '.join(['%s'] * count)})" if count else ""


def bucket_checksums_query(
    plan: TablePlan,
    table: str,
    checksum_columns: list[Column],
    load_table: bool,
    where: str,
    depth: int,
    parents: int,
) -> str:
    """Count and checksum per key-MD5 bucket of ``depth`` hex digits, under ``parents`` bound prefixes.
    Params: ``where``'s, then the parent prefixes."""
    inner = _selected(
        table,
        load_table,
        where,
        [(BUCKET_COLUMN, f"LEFT({key_md5(plan)}, {int(depth)})"), (TERM_COLUMN, _row_term(checksum_columns))],
    )
    return (
        f"SELECT {q(BUCKET_COLUMN)}, {_FOLD} FROM ({inner}){_prefix_filter(BUCKET_COLUMN, depth - 1, parents)} "
        f"GROUP BY {q(BUCKET_COLUMN)}"
    )


def row_hashes_query(
    plan: TablePlan,
    table: str,
    checksum_columns: list[Column],
    load_table: bool,
    where: str,
    depth: int,
    buckets: int,
) -> str:
    """Key MD5, row MD5 and the key's values of the rows in ``buckets`` bound prefixes of ``depth`` digits."""
    keys = [(f"_ASR_K{i}", q(plan.column(k).target)) for i, k in enumerate(plan.key)]
    inner = _selected(
        table, load_table, where, [(KEY_COLUMN, key_md5(plan)), (HASH_COLUMN, _row_md5(checksum_columns)), *keys]
    )
    cols = ", ".join(q(n) for n in [KEY_COLUMN, HASH_COLUMN, *(k for k, _ in keys)])
    return f"SELECT {cols} FROM ({inner}){_prefix_filter(KEY_COLUMN, depth, buckets)}"


def canonical_values_query(
    plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str, nkeys: int
) -> str:
    """Key MD5 and each column's canonical text, for the rows whose key MD5 is among ``nkeys`` bound ones."""
    values = [(f"_ASR_V{i}", canonical(c)) for i, c in enumerate(columns)]
    inner = _selected(table, load_table, where, [(KEY_COLUMN, key_md5(plan)), *values])
    cols = ", ".join(q(n) for n in [KEY_COLUMN, *(v for v, _ in values)])
    return f"SELECT {cols} FROM ({inner}) WHERE {q(KEY_COLUMN)} IN ({', '.join(['%s'] * nkeys)})"


def json_values_query(plan: TablePlan, table: str, columns: list[Column], load_table: bool, where: str) -> str:
    """Key MD5, the key's values and each JSON column as JSON text (VARIANT through TO_JSON; a load
    table's text as it is), in key-MD5 order, as ``source.sql.json_values_query``."""
    keys = [(f"_ASR_K{i}", q(plan.column(k).target)) for i, k in enumerate(plan.key)]
    values = [(f"_ASR_V{i}", q(c.target) if load_table else f"TO_JSON({q(c.target)})") for i, c in enumerate(columns)]
    inner = _selected(table, load_table, where, [(KEY_COLUMN, key_md5(plan)), *keys, *values])
    cols = ", ".join(q(n) for n in [KEY_COLUMN, *(k for k, _ in keys), *(v for v, _ in values)])
    return f"SELECT {cols} FROM ({inner}) ORDER BY {q(KEY_COLUMN)}"


def chunk_filter() -> str:
    """A load table's rows of one chunk (param: the chunk id)."""
    return f"{q(CHUNK_COLUMN)} = %s"


def attempt_filter() -> str:
    """A load table's rows of one attempt (param: the attempt id)."""
    return f"{q(ATTEMPT_COLUMN)} = %s"
