"""``replicate``: run the real handlers over the local stack (moto, MariaDB, the Snowflake emulator).

Exit codes: 0 done (healthy, valid); 1 the run finished but a table failed (or the stack is unhealthy);
2 bad input (arguments, URLs, the run request, an event file), as one line naming the field, the value
and the fix; 3 an endpoint could not be reached (refused, timed out, unknown host, TLS); 4 an endpoint
refused the credentials or a privilege; 5 a database, schema or warehouse does not exist; 70 an
unexpected error (the traceback is in the log, or on screen with --verbose); 75 another command is
using the same --home (its lock); 130 interrupted (Ctrl-C). Handler output, metric lines and library
warnings go to <home>/logs/handlers.log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, get_args

from aurora_replication.errors import BadInputError, EndpointError
from aurora_replication.ledger.runs import RunItem, table_is_terminal
from aurora_replication_dev.local.home_lock import HomeInUseError

DEFAULT_HOME = Path(os.environ.get("REPLICATE_HOME", ".local"))
EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 70
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EPILOG = (
    "exit codes: 0 ok; 1 a table failed or unhealthy; 2 bad input; 3 endpoint unreachable (refused, timed out, "
    "unknown host, TLS); 4 credentials or privileges refused; 5 database, schema or warehouse missing; "
    "70 unexpected error (traceback in <home>/logs/handlers.log, or --verbose); 75 --home in use by another "
    "command; 130 interrupted (Ctrl-C)"
)
FUNCTIONS = {
    "scheduler": "SchedulerFunction",
    "worker": "WorkerFunction",
    "health": "HealthFunction",
    "rotation": "RotationFunction",
}


class Progress:
    """One line on stderr: chunks done of planned, rows copied, tables finished."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.last = ""

    def __call__(self, run: RunItem) -> None:
        states = run.get("table_states", {}).values()
        total = sum(int(t.get("chunk_count", 0)) for t in states)
        done = sum(min(int(t.get("done_count", 0)), int(t.get("chunk_count", 0))) for t in states)
        rows = sum(int(t.get("rows_copied", 0)) for t in states)
        finished = sum(1 for t in states if table_is_terminal(t))
        width = 30
        filled = int(width * done / total) if total else width
        bar = f"[{'#' * filled}{'.' * (width - filled)}]"
        line = f"{bar} {done}/{total} chunks  {rows:,} rows  {finished}/{len(states)} tables"
        if line != self.last:
            self.stream.write("\r" + line)
            self.stream.flush()
            self.last = line

    def close(self) -> None:
        if self.last:
            self.stream.write("\n")


def table_costs(outcome: Any) -> dict[str, dict[str, Any]]:
    """Each table's estimated cost in the run (cost/estimate.py), at the prices the environment names."""
    from aurora_replication.cost import estimate as cost

    return cost.run_costs(outcome.run, getattr(outcome, "cost", {}), cost.Prices.from_environ(os.environ))


def summary_rows(outcome: Any) -> list[dict[str, Any]]:
    from aurora_replication.cost.estimate import money

    rows = []
    costs = table_costs(outcome)
    for name, t in sorted(outcome.run.get("table_states", {}).items()):
        copied = int(t.get("rows_copied", 0))
        started = float(t.get("started_at") or 0)
        finished = float(t.get("finished_at") or t.get("updated_at") or started)
        seconds = max(finished - started, 0.001) if started else 0.0
        status = t.get("status", "?")
        if status == "running" and (t.get("dead_lettered") or outcome.dlq_messages):
            status = "failed (chunks in the DLQ)"
        rows.append(
            {
                "table": name,
                "mode": t.get("mode", "-"),
                "status": status,
                "chunks": int(t.get("chunk_count", 0)),
                "rows": copied,
                "est_cost": money(costs[name]["estimated_cost"]) if name in costs else "-",
                "seconds": round(seconds, 2),
                "rows_per_s": int(copied / seconds) if seconds else 0,
                "source_rows": t.get("source_rows", "-"),
                "target_rows": t.get("target_rows", "-"),
                "source_checksum": t.get("source_checksum", "-"),
                "target_checksum": t.get("target_checksum", "-"),
                "validation": t.get("validation", t.get("reason", "-")),
                "cost": costs.get(name),
                # the whole-target check and the rolling audit (docs/exactness.md): said, never folded into OK
                "drift": t.get("drift"),
                "audit": t.get("audit"),
            }
        )
    return rows


def print_summary(outcome: Any, title: str = "") -> None:
    rows = summary_rows(outcome)
    cols = [
        "table",
        "mode",
        "status",
        "chunks",
        "rows",
        "est_cost",
        "seconds",
        "rows_per_s",
        "source_rows",
        "target_rows",
        "source_checksum",
        "target_checksum",
        "validation",
    ]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) if rows else len(c) for c in cols}
    if title:
        print(title)
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    from aurora_replication.cost.estimate import money

    for r in rows:
        if r.get("drift"):
            print(f"drift: {r['table']}: {r['drift']}; copied again in {r['mode']} mode")
        if r.get("audit"):
            print(f"audit: {r['table']}: {r['audit']}")
        c = r.get("cost") or {}
        if c.get("nothing_changed"):
            print(
                f"nothing changed: {r['table']} moved no rows in this {r['mode']} run but cost "
                f"{money(c['estimated_cost'])}; a longer schedule for it would cost less"
            )
    total = sum((r.get("cost") or {}).get("estimated_cost", 0.0) for r in rows)
    if any(r.get("cost") for r in rows):
        print(f"estimated cost {money(total)} (docs/cost.md: how it is measured, prices from PRICE_* settings)")
    verdict = "OK" if outcome.ok else "FAILED"
    print(
        f"run {outcome.run_id}: {verdict} in {outcome.seconds:.1f} s"
        + (f"; {outcome.dlq_messages} message(s) in the dead-letter queue" if outcome.dlq_messages else "")
    )


def _stack(home: Path, source: str, target: str, env: dict[str, str] | None = None) -> Any:
    from aurora_replication_dev.local.stack import LocalStack, parse_source_url, parse_target_url

    source_secret, target_secret = parse_source_url(source), parse_target_url(target)
    stack = LocalStack(home)
    try:
        stack.start(source_secret, target_secret, env)
    except BaseException:  # a start that failed or was interrupted half-way: stop what it started
        stack.stop()
        raise
    return stack


class Interrupted(Exception):
    """Ctrl-C stopped a command; ``run_id``: the run it leaves to resume (None: nothing was recorded)."""

    def __init__(self, run_id: str | None, note: str = "") -> None:
        super().__init__(run_id)
        self.run_id = run_id
        self.note = note

    def line(self) -> str:
        if self.run_id:
            return f"interrupted; resume with `replicate resume {self.run_id}`"
        return "interrupted" + (f"; {self.note}" if self.note else "")


def run_request(args: argparse.Namespace) -> dict[str, Any]:
    """The run request the flags make, checked as the scheduler checks it (before anything starts)."""
    from aurora_replication.models import MODE_RULES, new_run_id, parse_run_request

    request: dict[str, Any] = {"tables": args.tables, "mode": args.mode}
    if args.chunk_rows is not None:
        request["chunk_rows"] = args.chunk_rows
    if args.resnapshot:
        if "resnapshot" not in MODE_RULES[args.mode].request_fields:
            raise BadInputError("--resnapshot goes with --mode cdc: it takes a new initial copy of the tables")
        request["resnapshot"] = True
    if getattr(args, "databases", None):
        request["databases"] = args.databases
        request["database_mapping"] = args.database_mapping
    if getattr(args, "start_position", None):
        if "start_position" not in MODE_RULES[args.mode].request_fields:
            raise BadInputError("--start-position goes with --mode cdc: it says where a new cdc table starts")
        request["start_position"] = args.start_position
    if getattr(args, "follow_seconds", None):
        if "follow_seconds" not in MODE_RULES[args.mode].request_fields:
            raise BadInputError("--follow-seconds goes with --mode cdc: it reads binlog windows back to back")
        request["follow_seconds"] = args.follow_seconds
    request["run_id"] = new_run_id()  # known before the run starts, so Ctrl-C can always name it
    parse_run_request(request, args.mode)
    return request


def check_run(args: argparse.Namespace) -> None:
    """What ``run`` is given, checked before it waits for the home or starts anything."""
    from aurora_replication_dev.local.stack import parse_source_url, parse_target_url

    parse_source_url(args.source)
    parse_target_url(args.target)
    args.request = run_request(args)


def cmd_run(args: argparse.Namespace) -> int:
    request = args.request if getattr(args, "request", None) else run_request(args)
    run_id = request["run_id"]
    stack = _stack(args.home, args.source, args.target)
    try:
        # on stdout, where the summary's last line names the run too; stderr keeps errors to one line
        print(f"run {run_id}: starting (Ctrl-C stops it; `replicate resume {run_id}` goes on)", flush=True)
        progress = Progress()
        try:
            outcome = stack.run(
                request,
                workers=args.workers,
                progress=progress,
                on_scheduled=lambda summary: setattr(args, "run_recorded", summary["run_id"]),
            )
        except KeyboardInterrupt:
            progress.close()
            raise Interrupted(
                getattr(args, "run_recorded", None), f"run {run_id} had not started: nothing was written"
            ) from None
        progress.close()
        # --databases: a run per database (docs/run-requests.md#several-databases), each summed up and reported
        outcomes = outcome.runs or {"": outcome}
        reports = {d: _report_path(Path(args.report), d) for d in outcomes} if args.report else {}
        for database, path in reports.items():
            _write_report(stack.table_name, outcomes[database].run_id, path)
    finally:
        stack.stop()
    for database, o in outcomes.items():
        print_summary(o, title=f"database {database}: run {o.run_id}" if database else "")
    for path in reports.values():
        print(f"report: {path}")
    if args.json:
        runs = {d: {"run_id": o.run_id, "tables": summary_rows(o)} for d, o in outcomes.items()}
        body = {"run_id": run_id, "runs": runs} if outcome.runs else runs[""]
        Path(args.json).write_text(json.dumps(body, indent=2))
    return 0 if outcome.ok else 1


def _report_path(path: Path, database: str) -> Path:
    """``--report`` of a run of several databases: one page per database, ``<name>-<database><suffix>``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    return path.with_name(f"{path.stem}-{safe}{path.suffix}") if database else path


def _write_report(table_name: str, run_id: str, path: Path) -> None:
    from aurora_replication.ledger.store import StateStore
    from aurora_replication.ops import report

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.build(StateStore(table_name), run_id), encoding="utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML page of one run, from the local ledger or (``--state-table``) a deployed one."""
    out = Path(args.out or f"run-{args.run_id}.html")
    if args.state_table:  # AWS: credentials and region from the environment, as for the AWS CLI
        _write_report(args.state_table, args.run_id, out)
    else:
        from aurora_replication_dev.local.stack import LocalStack

        stack = LocalStack(args.home)
        stack.start({}, {})  # only the ledger is read: no database is connected
        try:
            _write_report(stack.table_name, args.run_id, out)
        finally:
            stack.stop()
    print(f"report: {out}")
    return 0


def print_cost(run_id: str, run: RunItem, figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each table's estimated cost in the run, by service; returns what it printed."""
    from aurora_replication.cost import estimate as cost

    states = run.get("table_states", {})
    tables = cost.run_costs(run, figures, cost.Prices.from_environ(os.environ))
    print(f"{'table':<24} {'rows':>10} " + " ".join(f"{k:>11}" for k in (*cost.SERVICES, "total")) + "  credits")
    for name, c in tables.items():
        s = c["by_service"]
        rows = int(states.get(name, {}).get("rows_copied", 0))
        print(
            f"{name:<24} {rows:>10,} "
            + " ".join(f"{cost.money(s[k]):>11}" for k in cost.SERVICES)
            + f" {cost.money(c['estimated_cost']):>11}  {c['snowflake_credits']:.6f} ({c['snowflake_basis']})"
            + ("  nothing changed" if c["nothing_changed"] else "")
        )
    total = sum(c["estimated_cost"] for c in tables.values())
    print(f"run {run_id}: estimated cost {cost.money(total)}")
    return {"run_id": run_id, "estimated_cost": total, "tables": tables}


def cmd_cost(args: argparse.Namespace) -> int:
    """A run's cost per table and service; ``--reconcile`` first reads the credits Snowflake attributed
    to the run's query tags (which it publishes hours later)."""
    from aurora_replication.config import load_settings
    from aurora_replication.cost import ledger as cost_ledger
    from aurora_replication.cost import reconcile as cost_reconcile
    from aurora_replication.ledger.store import StateStore
    from aurora_replication.services import Services

    def show(state: StateStore, services: Any) -> None:
        if args.reconcile:
            r = cost_reconcile.reconcile(args.run_id, services)
            print(f"reconciliation: {r.detail}")
        print_cost(args.run_id, state.get_run(args.run_id), cost_ledger.get_figures(state.table, args.run_id))

    if args.state_table:  # AWS: credentials and region from the environment, as for the AWS CLI
        state = StateStore(args.state_table)
        show(state, Services.from_settings(load_settings()) if args.reconcile else None)
        return 0
    source, target = _endpoints(args) if args.reconcile else ("", "")
    stack = _stack(args.home, source, target) if args.reconcile else None
    if stack is None:
        from aurora_replication_dev.local.stack import LocalStack

        stack = LocalStack(args.home)
        stack.start({}, {})  # only the ledger is read
    try:
        load_settings.cache_clear()
        show(StateStore(stack.table_name), Services.from_settings(load_settings()) if args.reconcile else None)
    finally:
        stack.stop()
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Send again the missing chunks (or finalise steps) of a stalled run and drive it to its end. A table
    that a newer run has superseded is refused (one line on stderr naming the newer run; nothing sent)."""
    source, target = _endpoints(args)
    stack = _stack(args.home, source, target)
    try:
        print(f"run {args.run_id}: resuming (Ctrl-C stops it; resume it again later)", flush=True)
        from aurora_replication_dev.local import interrupts

        with interrupts.deferred("the scheduler's resume (its messages are sent)"):
            resumed = stack.invoke("SchedulerFunction", {"resume_run": args.run_id})
        for table in resumed.get("refused", []):
            print(resumed["tables"][table]["refused"], file=sys.stderr)
        if resumed.get("refused") and not resumed.get("resumed"):
            return 1  # nothing was resumed: no run to drive
        progress = Progress()
        try:
            outcome = stack.drain(args.run_id, workers=args.workers, progress=progress)
        except KeyboardInterrupt:
            progress.close()
            raise Interrupted(args.run_id) from None
        progress.close()
    finally:
        stack.stop()
    print_summary(outcome, f"== run {args.run_id} after resume ==")
    return 0 if outcome.ok else 1


def _local_endpoints(home: Path) -> tuple[str, str]:
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    db = MariaDB(home / "mariadb").start()
    sf = SnowflakeEmulator(home / "snowflake").start()
    return db.url(), sf.url()


def _endpoints(args: argparse.Namespace) -> tuple[str, str]:
    """The URLs given, or the local MariaDB and emulator of the demo for those left out."""
    if args.source and args.target:
        return args.source, args.target
    local_source, local_target = _local_endpoints(args.home)
    return args.source or local_source, args.target or local_target


def function_id(name: str) -> str:
    """The template's logical id of a function named by its short name or its logical id."""
    logical = FUNCTIONS.get(name.lower())
    if logical is not None:
        return logical
    if name in FUNCTIONS.values():
        return name
    raise BadInputError(
        f"unknown function {name!r}; name one of {', '.join(FUNCTIONS)} "
        f"(or its logical id: {', '.join(FUNCTIONS.values())})"
    )


def read_event(path: str) -> Any:
    """An event file's JSON, read strictly (``models.load_json``)."""
    from aurora_replication.models import load_json

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInputError(
            f"event file {path!r} does not exist; give a JSON event file, e.g. events/scheduler.json"
        ) from None
    except OSError as e:
        raise BadInputError(f"event file {path!r} cannot be read ({e.strerror}); give a JSON event file") from None
    return load_json(data, f"event file {path!r}")


def _check_sqs_event(event: Any) -> None:
    """The worker's event: an SQS batch whose every body is a chunk message, as the worker parses it."""
    from aurora_replication.models import parse_chunk_message, shown

    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        raise BadInputError(
            f"invalid worker event: Records={shown(records)}: an SQS event has a non-empty list of Records "
            "(see events/worker.json)"
        )
    for i, record in enumerate(records):
        where = f"invalid worker event: Records.{i}"
        if not isinstance(record, dict):
            raise BadInputError(f"{where}={shown(record)}: must be a JSON object (an SQS record)")
        for name in ("messageId", "body"):
            if not isinstance(record.get(name), str):
                raise BadInputError(f"{where}.{name}={shown(record.get(name))}: must be a string")
        attributes = record.get("attributes", {})
        if not isinstance(attributes, dict):
            raise BadInputError(f"{where}.attributes={shown(attributes)}: must be a JSON object")
        receives = attributes.get("ApproximateReceiveCount", "1")
        if not (isinstance(receives, str) and re.fullmatch(r"[1-9][0-9]*", receives)):
            raise BadInputError(
                f'{where}.attributes.ApproximateReceiveCount={shown(receives)}: must be a count as text, e.g. "1"'
            )
        try:
            parse_chunk_message(record["body"])
        except BadInputError as e:
            raise BadInputError(f"{where}.body: {e}") from None


def check_event(function: str, event: Any) -> None:
    """The event as the function's handler parses it, before any server starts: bad input is exit 2."""
    if function == "SchedulerFunction":
        from aurora_replication.models import parse_scheduler_event

        parse_scheduler_event(event, "auto")  # any valid mode: the default only fills a missing one
    elif function == "WorkerFunction":
        _check_sqs_event(event)
    elif function == "HealthFunction":
        from aurora_replication.ops.health import is_function_url

        is_function_url(event)
    elif function == "RotationFunction":
        from aurora_replication.rotation.base import parse_event

        parse_event(event)


def check_invoke(args: argparse.Namespace) -> None:
    """The function and its event, checked before ``invoke`` waits for the home or starts anything."""
    from aurora_replication_dev.local.stack import parse_source_url, parse_target_url

    args.function_id = function_id(args.function)
    args.event_data = read_event(args.event)
    check_event(args.function_id, args.event_data)
    if args.source:
        parse_source_url(args.source)
    if args.target:
        parse_target_url(args.target)


def cmd_invoke(args: argparse.Namespace) -> int:
    if not hasattr(args, "event_data"):
        check_invoke(args)
    function, event = args.function_id, args.event_data
    source, target = _endpoints(args)
    stack = _stack(args.home, source, target)
    try:
        if function == "WorkerFunction":
            _seed_ledger_for(event)
        if function == "RotationFunction":
            event = _start_local_rotation(event)
        result = stack.invoke(function, event)
    except BadInputError:  # refused by the handler (a run that does not exist...): one line, exit 2
        raise
    except Exception as e:  # what Lambda would report as the invocation's error
        print(json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}, indent=2))
        print(f"handler logs: {stack.log_path}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print(json.dumps(result, indent=2, default=str))
    if isinstance(result, dict) and result.get("batchItemFailures"):  # records failed: their errors are logged
        print(f"records failed; their errors are in the handler logs: {stack.log_path}", file=sys.stderr)
        return 1
    return 0


def _start_local_rotation(event: dict[str, Any]) -> dict[str, Any]:
    """A sample rotation event names a secret in some AWS account: point it at the local secret of
    the same name (``replication/source`` or ``replication/target``) and, for ``createSecret``,
    start the rotation as Secrets Manager does (rotation enabled, the token staged AWSPENDING;
    moto cannot invoke the function itself, which is the error ignored here)."""
    import boto3
    from botocore.exceptions import ClientError

    secret_id = str(event.get("SecretId", ""))
    name = secret_id.split(":secret:", 1)[-1]
    if ":secret:" in secret_id and len(name) > 7 and name[-7] == "-":
        name = name[:-7]  # the six random characters AWS appends to a secret's ARN
    sm = boto3.client("secretsmanager")
    try:
        arn = sm.describe_secret(SecretId=name)["ARN"]
    except ClientError:
        raise BadInputError(
            f"no local secret named {name!r}; the local stack has replication/source and replication/target"
        ) from None
    token = str(event.get("ClientRequestToken", ""))
    if event.get("Step") == "createSecret" and token not in sm.describe_secret(SecretId=arn).get(
        "VersionIdsToStages", {}
    ):
        try:
            sm.rotate_secret(
                SecretId=arn,
                ClientRequestToken=token,
                RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:local-rotation",
                RotationRules={"AutomaticallyAfterDays": 30},
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
    return {**event, "SecretId": arn}


def _seed_ledger_for(event: dict[str, Any]) -> None:
    """A sample worker event names a run the local ledger has never seen: record it as the scheduler would."""
    from aurora_replication.config import load_settings
    from aurora_replication.ledger.store import StateStore
    from aurora_replication.models import ChunkMessage
    from aurora_replication.pipeline.worker import parse_message

    state = StateStore(load_settings().state_table)
    for record in event.get("Records", []):
        try:
            msg = parse_message(record["body"])
        except (BadInputError, KeyError):
            continue  # the handler reports it
        if not isinstance(msg, ChunkMessage):
            continue  # a reference: its run is in the ledger or nowhere
        if not state.get_table(msg.run_id, msg.plan.table):
            state.create_run(msg.run_id, msg.plan.mode, [msg.plan.table], {"sample": True})
            state.record_table(
                msg.run_id,
                msg.plan.table,
                status="running",
                mode=msg.plan.mode,
                plan=msg.plan.model_dump(mode="json"),
                chunk_count=msg.chunk_count,
                window_to=msg.window_to,
            )


def cmd_demo(args: argparse.Namespace) -> int:
    from aurora_replication_dev.local import demo
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    print("starting MariaDB and the Snowflake emulator...", file=sys.stderr)
    db = MariaDB(args.home / "mariadb").start()
    sf = SnowflakeEmulator(args.home / "snowflake").start()
    conn = db.connect()
    print(f"loading the demo dataset ({args.rows:,} orders)...", file=sys.stderr)
    counts = demo.load(conn, args.rows)
    print("source tables: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()), file=sys.stderr)
    (args.home / "state.json").unlink(missing_ok=True)  # a fresh dataset starts with no watermarks
    stack = _stack(args.home, db.url(), sf.url())
    ok = True
    try:
        _drop_demo_targets(counts)  # and an empty target: an earlier demo's tables would not match it
        progress = Progress()
        sizing = {"chunk_rows": args.chunk_rows} if args.chunk_rows else {}
        # every table but the one the cdc part keeps in history mode (docs/run-requests.md#history-mode)
        tables = ",".join(t for t in counts if t != demo.HISTORY_TABLE)
        full = stack.run({"tables": tables, "mode": "full", **sizing}, workers=args.workers, progress=progress)
        progress.close()
        print_summary(full, "\n== full replication ==")
        ok = ok and full.ok
        changed = demo.change_some_rows(conn, args.rows)
        print(f"\nchanged source rows: {changed['updated']} updated, {changed['inserted']} inserted", file=sys.stderr)
        progress = Progress()
        inc = stack.run({"tables": tables, "mode": "auto", **sizing}, workers=args.workers, progress=progress)
        progress.close()
        print_summary(inc, "\n== incremental replication (auto mode) ==")
        ok = ok and inc.ok
        ok = _demo_cdc(stack, conn, args) and ok
    finally:
        stack.stop()
        conn.close()
    print(f"\nMariaDB: {db.url()}\nSnowflake emulator: {sf.url()}")
    return 0 if ok else 1


def human_age(seconds: Any) -> str:
    """``93 s``, ``12 min``, ``3.4 h``, ``2.9 years``: an age a person reads at a glance."""
    if not isinstance(seconds, int | float):
        return "-"
    s = float(seconds)
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600), (31536000, "days", 86400)):
        if s < limit:
            return f"{s / size:.0f} {unit}" if unit in ("s", "min") else f"{s / size:.1f} {unit}"
    return f"{s / 31536000:.1f} years"


def _demo_cdc(stack: Any, conn: Any, args: argparse.Namespace) -> bool:
    """The demo's change data capture: an initial copy of the tables with a key, then their binlog
    changes (updates, inserts, deletes, a key change) applied by a cdc run."""
    from aurora_replication_dev.local import demo

    tables = ",".join([*demo.CDC_TABLES, demo.HISTORY_TABLE])
    history = {demo.HISTORY_TABLE: {"history": True}}
    first = stack.run({"tables": tables, "mode": "cdc", "table_options": history}, workers=args.workers)
    print_summary(first, "\n== change data capture: initial copy (binlog position recorded first) ==")
    changed = demo.change_for_cdc(conn, args.rows)
    print(
        f"\nchanged source rows: {changed['updated']} updated, {changed['inserted']} inserted, "
        f"{changed['deleted']} deleted",
        file=sys.stderr,
    )
    progress = Progress()
    second = stack.run(
        {"tables": tables, "mode": "cdc", "table_options": history}, workers=args.workers, progress=progress
    )
    progress.close()
    print_summary(second, "\n== change data capture: the binlog's changes, deletes included ==")
    _print_versions(demo.HISTORY_TABLE.upper(), ("DE", "CI"))
    return bool(first.ok and second.ok)


def _drop_demo_targets(tables: Iterable[str]) -> None:
    """The demo's target tables (and the history table's current view) an earlier demo left in the
    emulator, dropped: the demo loads a fresh dataset and forgets its watermarks and cdc positions, so its
    target starts empty too (a history table left by an earlier demo is one cdc must not continue)."""
    from aurora_replication.config import load_settings
    from aurora_replication.identifiers import snowflake_ident as q
    from aurora_replication.identifiers import target_name
    from aurora_replication.services import Services
    from aurora_replication.target.snowflake.statements import execute

    settings = load_settings()
    conn = Services.from_settings(settings).connections.snowflake()
    try:
        for table in tables:
            name = target_name(table, settings.identifier_case)
            execute(conn, f"DROP VIEW IF EXISTS {q(name + '_CURRENT')}")
            execute(conn, f"DROP TABLE IF EXISTS {q(name)}")
    finally:
        conn.close()


def _print_versions(table: str, keys: tuple[str, ...]) -> None:
    """The demo's history table: the versions of a few keys (history mode, type-2)."""
    from aurora_replication.config import load_settings
    from aurora_replication.identifiers import snowflake_ident as q
    from aurora_replication.services import Services
    from aurora_replication.target.snowflake.statements import execute

    conn = Services.from_settings(load_settings()).connections.snowflake()
    try:
        rows = execute(
            conn,
            f'SELECT "CODE", "NAME", "_ASR_OP", "_ASR_VALID_FROM", "_ASR_VALID_TO", "_ASR_IS_CURRENT" FROM {q(table)} '  # noqa: S608 (the demo's table, quoted)
            'WHERE "CODE" IN (%s, %s) ORDER BY "CODE", "_ASR_POS"',
            list(keys),
        )
    finally:
        conn.close()
    print(f"\n== history mode: versions in {table} (its current rows: the view {table}_CURRENT) ==")
    print(f"{'code':<5} {'name':<30} {'op':<3} {'valid from':<20} {'valid to':<20} current")
    for code, name, op, valid_from, valid_to, current in rows:
        print(f"{code:<5} {name:<30} {op:<3} {str(valid_from)[:19]:<20} {str(valid_to or '-')[:19]:<20} {current}")


def print_status(result: dict[str, Any]) -> None:
    print(f"{'check':<20} {'ok':<4} detail")
    for name, check in result["checks"].items():
        print(f"{name:<20} {'yes' if check['ok'] else 'NO':<4} {check.get('detail', '')}")
    tables = result["checks"].get("replication", {}).get("tables", {})
    if tables:
        # lag = freshness: how old the newest source state is that the target is known to reflect;
        # newest row = the age of the newest watermark value copied (how recently the table changed)
        print(
            f"\n{'table':<24} {'status':<10} {'last run':<28} {'rows':>10} {'lag':>10} {'fresh as of':<21} "
            f"{'newest row':>11}  watermark"
        )
        for name, t in sorted(tables.items()):
            status = str(t.get("status", "-")) + (" +running" if t.get("running_run") else "")
            print(
                f"{name:<24} {status:<10} {str(t.get('last_run', '-')):<28} "
                f"{str(t.get('rows', '-')):>10} {human_age(t.get('lag_seconds')):>10} "
                f"{str(t.get('source_as_of', '-')):<21} {human_age(t.get('newest_row_age_seconds')):>11}  "
                f"{t.get('watermark', '-')}"
            )
        print("lag: the age of the newest source state the target is known to reflect (its last validated run)")
        changed = [(name, c) for name, t in sorted(tables.items()) for c in t.get("schema_changes") or []]
        if changed:
            print(f"\n{'table':<24} {'schema change':<16} {'column':<24} {'at':<21} run")
            for name, c in changed:
                at = datetime.fromtimestamp(float(c.get("at") or 0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                print(f"{name:<24} {str(c.get('change')):<16} {str(c.get('column')):<24} {at:<21} {c.get('run')}")
    stalled = result["checks"].get("replication", {}).get("stalled_runs", [])
    if stalled:
        print(f"\n{'stalled run':<28} {'table':<24} {'chunks done':>12} {'idle s':>8}  resume with")
        for x in stalled:
            print(
                f"{x['run_id']:<28} {str(x['table']):<24} {x['chunks_done']:>5} of {x['chunks']:<5} "
                f"{x['idle_seconds']:>8}  replicate resume {x['run_id']}"
            )
    print("\nHEALTHY" if result["healthy"] else f"\nUNHEALTHY: {', '.join(result['failing'])}")


def cmd_status(args: argparse.Namespace) -> int:
    source, target = _endpoints(args)
    stack = _stack(args.home, source, target)
    try:
        result = stack.invoke("HealthFunction", {})
    finally:
        stack.stop()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_status(result)
    return 0 if result["healthy"] else 1


def cmd_redrive(args: argparse.Namespace) -> int:
    """Move dead-lettered messages back and, locally, drive workers until their runs finish."""
    from aurora_replication.ops.redrive import redrive

    source, target = _endpoints(args)
    stack = _stack(args.home, source, target)
    ok = True
    try:
        moved = redrive(stack.sqs, stack.dlq_url, stack.queue_url)
        print(f"redrive ({moved['method']}): {moved['moved']} message(s) moved back to the chunk queue")
        for run_id in moved["run_ids"]:
            progress = Progress()
            try:
                outcome = stack.drain(run_id, workers=args.workers, progress=progress)
            except KeyboardInterrupt:
                progress.close()
                raise Interrupted(run_id) from None
            progress.close()
            print_summary(outcome, f"\n== run {run_id} after redrive ==")
            ok = ok and outcome.ok
    finally:
        stack.stop()
    return 0 if ok else 1


def cmd_validate(args: argparse.Namespace) -> int:
    """Compare every table (or the ones named) in MySQL and Snowflake now, and print a report."""
    from aurora_replication.config import load_settings
    from aurora_replication.models import RunRequest
    from aurora_replication.pipeline.validate import validate_databases, validate_tables
    from aurora_replication.services import Services

    # the same validation as a run request
    request = RunRequest(
        tables=args.tables,
        databases=args.databases,
        database_mapping=args.database_mapping if args.databases else None,
    )
    source, target = _endpoints(args)
    stack = _stack(args.home, source, target)
    try:
        services = Services.from_settings(load_settings())
        if request.databases is not None and request.database_mapping is not None:
            report = validate_databases(services, request.tables, request.databases, request.database_mapping)
        else:
            report = validate_tables(services, request.tables)
    finally:
        stack.stop()
    cols = ["table", "target", "source_rows", "target_rows", "source_checksum", "target_checksum", "result"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in report)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in report:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    for r in report:
        for key_range in r.get("differing_ranges", []):
            print(f"{r['table']}: differs in {key_range}")
        for difference in r.get("differences", []):
            print(f"{r['table']}: {difference}")
        if r.get("not_compared"):
            print(f"{r['table']}: not compared (cast columns): {', '.join(r['not_compared'])}")
    return 0 if all(r["result"] == "ok" for r in report) else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from aurora_replication_dev.local.services import MariaDB, SnowflakeEmulator

    MariaDB(args.home / "mariadb").stop()
    SnowflakeEmulator(args.home / "snowflake").stop()
    return 0


def _endpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", help="source URL (default: the local MariaDB of the demo)")
    parser.add_argument("--target", help="target URL (default: the local Snowflake emulator)")


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as one line (what, the value, where help is) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def whole_number(minimum: int) -> Callable[[str], int]:
    """A flag's integer, strictly: digits only (not ``1.5``, `` 5`` or ``1_000``, which ``int`` takes)."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]+", text) or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {minimum}")
        return int(text)

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def run_id_arg(text: str) -> str:
    from aurora_replication.models import RUN_ID_PATTERN

    if not RUN_ID_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id (1-64 letters, digits, '-' or '_'; `replicate status` lists stalled runs)"
        )
    return text


def seconds_arg(text: str) -> float:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    from aurora_replication.models import Mode

    p = _Parser(prog="replicate", description=(__doc__ or "").split("\n", 1)[0], epilog=EPILOG)
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="local state directory (default: .local)")
    p.add_argument(
        "--lock-wait",
        type=seconds_arg,
        default=0.0,
        metavar="SECONDS",
        help="when another command uses the same --home, wait this long for it before giving up (default 0: exit 75)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of an error too")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="replicate tables through the real handlers over the local stack")
    r.add_argument("--source", required=True, help="mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?tls=true]")
    r.add_argument(
        "--target",
        required=True,
        help="snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA[?host=H&port=P&protocol=http]",
    )
    r.add_argument("--tables", default="*", help="comma-separated table names, or * (default)")
    r.add_argument(
        "--mode",
        default="auto",
        choices=list(get_args(Mode)),
        help="auto: incremental where a watermark exists; reconcile: remove rows deleted in MySQL; "
        "cdc: apply the binlog's changes since the last run (the first run copies the table)",
    )
    r.add_argument(
        "--resnapshot", action="store_true", help="with --mode cdc: a new initial copy, from a new binlog position"
    )
    r.add_argument(
        "--databases",
        default=None,
        help="several source databases of the server, comma-separated names or patterns with * and ? (a run each)",
    )
    r.add_argument(
        "--database-mapping",
        choices=["schema", "prefix", "merge"],
        default="schema",
        help="with --databases: a Snowflake schema per database, one schema with '<database>__' before table names, "
        "or one table per source table holding every database's rows (_ASR_SOURCE_DATABASE)",
    )
    r.add_argument(
        "--start-position",
        choices=["snapshot", "now"],
        default=None,
        help="with --mode cdc: where a new table starts (now: streaming from the position now, no initial copy)",
    )
    r.add_argument(
        "--follow-seconds",
        type=whole_number(1),
        default=None,
        help="with --mode cdc: read binlog windows back to back for about this many seconds (docs/cdc.md)",
    )
    r.add_argument("--workers", type=whole_number(1), default=2)
    r.add_argument("--chunk-rows", type=whole_number(1), default=None, help="rows per chunk (1 - 10000000)")
    r.add_argument("--json", help="also write the summary to this file as JSON")
    r.add_argument("--report", metavar="FILE.html", help="also write the run's HTML report (tables, timeline)")
    r.set_defaults(func=cmd_run, check=check_run)

    rp = sub.add_parser("report", help="write the HTML report of a run: tables, validation, a timeline of chunks")
    rp.add_argument("run_id", type=run_id_arg)
    rp.add_argument("--out", metavar="FILE.html", help="where to write it (default: run-RUN_ID.html)")
    rp.add_argument(
        "--state-table", help="read a deployed stack's DynamoDB table (AWS credentials and region from the environment)"
    )
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("cost", help="what a run cost per table and service (estimate; docs/cost.md)")
    c.add_argument("run_id", type=run_id_arg)
    c.add_argument(
        "--reconcile",
        action="store_true",
        help="first read the credits Snowflake attributed to the run's query tags (ACCOUNT_USAGE, hours later)",
    )
    c.add_argument(
        "--state-table", help="read a deployed stack's DynamoDB table (AWS credentials and region from the environment)"
    )
    _endpoint_options(c)
    c.set_defaults(func=cmd_cost)

    i = sub.add_parser("invoke", help="run one handler with a sample event, as `sam local invoke -e` would")
    i.add_argument("function", help="scheduler | worker (or the template's logical id)")
    i.add_argument("event", help="path to the event JSON, e.g. events/scheduler.json")
    _endpoint_options(i)
    i.set_defaults(func=cmd_invoke, check=check_invoke)

    d = sub.add_parser("demo", help="start MariaDB and the emulator, load sample data, run full then incremental")
    d.add_argument("--rows", type=whole_number(1), default=200_000, help="orders in the sample dataset")
    d.add_argument("--workers", type=whole_number(1), default=2)
    d.add_argument(
        "--chunk-rows",
        type=whole_number(0),
        default=50_000,
        help="rows per chunk (default 50000, so the workers share the big tables; 0: sized from "
        "each table's row width, CHUNK_TARGET_MB)",
    )
    d.set_defaults(func=cmd_demo)

    st = sub.add_parser("status", help="the health report (connectivity, queues, last run and lag per table)")
    _endpoint_options(st)
    st.add_argument("--json", action="store_true", help="print the report as JSON")
    st.set_defaults(func=cmd_status)

    rd = sub.add_parser("redrive", help="move dead-lettered chunk messages back to the queue and finish their runs")
    _endpoint_options(rd)
    rd.add_argument("--workers", type=whole_number(1), default=2)
    rd.set_defaults(func=cmd_redrive)

    rs = sub.add_parser("resume", help="resume a stalled run: send its missing chunks again, not the done ones")
    rs.add_argument("run_id", type=run_id_arg)
    _endpoint_options(rs)
    rs.add_argument("--workers", type=whole_number(1), default=2)
    rs.set_defaults(func=cmd_resume)

    v = sub.add_parser("validate", help="compare row counts and checksums of MySQL and Snowflake now")
    _endpoint_options(v)
    v.add_argument("--tables", default="*", help="comma-separated table names, or * (default)")
    v.add_argument("--databases", default=None, help="as for run: each database's tables against where it is copied")
    v.add_argument("--database-mapping", choices=["schema", "prefix", "merge"], default="schema", help="as for run")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("stop", help="stop the local MariaDB and Snowflake emulator")
    s.set_defaults(func=cmd_stop)
    return p


def _log_to_file(home: Path) -> logging.Handler:
    """Library log records and warnings of the CLI itself go to the log file, not the terminal."""
    path = home / "logs" / "handlers.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.captureWarnings(True)
    return handler


def _log_traceback(handler: logging.Handler) -> None:
    handler.acquire()
    try:
        stream = getattr(handler, "stream", None)
        if stream is not None:
            stream.write(traceback.format_exc())
            stream.flush()
    finally:
        handler.release()


def _uses_home_state(args: argparse.Namespace) -> bool:
    """Whether the command reads and writes the local state file (then it holds the home's lock)."""
    return args.command != "stop" and not getattr(args, "state_table", None)


def main(argv: list[str] | None = None) -> int:
    from aurora_replication_dev.local import home_lock

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a bad flag (one line on stderr, exit 2), or --help (0)
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    handler = _log_to_file(args.home)
    log = args.home / "logs" / "handlers.log"
    try:
        if getattr(args, "check", None) is not None:  # bad input is exit 2 before the lock or any server
            args.check(args)
        if _uses_home_state(args):
            notify = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            with home_lock.held(args.home, f"replicate {args.command}", args.lock_wait, notify):
                return int(args.func(args))
        return int(args.func(args))
    except BadInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except HomeInUseError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(e.line(), file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EndpointError as e:  # one line: what was tried, what went wrong, what to check
        _log_traceback(handler)
        if args.verbose:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a person sees one line; the traceback is in the log
        _log_traceback(handler)
        if args.verbose:
            traceback.print_exc()
        print(f"error: unexpected {type(e).__name__}: {e} (traceback in {log}; --verbose prints it)", file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        logging.getLogger().removeHandler(handler)
        logging.captureWarnings(False)
        handler.close()


if __name__ == "__main__":
    raise SystemExit(main())
