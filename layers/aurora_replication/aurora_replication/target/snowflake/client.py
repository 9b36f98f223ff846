"""Everything that talks to Snowflake: connections and the load, merge, publish and checksum steps."""

from __future__ import annotations

import glob
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection

from aurora_replication.checksums import checksum_columns, fold_sums
from aurora_replication.cost import meter
from aurora_replication.errors import EndpointError, network_cause
from aurora_replication.identifiers import snowflake_ident
from aurora_replication.models import Column, TablePlan
from aurora_replication.schema_changes import SchemaChange
from aurora_replication.secrets import SnowflakeSettings
from aurora_replication.target.snowflake import cdc_sql, evolution, history_sql, long_statements, merged_sql, sql
from aurora_replication.target.snowflake.diagnosis import Diagnosis
from aurora_replication.target.snowflake.long_statements import LongStatements, Pending
from aurora_replication.target.snowflake.statements import bindable, execute
from aurora_replication.target.warehouse import Attempts, HistoryBroken, StatementLedger

__all__ = ["Target", "bindable", "connect", "execute"]

# the connector logs request URLs and bodies at DEBUG; keep it quiet whatever the root level
logging.getLogger("snowflake.connector").setLevel(logging.WARNING)

AUTH_ERRNOS = {390100, 390144, 394304, 390318}
INSERT_BATCH_ROWS = 500
ATTEMPT_BATCH_ROWS = 1000


def _private_key_der(pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cache_options(work_dir: str | None = None) -> dict[str, Any]:
    """The connector's file caches, said explicitly: in Lambda only /tmp is writable.

    No credential cache (key pair or password logins never need one: it holds SSO and MFA tokens),
    and the CRL cache, when revocation lists are checked, under ``work_dir``. The OCSP caches are
    set by environment variables the connector reads when it is imported (SF_OCSP_RESPONSE_CACHE_DIR
    and SF_TEMPORARY_CREDENTIAL_CACHE_DIR, in the template); where the home directory cannot be
    written the connector keeps its OCSP validation cache in memory. Options the installed connector
    does not know are left out.
    """
    from snowflake.connector.connection import DEFAULT_CONFIGURATION

    base = os.path.join(work_dir or os.environ.get("WORK_DIR") or "/tmp", "snowflake")
    options: dict[str, Any] = {
        "client_store_temporary_credential": False,
        "client_request_mfa_token": False,
        "crl_cache_dir": os.path.join(base, "crls"),
    }
    return {k: v for k, v in options.items() if k in DEFAULT_CONFIGURATION}


# a synchronous statement's limit when the caller names none (SNOWFLAKE_STATEMENT_TIMEOUT_SECONDS' default)
STATEMENT_TIMEOUT_SECONDS = 600


def connect(settings: SnowflakeSettings, statement_timeout: int = STATEMENT_TIMEOUT_SECONDS) -> SnowflakeConnection:
    """A session whose synchronous statements run at most ``statement_timeout`` seconds, on both sides:
    Snowflake cancels a statement that runs longer (STATEMENT_TIMEOUT_IN_SECONDS, error 000630) and the
    connector cancels one it has waited for that long (``network_timeout``, 000604). Asynchronous
    statements (``start_async``) set their own limit, and go on after the session ends
    (ABORT_DETACHED_QUERY FALSE, said explicitly: an account or user may have set it)."""
    kwargs: dict[str, Any] = {
        "account": settings.account,
        "user": settings.user,
        "database": settings.database,
        "schema": settings.schema,
        "login_timeout": 30,
        "network_timeout": statement_timeout,
        # the input formats at their defaults (AUTO detection), whatever the account or user set: the
        # small-chunk INSERT binds dates and timestamps as MySQL's text of them
        "session_parameters": {
            "TIMEZONE": "UTC",
            "QUERY_TAG": "aurora-snowflake-replication",
            "STATEMENT_TIMEOUT_IN_SECONDS": statement_timeout,
            "ABORT_DETACHED_QUERY": False,
            **{f"{kind}_INPUT_FORMAT": "AUTO" for kind in ("DATE", "TIME", "TIMESTAMP")},
        },
        **cache_options(),
    }
    for name in ("role", "warehouse", "host", "port", "protocol"):
        if getattr(settings, name):
            kwargs[name] = getattr(settings, name)
    if settings.private_key:
        kwargs["private_key"] = _private_key_der(settings.private_key)
    else:
        kwargs["password"] = settings.password
    return snowflake.connector.connect(**kwargs)


def connect_with_rotation(
    get_settings: Callable[[bool], SnowflakeSettings], statement_timeout: int = STATEMENT_TIMEOUT_SECONDS
) -> SnowflakeConnection:
    try:
        return connect(get_settings(False), statement_timeout)
    except snowflake.connector.errors.DatabaseError as e:
        if getattr(e, "errno", None) in AUTH_ERRNOS:
            return connect(get_settings(True), statement_timeout)
        raise


# any error the Snowflake connector raises (a statement's or a connection's)
DriverError = snowflake.connector.errors.Error


def is_transient(error: BaseException) -> bool:
    """A Snowflake error worth retrying in place (``retry``): the connector's network, service-unavailable
    and throttling errors."""
    return isinstance(error, snowflake.connector.errors.OperationalError)


# Snowflake's codes (the connector's ``errno``): login (39xxxx), SQL (00xxxx), the connector's own (25xxxx)
LOGIN_MISSING = {390189, 390201}  # the requested role / warehouse (or database) does not exist or is not granted
SQL_MISSING = {2003, 2043, 606}  # object does not exist or not authorized; no active warehouse
SQL_GRANTS = {3001}  # insufficient privileges
OBJECT_EXISTS = 2002  # "SQL compilation error: Object '...' already exists." (SQLSTATE 42710)


def describe_failure(error: BaseException, settings: SnowflakeSettings) -> EndpointError | None:
    """The failure of a login or statement as one line naming what was tried and what to check, for the
    errors a person can fix (network, TLS, credentials, grants, a missing database or warehouse)."""
    host = settings.host or f"{settings.account}.snowflakecomputing.com"
    port = settings.port or 443
    named = [f"database {settings.database!r}", f"schema {settings.schema!r}"]
    named += [f"{k} {getattr(settings, k)!r}" for k in ("warehouse", "role") if getattr(settings, k)]
    auth = "key pair" if settings.private_key else "password"
    tried = f"at {host}:{port} (account {settings.account!r}) as user {settings.user!r} ({auth}), {', '.join(named)}"
    where = "the target secret (TARGET_SECRET_ARN), or the --target URL locally"
    code = getattr(error, "errno", None)
    says = str(getattr(error, "raw_msg", None) or error).strip()

    def fail(kind: str, cause: str, check: str) -> EndpointError:
        return EndpointError("Snowflake target", tried, kind, cause, check)

    if not isinstance(error, snowflake.connector.errors.Error):
        return None
    if code in AUTH_ERRNOS:
        what = "the private key and the public key set on the user (RSA_PUBLIC_KEY)" if settings.private_key else ""
        return fail("auth", f"login refused ({says})", f"the user name and {what or 'password'} in {where}")
    if code in LOGIN_MISSING or code in SQL_MISSING:
        return fail(
            "missing",
            f"{says}",
            f"that the database, schema and warehouse in {where} exist and that the role is granted USAGE on them",
        )
    if code in SQL_GRANTS:
        return fail(
            "grants",
            f"missing privilege ({says})",
            "the grants of the role: USAGE on the warehouse, database and schema, CREATE TABLE and CREATE STAGE on "
            "the schema (see docs/configuration.md)",
        )
    found = network_cause(error)
    if found is None and isinstance(error, snowflake.connector.errors.OperationalError) and code == 250001:
        found = ("unreachable", says)
    if found is None:
        return None
    kind, cause = found
    checks = {
        "unknown_host": f"the account identifier (or host) in {where}",
        "unreachable": "that the functions can reach Snowflake over HTTPS (port 443): a NAT gateway or PrivateLink "
        "from a VPC, egress rules, and the account identifier",
        "timeout": "outbound HTTPS from the functions (NAT gateway, egress rules, Snowflake network policy)",
        "tls": "that nothing between the functions and Snowflake intercepts TLS (a proxy), and the host name",
    }
    return fail(kind, cause, checks[kind])


def check_session(conn: SnowflakeConnection, settings: SnowflakeSettings) -> None:
    """The session uses the database, schema and warehouse the settings name. Without the connector's
    ``validate_default_parameters`` Snowflake does not refuse a login whose database, schema or
    warehouse does not exist or is not granted: the session then has none, and CURRENT_DATABASE(),
    CURRENT_SCHEMA() or CURRENT_WAREHOUSE() return NULL."""
    wanted = {"database": "CURRENT_DATABASE()", "schema": "CURRENT_SCHEMA()"}
    if settings.warehouse:
        wanted["warehouse"] = "CURRENT_WAREHOUSE()"
    row = execute(conn, "SELECT " + ", ".join(wanted.values()))[0]
    absent = [name for name, value in zip(wanted, row, strict=True) if value is None]
    if absent:
        failure = describe_failure(
            snowflake.connector.errors.ProgrammingError(
                msg=f"the session has no current {' or '.join(absent)}: "
                + ", ".join(f"{n} {getattr(settings, n)!r}" for n in absent)
                + " does not exist or is not authorized",
                errno=2003,
            ),
            settings,
        )
        assert failure is not None
        raise failure


class RowCountMismatch(RuntimeError):
    """A commit would leave other rows than the validated attempts carry; it was rolled back or not run.
    A concurrent finaliser that published the table first and dropped its load table does this."""

    def __init__(self, table: str, found: int, expected: int, outcome: str) -> None:
        super().__init__(
            f"{table!r} would hold {found} rows where the validated chunks carry {expected}: {outcome}. "
            "The load table changed after validation (another finaliser of the table published it and "
            "dropped its load table, or something else wrote to it); if the table is not published, rerun it"
        )


def _database(plan: TablePlan) -> str:
    if not plan.source_database:
        raise ValueError(f"table {plan.table!r}: a merged plan names its source database")
    return plan.source_database


def own_rows(plan: TablePlan, where: str) -> str:
    """``where`` on the target, kept to the plan's database's rows when the target is merged."""
    if not plan.merged:
        return where
    own = merged_sql.database_filter(_database(plan))
    return f"{own} AND ({where})" if where else own


class Target:
    """The Snowflake side of one worker: stage, load tables, target tables."""

    def __init__(self, conn: SnowflakeConnection, stage: str, ready: set[str] | None = None) -> None:
        """``ready``: the objects already created (stage, load tables), shared by the Targets of one
        container so that a run's DDL runs once per table, not once per chunk; a container that has
        not seen them (a cold one) creates them, ``IF NOT EXISTS``."""
        self.conn = conn
        self.stage = stage
        self.ready = ready if ready is not None else set()
        # the finaliser's runner of statements that grow with the table (``long_statements``); None: they
        # run synchronously, as any other (a test, ``replicate validate``)
        self.long: LongStatements | None = None

    def run_long(self, name: str, statement: str, params: Sequence[object] = (), rows: bool = True) -> list[list[Any]]:
        """A statement that grows with the table: asynchronous and recorded under ``name`` when the
        finaliser set ``long`` (``warehouse.Pending`` while it runs on), else synchronous.
        ``rows=False``: its answer is not used (nor read, when it ran asynchronously)."""
        if self.long is not None:
            return self.long.run(name, statement, params, rows)
        return [list(r) for r in execute(self.conn, statement, params or None)]

    def ensure_stage(self) -> None:
        key = f"stage:{self.stage}"
        if key not in self.ready:
            execute(self.conn, sql.create_stage(self.stage))
            self.ready.add(key)

    def ensure_load_table(self, plan: TablePlan, run_id: str) -> str:
        name = sql.load_table_name(plan, run_id)
        self._ensure_table(plan, name)
        return name

    def _ensure_table(self, plan: TablePlan, load_table: str) -> None:
        key = f"table:{load_table}"
        if key not in self.ready:
            execute(self.conn, sql.create_load_table(plan, load_table))
            self.ready.add(key)

    def ensure_target_table(self, plan: TablePlan) -> None:
        execute(self.conn, merged_sql.create_shared_table(plan) if plan.merged else sql.create_target_table(plan))

    def put(self, local_path: str, path: str) -> None:
        """PUT a local file, or every file a wildcard (``*``) in its name matches, to the stage path: the
        connector expands the wildcard and uploads the files in parallel (PUT's ``PARALLEL``)."""
        self.ensure_stage()
        execute(self.conn, sql.put_file(local_path, self.stage, path))
        meter.add("snowflake_bytes_staged", sum(os.path.getsize(f) for f in glob.glob(local_path)))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` ... ``COMMIT`` around the block; ``ROLLBACK`` when it raises. DML only: a DDL
        statement inside commits the transaction (Snowflake runs each DDL as its own transaction)."""
        execute(self.conn, "BEGIN")
        try:
            yield
        except BaseException:
            execute(self.conn, "ROLLBACK")
            raise
        execute(self.conn, "COMMIT")

    def load_file(self, plan: TablePlan, load_table: str, path: str, files: Sequence[str]) -> None:
        """COPY one attempt's staged files (one, or one per part of a chunk read in parts) into the
        load table in one statement (their rows carry the chunk and attempt ids). Nothing is deleted:
        earlier attempts stay, unread, since readers pick attempts by id. The load table is made first
        where this container has not made it yet."""
        self._ensure_table(plan, load_table)
        execute(self.conn, sql.copy_into(plan, load_table, self.stage, path, files))

    def load_rows(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str, rows: list[list[Any]]) -> None:
        """The small-chunk path: multi-row INSERTs of bound values, tagged with the chunk and attempt,
        into the run's load table of the table. Where this container has not made the load table yet,
        the first statement creates it with the first rows in it (``CREATE TABLE ... AS SELECT``: one
        statement and round trip instead of two, for every small table); if it exists already (another
        chunk, an earlier attempt, another container) the rows are inserted into it. An attempt
        interrupted half way leaves rows no ledger entry names."""
        batches = [rows[i : i + INSERT_BATCH_ROWS] for i in range(0, len(rows), INSERT_BATCH_ROWS)]

        def params(batch: list[list[Any]]) -> list[Any]:
            return [v for row in batch for v in (*row, chunk_id, attempt)]

        key = f"table:{load_table}"
        if key not in self.ready and batches:
            try:
                statement = sql.create_load_table_of_values(plan, load_table, len(batches[0]))
                execute(self.conn, statement, params(batches[0]))
                batches = batches[1:]
            except snowflake.connector.errors.ProgrammingError as e:
                if e.errno != OBJECT_EXISTS:
                    raise
            self.ready.add(key)
        else:  # made already; or no rows, and an empty chunk's table is validated all the same
            self._ensure_table(plan, load_table)
        for batch in batches:
            execute(self.conn, sql.insert_values(plan, load_table, len(batch)), params(batch))

    def record_attempts(self, plan: TablePlan, run_id: str, token: str, pairs: Sequence[tuple[int, str]]) -> Attempts:
        """The (chunk, attempt) pairs of one finaliser's view of the ledger, under ``token``, as every
        later read of the load table selects them: up to ``sql.INLINE_ATTEMPTS`` pairs are bound into
        those statements (no statement here); more are written to the run's attempts table."""
        if 0 < len(pairs) <= sql.INLINE_ATTEMPTS:
            return sql.attempts_inline(token, pairs)
        name = sql.attempts_table_name(plan, run_id)
        execute(self.conn, sql.create_attempts_table(name))
        for i in range(0, len(pairs), ATTEMPT_BATCH_ROWS):
            batch = pairs[i : i + ATTEMPT_BATCH_ROWS]
            params = [v for chunk, attempt in batch for v in (token, chunk, attempt)]
            execute(self.conn, sql.insert_attempts(name, len(batch)), params)
        return sql.attempts_in_table(name, token)

    def attempt_sums(self, plan: TablePlan, load_table: str, chunk_id: int, attempt: str) -> dict[str, Any]:
        """Count and checksum, computed by Snowflake, of the rows one attempt of one chunk loaded (read
        right after it loaded: the ledger entry records them with the attempt, and validation compares them
        with the chunk's snapshot). JSON columns count as the text the load table holds, as in the
        snapshot's checksum; where the plan has any, a second checksum leaves them out
        (``target_checksum_no_json``: what a MERGE's check compares the target's VARIANT rows with).
        Snowflake prunes the load table's micro-partitions to the attempt's own (each COPY or INSERT
        writes new ones): the scan is the chunk's, whatever the table's size."""
        with_json = checksum_columns(plan, json_text=True)
        without = checksum_columns(plan, json_text=False)
        statement = sql.attempt_checksum_query(load_table, with_json, without if without != with_json else None)
        row = execute(self.conn, statement, [chunk_id, attempt])[0]
        rows, checksum = fold_sums(row[0], row[1])
        out: dict[str, Any] = {"target_rows": rows, "target_checksum": checksum}
        if len(row) > 2:
            out["target_checksum_no_json"] = fold_sums(row[0], row[2])[1]
        return out

    def checksums_of_attempts(
        self, plan: TablePlan, load_table: str, attempts: Attempts, json_text: bool = True
    ) -> dict[int, tuple[int, str]]:
        """Count and checksum of each chunk's validated attempt in the load table, in one scan. JSON
        columns count as the text the load table holds (``json_text``), as in the chunk's source
        checksum; ``json_text=False`` leaves them out, to compare with a target's VARIANT rows."""
        where = sql.validated(load_table, attempts)
        columns = checksum_columns(plan, json_text)
        rows = execute(self.conn, sql.checksum_by_chunk_query(load_table, columns, where), attempts.params)
        return {int(chunk): fold_sums(count, total) for chunk, count, total in rows}

    def merge_validated(self, plan: TablePlan, load_table: str, attempts: Attempts) -> None:
        """MERGE the validated attempts into the target: a long statement (it grows with the window)."""
        if plan.merged:  # on (``_ASR_SOURCE_DATABASE``, key): another database's row is never matched
            statement = merged_sql.merge_database_rows(plan, load_table, attempts, _database(plan))
        else:
            statement = sql.merge_validated(plan, load_table, attempts)
        self.run_long("merge", statement, attempts.params, rows=False)

    def merged_checksum(self, plan: TablePlan, load_table: str, attempts: Attempts) -> tuple[int, str]:
        """Count and checksum of the target's rows whose key the validated attempts carry (a long statement:
        it joins the target with the window's keys)."""
        where = own_rows(plan, sql.merged_rows(plan, load_table, attempts))
        statement = sql.checksum_aggregate_query(plan, plan.target_table, checksum_columns(plan, False), False, where)
        row = self.run_long("merge_check", statement, attempts.params)[0]
        return fold_sums(row[0], row[1])

    def row_count(self, table: str) -> int:
        return int(execute(self.conn, sql.row_count(table))[0][0])

    def table_rows(self, plan: TablePlan) -> int:
        """How many rows of the plan's the target holds: the whole table's count, or a merged table's rows of
        the plan's database (``merged_sql.database_row_count``)."""
        if plan.merged:
            return int(execute(self.conn, merged_sql.database_row_count(plan.target_table, _database(plan)))[0][0])
        return self.row_count(plan.target_table)

    def database_row_counts(self, tables: Sequence[str], database: str) -> dict[str, int]:
        """Each (existing) merged table's rows of ``database`` (the whole-target check of a merged run)."""
        out: dict[str, int] = {}
        for table in tables:
            out[table] = int(execute(self.conn, merged_sql.database_row_count(table, database))[0][0])
        return out

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` exist in the session's schema (one query per hundred names)."""
        found: set[str] = set()
        for i in range(0, len(names), 100):
            group = list(names[i : i + 100])
            found.update(str(r[0]) for r in execute(self.conn, sql.existing_tables(len(group)), group))
        return found

    def row_counts(self, tables: Sequence[str]) -> dict[str, int]:
        """Each (existing) table's row count, a hundred tables per statement."""
        out: dict[str, int] = {}
        for i in range(0, len(tables), 100):
            group = list(tables[i : i + 100])
            for n, count in execute(self.conn, sql.row_counts(group)):
                out[group[int(n)]] = int(count)
        return out

    def audit_differences(
        self, plan: TablePlan, load_table: str, attempts: Attempts, first_chunk: int, watermark_bound: str | None
    ) -> int:
        """How many audited rows (chunks from ``first_chunk`` on, watermark at or below
        ``watermark_bound``) the target does not hold as they are (``sql.audit_differences``)."""
        bounded = bool(plan.watermark) and watermark_bound is not None
        columns = checksum_columns(plan, json_text=False)
        # history mode: against the current versions only (``history_sql``)
        current = snowflake_ident(history_sql.IS_CURRENT) if plan.history else ""
        current = own_rows(plan, current)  # a merged table: the plan's database's rows only
        statement = sql.audit_differences(plan, load_table, attempts, columns, bounded, current)
        params: list[object] = [*attempts.params, first_chunk, *([watermark_bound] if bounded else [])]
        return int(execute(self.conn, statement, params)[0][0])

    def publish(self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int) -> None:
        """Recreate the target (``CREATE OR REPLACE ... COPY GRANTS``): only when ``overwrite`` cannot
        do. A DDL statement cannot be rolled back, so the rows go to a copy first, which is counted:
        the target is recreated only from ``expected_rows`` rows (``RowCountMismatch`` otherwise). Both
        copies are long statements; the copy is named by the finaliser's round, so that a finaliser that
        comes back for them finds it."""
        suffix = f"R{self.long.round}" if self.long is not None else secrets.token_hex(4)
        copy = sql.published_copy_name(load_table, suffix)
        done = False
        try:
            statement = sql.published_copy(plan, copy, load_table, attempts)
            self.run_long("publish_copy", statement, attempts.params, rows=False)
            rows = self.row_count(copy)
            if rows != expected_rows:
                raise RowCountMismatch(plan.target_table, rows, expected_rows, "left unchanged")
            self.run_long("publish_replace", sql.publish(plan, copy), rows=False)
            done = True
        except Pending:
            raise  # the copy is still being made, or the target recreated from it: it stays
        except BaseException:
            self.drop(copy)
            raise
        if done:
            self.drop(copy)

    def overwrite(self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int) -> None:
        """Replace the target's rows with the validated attempts (``INSERT OVERWRITE``, one statement that
        is its own transaction: a failure leaves the old contents whole; the table object and everything
        attached to it stay), as a long statement. The statement fails unless the load table holds
        exactly ``expected_rows`` validated rows (``sql.guard_rows``): ``RowCountMismatch``."""
        params = (*attempts.params, *attempts.params, expected_rows)
        try:
            self.run_long("publish", sql.overwrite(plan, load_table, attempts), params, rows=False)
        except snowflake.connector.errors.ProgrammingError as e:
            found = re.search(re.escape(sql.GUARD_TEXT) + r": (\d+) rows", str(e))
            if found:
                raise RowCountMismatch(plan.target_table, int(found.group(1)), expected_rows, "left unchanged") from e
            raise

    def replace_database_rows(
        self, plan: TablePlan, load_table: str, attempts: Attempts, expected_rows: int, dropped: Sequence[str] = ()
    ) -> None:
        """A merged table's full copy of one database: its rows become the validated attempts, no other
        database's row touched (``merged_sql.replace_database_rows``: one MERGE, a long statement). The
        statement fails unless the load table holds exactly ``expected_rows`` validated rows:
        ``RowCountMismatch``, every row left as it was."""
        params = (*attempts.params, *attempts.params, *attempts.params, expected_rows)
        statement = merged_sql.replace_database_rows(plan, load_table, attempts, _database(plan), dropped)
        try:
            self.run_long("publish", statement, params, rows=False)
        except snowflake.connector.errors.ProgrammingError as e:
            found = re.search(re.escape(sql.GUARD_TEXT) + r": (\d+) rows", str(e))
            if found:
                raise RowCountMismatch(plan.target_table, int(found.group(1)), expected_rows, "left unchanged") from e
            raise

    def drop(self, table: str) -> None:
        execute(self.conn, sql.drop_table(table))
        self.ready.discard(f"table:{table}")

    def exists(self, table: str) -> bool:
        rows = execute(self.conn, sql.table_exists(), [table])
        return bool(rows and rows[0][0])

    def checksum(
        self,
        plan: TablePlan,
        table: str,
        load_table: bool = False,
        where: str = "",
        params: Sequence[object] = (),
        json_text: bool = False,
    ) -> tuple[int, str]:
        """``json_text``: include JSON columns (only where ``table`` holds them as text: a load table)."""
        statement = sql.checksum_aggregate_query(plan, table, checksum_columns(plan, json_text), load_table, where)
        return fold_sums(*execute(self.conn, statement, params or None)[0])

    def columns(self, table: str) -> list[tuple[Any, ...]]:
        """The target table's columns, ``(name, data_type, precision, scale)``; empty if it does not exist."""
        return execute(self.conn, sql.target_columns(), [table])

    def alter(self, statements: Sequence[str]) -> None:
        """Schema evolution: the ``ALTER TABLE`` statements of ``evolution.alter_statements``, in order."""
        for statement in statements:
            execute(self.conn, statement)

    def close(self) -> None:
        self.conn.close()

    def range_checksum(
        self, plan: TablePlan, lower: Sequence[object] | None, upper: Sequence[object] | None
    ) -> tuple[int, str]:
        where, params = sql.target_range(plan, lower, upper)
        return self.checksum(plan, plan.target_table, where=own_rows(plan, where), params=params)

    def reconcile(self, plan: TablePlan, keys_table: str, attempts: Attempts, action: str, expected_keys: int) -> int:
        """Delete (or mark) the target's rows whose key is not among the validated keys read from
        MySQL; returns how many rows were deleted or newly marked. Only while the keys table holds
        ``expected_keys`` validated keys (a guard in the statement): otherwise ``RowCountMismatch``."""
        own = merged_sql.database_filter(_database(plan), "t.") if plan.merged else ""  # a merged table: its rows
        guarded = (*attempts.params, *attempts.params, expected_keys)
        rows: Sequence[Sequence[Any]]
        if action == "mark":  # two statements in one transaction: synchronous (a transaction ends with its session)
            execute(self.conn, sql.add_deleted_column(plan))
            with self.transaction():
                rows = execute(self.conn, sql.reconcile_mark(plan, keys_table, attempts, own), guarded)
                execute(self.conn, sql.reconcile_unmark(plan, keys_table, attempts, own), attempts.params)
        else:
            rows = self.run_long("reconcile", sql.reconcile_delete(plan, keys_table, attempts, own), guarded)
        # the statement's guard held if the keys table still holds the validated keys now
        found = int(execute(self.conn, sql.validated_count(keys_table, attempts), attempts.params)[0][0])
        if found != expected_keys:
            raise RowCountMismatch(keys_table, found, expected_keys, "nothing deleted or marked")
        return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0

    def keys_missing(self, plan: TablePlan, keys_table: str, attempts: Attempts) -> int:
        own = merged_sql.database_filter(_database(plan), "t.") if plan.merged else ""
        rows = execute(self.conn, sql.keys_missing_in_target(plan, keys_table, attempts, own), attempts.params)
        return int(rows[0][0]) if rows else 0

    # ---- change data capture (target/cdc_sql.py) ---------------------------------------------
    def load_changes(
        self, plan: TablePlan, load_table: str, chunk_id: int, path: str, file: str, audit: bool = False
    ) -> int:
        """COPY a staged batch of changes into the run's load table (a repeat loads nothing more);
        returns how many distinct changes of the batch the load table holds (``audit``: distinct keys,
        the rolling audit's rows sharing one position)."""
        execute(self.conn, cdc_sql.create_load_table(plan, load_table))
        self.ensure_stage()
        execute(self.conn, cdc_sql.copy_batch(plan, load_table, self.stage, path, file))
        count = cdc_sql.count_audit_batch(plan, load_table) if audit else cdc_sql.count_batch(plan, load_table)
        return int(execute(self.conn, count, [chunk_id])[0][0])

    def audit_changes(self, plan: TablePlan, load_table: str, chunk_id: int, action: str) -> int:
        """How many rows of a cdc table's audit batch (``chunk_id``) the target does not hold as they are."""
        statement = cdc_sql.audit_differences(plan, load_table, checksum_columns(plan, json_text=False), action)
        return int(execute(self.conn, statement, [chunk_id])[0][0])

    def prepare_changes(self, plan: TablePlan, action: str) -> None:
        """The target's hidden columns (``_ASR_POS``; ``_ASR_DELETED_AT`` when deletes are marked) and,
        when deletes delete, the tombstone table."""
        self.ensure_target_table(plan)
        execute(self.conn, cdc_sql.add_position_column(plan))
        if action == "delete":
            execute(self.conn, cdc_sql.create_tombstone_table(plan))
        else:
            execute(self.conn, cdc_sql.add_deleted_column(plan))

    def merge_tombstones(self, plan: TablePlan, load_table: str, chunk_id: int) -> None:
        execute(self.conn, cdc_sql.merge_tombstones(plan, load_table), [chunk_id])

    def merge_changes(
        self, plan: TablePlan, load_table: str, chunk_id: int, action: str, key_range: tuple[int, int] | None = None
    ) -> None:
        bounds = list(key_range) if key_range is not None and cdc_sql.range_key(plan) is not None else []
        execute(self.conn, cdc_sql.merge_changes(plan, load_table, action, bool(bounds)), [chunk_id, *bounds])

    def truncate_before(self, plan: TablePlan, action: str, position: str) -> None:
        """Empty the target as a ``TRUNCATE`` at ``position`` did (``cdc_sql.truncate_before``)."""
        statement, binds = cdc_sql.truncate_before(plan, action)
        execute(self.conn, statement, [position] * binds)

    def fill_version(self, plan: TablePlan, load_table: str, chunk_id: int, column: Column) -> None:
        execute(self.conn, cdc_sql.fill_version(plan, load_table, column), [chunk_id])

    def null_rows(self, plan: TablePlan, column: str, action: str) -> int:
        """How many live rows hold NULL in the target column ``column`` (``cdc_sql.null_rows``)."""
        return int(execute(self.conn, cdc_sql.null_rows(plan, column, action))[0][0])

    def prune_tombstones(self, plan: TablePlan, older_than_seconds: int) -> None:
        execute(self.conn, cdc_sql.create_tombstone_table(plan))
        execute(self.conn, cdc_sql.prune_tombstones(plan), [-older_than_seconds])

    # ---- history mode (``target/history_sql.py``) ----------------------------------------------------

    def ensure_history_table(self, plan: TablePlan) -> list[tuple[Any, ...]]:
        """The history table (created when missing), checked to be one; returns its columns. A plain target
        of the same name (copied before history mode was chosen) is refused: its rows carry no versions."""
        execute(self.conn, history_sql.create_history_table(plan))
        columns = self.columns(plan.target_table)
        mismatch = history_sql.mode_mismatch(plan, columns)
        if mismatch:
            raise HistoryBroken(mismatch)
        return columns

    def history_view(self, plan: TablePlan) -> None:
        """The current-state view, made again (its columns follow the table's)."""
        execute(self.conn, history_sql.create_current_view(plan))

    def history_cdc_merge(self, plan: TablePlan, load_table: str, chunk_id: int) -> None:
        execute(self.conn, history_sql.cdc_merge(plan, load_table), [chunk_id, chunk_id])

    def history_settle(self, plan: TablePlan, load_table: str, below_chunk: int) -> None:
        """Every batch of the window (chunk ids below ``below_chunk``) once more: the chains of the keys
        they touch derived from all of them (``history_sql.cdc_merge``)."""
        execute(self.conn, history_sql.cdc_merge(plan, load_table, "<"), [below_chunk, below_chunk])

    def history_truncate(self, plan: TablePlan, position: str, at: int) -> None:
        """A ``TRUNCATE`` at ``position`` (``at``: its time, epoch seconds) in history mode: a delete marker
        there for every key live before it, and their chains derived again (``history_sql.truncate_markers``,
        ``rederive_truncated``)."""
        execute(self.conn, history_sql.truncate_markers(plan), [at, at, position, position, position])
        execute(self.conn, history_sql.rederive_truncated(plan), [position])

    def history_snapshot(
        self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object], at: str, pos: str
    ) -> None:
        """New versions from the copied rows ``rows`` picks (bind ``params``), at time ``at`` (text) and ``pos``."""
        statement = history_sql.snapshot_merge(plan, load_table, rows)
        self.run_long("history_merge", statement, [at, at, pos, *params] * 2, rows=False)

    def history_changed(self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object]) -> int:
        """How many copied rows ``rows`` picks differ from their key's current version (or have none)."""
        changed = history_sql.changed_rows(plan, load_table, rows)
        stamp = "1970-01-01 00:00:00"
        return int(execute(self.conn, f"SELECT COUNT(*) FROM ({changed})", [stamp, stamp, "", *params])[0][0])  # noqa: S608 (history_sql)

    def history_close_absent(
        self, plan: TablePlan, load_table: str, rows: str, params: Sequence[object], at: str, pos: str
    ) -> None:
        statement = history_sql.close_absent(plan, load_table, rows)
        self.run_long("history_close", statement, [at, pos, *params] * 2, rows=False)

    def check_history(self, plan: TablePlan, keys_from: str | None = None, params: Sequence[object] = ()) -> None:
        """The history's invariants over the keys ``keys_from`` names (None: all); ``HistoryBroken`` naming
        each broken rule."""
        row = self.run_long("history_check", history_sql.invariants(plan, keys_from), params)[0]
        broken = history_sql.describe_broken(plan.table, [None if v is None else int(v) for v in row])
        if broken:
            raise HistoryBroken(broken)

    def current_rows(self, plan: TablePlan) -> int:
        return int(self.run_long("history_current", history_sql.current_rows(plan))[0][0])

    # ---- schema evolution (``target/snowflake/evolution.py``; the change and its records: ``schema_changes``) ----

    def schema_diff(self, plan: TablePlan, columns: list[tuple[Any, ...]]) -> SchemaChange:
        return evolution.diff(plan, columns)

    def alter_statements(self, plan: TablePlan, change: SchemaChange) -> list[str]:
        return evolution.alter_statements(plan, change)

    def renamed_column(
        self, plan: TablePlan, columns: list[tuple[Any, ...]], change: SchemaChange
    ) -> tuple[str, str] | None:
        return evolution.renamed_in_target(plan, columns, change)

    def rename_statement(self, table: str, old: str, new: str) -> str:
        return evolution.rename_statement(table, old, new)

    def add_version_statement(self, table: str, column: Column) -> str:
        return evolution.add_version_statement(table, column)

    def widens_losslessly(self, old: str, new: str) -> bool:
        return evolution.widens_losslessly(old, new)

    def shape_mismatch(self, plan: TablePlan, columns: Sequence[Sequence[object]]) -> str | None:
        """History mode's (``history_sql.mode_mismatch``), then a merged table's (``merged_sql.shape_mismatch``)."""
        return history_sql.mode_mismatch(plan, columns) or merged_sql.shape_mismatch(plan, columns)

    def is_history_table(self, columns: Sequence[Sequence[object]]) -> bool:
        return history_sql.is_history_table(columns)

    # ---- reading the target's rows of a plan ----

    def order_safe(self, plan: TablePlan) -> bool:
        return sql.order_safe(plan)

    def own_rows(self, plan: TablePlan, where: str) -> str:
        return own_rows(plan, where)

    def validated(self, load_table: str, attempts: Attempts) -> str:
        return sql.validated(load_table, attempts)

    def diagnosis(self) -> Diagnosis:
        return Diagnosis(self.conn)

    # ---- the session, the schemas and the long statements ----

    def check_session(self, settings: Any) -> None:
        # the interface's neutral parameter: the target secret's settings, here Snowflake's (``SnowflakeSettings``)
        check_session(self.conn, settings)

    def ensure_schemas(self, schemas: Sequence[str]) -> None:
        there = {str(r[0]) for r in execute(self.conn, sql.schema_names())}
        for schema in dict.fromkeys(s for s in schemas if s not in there):
            execute(self.conn, sql.create_schema(schema))

    def record_long_statements(
        self, ledger: StatementLedger, heal_round: int, timeout_seconds: int, wait_until: Callable[[], float]
    ) -> None:
        self.long = LongStatements(self.conn, ledger, heal_round, timeout_seconds, wait_until)

    def still_running(self, query_id: str) -> bool:
        return bool(self.conn.is_still_running(long_statements.status(self.conn, query_id)))
