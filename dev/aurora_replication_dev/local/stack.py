"""The local stack: moto (SQS, DynamoDB, Secrets Manager) built from ``template.yaml``, the real
handlers, and worker containers (threads, or processes: ``local/containers.py``) that poll the
queue as the SQS event source mapping does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3

from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.runs import RunItem, every_table_published
from aurora_replication.ledger.status import is_terminal
from aurora_replication_dev.local import containers, home_lock, interrupts
from aurora_replication_dev.local.containers import HANDLER_MODULE, REGION, LocalContext
from aurora_replication_dev.local.services import free_port
from aurora_replication_dev.local.template import Template

PROGRESS_SECONDS = 1.0  # how often run() passes the whole run to its progress callback
CONTAINER_STARTS = 3  # a process container that keeps exiting by itself is started this often, then given up
VISIBILITY_PER_TIMEOUT = 6  # the chunk queue's visibility timeout over the worker's (template.yaml; AWS's advice)


def find_template(start: Path | None = None) -> Path:
    env = os.environ.get("REPLICATE_TEMPLATE")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for base in [start or Path.cwd(), *here.parents]:
        if (base / "template.yaml").exists() and (base / "functions").is_dir():
            return base / "template.yaml"
    raise FileNotFoundError("template.yaml not found: run from the project directory or set REPLICATE_TEMPLATE")


def parse_source_url(url: str) -> dict[str, Any]:
    """A ``mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?tls=true|false]`` URL as an RDS-shaped secret (no
    password: a user without one). TLS follows the secret's rule (on, except for loopback hosts) unless
    ``tls`` says otherwise."""
    shape = "mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?tls=true]"
    u = urlparse(url)
    if u.scheme not in ("mysql", "mariadb") or not u.hostname or not u.path.strip("/"):
        raise BadInputError(f"source must look like {shape}, got {_without_password(url)!r}")
    if not u.username:
        raise BadInputError(f"source URL names no user: {shape}")
    try:
        port = u.port or 3306
    except ValueError:
        raise BadInputError(f"source URL has an invalid port: {_without_password(url)!r}") from None
    secret: dict[str, Any] = {
        "engine": "mysql",
        "host": u.hostname,
        "port": port,
        "username": unquote(u.username),
        "password": unquote(u.password or ""),
        "dbname": unquote(u.path.strip("/")),
    }
    tls = parse_qs(u.query).get("tls")
    if tls:
        secret["tls"] = tls[0]
    return secret


def _without_password(url: str) -> str:
    u = urlparse(url)
    if u.password is None:
        return url
    return u._replace(netloc=u.netloc.replace(f":{u.password}@", ":***@", 1)).geturl()


def parse_target_url(url: str) -> dict[str, Any]:
    u = urlparse(url)
    parts = [p for p in u.path.split("/") if p]
    if u.scheme != "snowflake" or not u.hostname or len(parts) != 2:
        raise BadInputError(
            "target must look like snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA"
            "[?host=HOST&port=PORT&protocol=http&role=ROLE&warehouse=WH]"
        )
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    secret: dict[str, Any] = {
        "account": u.hostname,
        "user": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "database": unquote(parts[0]),
        "schema": unquote(parts[1]),
    }
    for key in ("host", "port", "protocol", "role", "warehouse"):
        if q.get(key):
            secret[key] = q[key]
    return secret


@dataclass
class RunOutcome:
    run_id: str
    run: RunItem
    seconds: float
    dlq_messages: int
    # what each table's work cost in the run, as measured (cost/ledger.py; cost/estimate.py prices it)
    cost: dict[str, dict[str, Any]] = field(default_factory=dict)
    # with process containers: the largest peak resident memory of one worker container, in MB
    worker_peak_mb: float | None = None
    # a request of several source databases: the run of each (in the scheduler's order), this one the last
    runs: dict[str, RunOutcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        if self.runs and not all(r is self or r.ok for r in self.runs.values()):
            return False
        return every_table_published(self.run) and not self.dlq_messages


CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
ADMIN_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
# one handler module is imported at a time: the process environment holds its function's credentials then
_COLD_START = threading.Lock()


class _QuietTerminal:
    """While a stack runs, what the handlers print (EMF metric lines, Powertools log lines), library
    warnings (``warnings.warn``) and library log records go to the stack's log file, as they would
    go to CloudWatch Logs; the terminal keeps what the CLI itself prints (progress bar, summary).

    Output is routed by thread: the main thread between handler calls and any other code keeps the
    real stdout; a thread inside ``handler_output()`` (an invocation, a worker thread) writes to the log.
    """

    _local = threading.local()

    def __init__(self, log: Any) -> None:
        self.log = log
        self.stdout: Any = sys.stdout  # kept after uninstall: a logger bound to this router still writes
        self.installed = False
        self._showwarning: Any = None
        self._handler = logging.StreamHandler(log)
        self._handler.setLevel(logging.WARNING)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    # the file-like object that replaces sys.stdout
    def write(self, text: str) -> int:
        target = self.log if self.installed and getattr(self._local, "handler", False) else self.stdout
        if getattr(target, "closed", False):  # a stream of a stack (or a captured test output) that is gone
            target = sys.__stdout__
        return int(target.write(text) or 0)

    def flush(self) -> None:
        for stream in (self.log, self.stdout):
            if not getattr(stream, "closed", False):
                stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno ... of the real stdout
        return getattr(self.stdout, name)

    @contextlib.contextmanager
    def handler_output(self) -> Iterator[None]:
        previous = getattr(self._local, "handler", False)
        self._local.handler = True
        try:
            yield
        finally:
            self._local.handler = previous

    def _warn(
        self, message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        self.log.write(warnings.formatwarning(message, category, filename, lineno, line))

    def install(self) -> None:
        if self.log is sys.stdout:  # REPLICATE_LOG_STDOUT: everything on stdout, nothing to route
            return
        if self.installed:
            return
        self.stdout = sys.stdout
        self.installed = True
        sys.stdout = self
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warn
        logging.getLogger().addHandler(self._handler)

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        if sys.stdout is self:
            sys.stdout = self.stdout
        warnings.showwarning = self._showwarning
        logging.getLogger().removeHandler(self._handler)


@dataclass
class FunctionRuntime:
    """One function as the stack made it: its name, role, environment, and its role's credentials."""

    logical: str
    name: str
    env: dict[str, str]
    role_arn: str | None = None
    credentials: dict[str, str] | None = None


@dataclass
class EventSource:
    """The worker's SQS event source mapping, as the template defines it."""

    batch_size: int = 10
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None


class LocalStack:
    """moto in-process on a loopback port; the resources made by creating the template as a
    CloudFormation stack in moto (``local/cloudformation.py``), or, without SAM's translator, built
    from a reading of the template (``provisioned_by`` says which); the real handlers, each imported
    with its own function's environment and its role's credentials, with moto enforcing IAM.

    ``parameters``: template parameters of the stack (the secrets' ARNs are given). ``enforce_iam``:
    moto checks every call against the caller's policies (its function's role; the local stack's own
    calls and ``ambient`` credentials, the process environment's, are another user: ``admin`` may do
    anything, ``none`` nothing, which shows any client a handler makes after its cold start).
    ``visibility_timeout``: the chunk queue's, overridden (the time a crashed invocation's message
    stays in flight; tests of crashes shorten it, everything else keeps the template's). The worker's
    deadline (its context's remaining time) shrinks with it (``function_timeout``).
    """

    def __init__(
        self,
        home: Path,
        template: Path | None = None,
        parameters: dict[str, str] | None = None,
        enforce_iam: bool = True,
        ambient: str = "admin",
        visibility_timeout: int | None = None,
    ) -> None:
        if ambient not in ("admin", "none"):
            raise BadInputError(f"ambient credentials are 'admin' or 'none', not {ambient!r}")
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.template = Template(template or find_template())
        self.parameters = dict(parameters or {})
        self.enforce_iam = enforce_iam
        self.ambient = ambient
        self.visibility_timeout = visibility_timeout
        self.server: Any = None
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.functions: dict[str, FunctionRuntime] = {}
        self.event_source = EventSource()
        self.provisioned_by = ""
        self.cloudformation: Any = None  # the moto stack (cloudformation.Stack), when it made the resources
        self.iam_decisions: list[Any] = []
        self.access_keys: dict[str, str] = {}  # access key id -> whose (a function, harness, ambient)
        self.function_errors: dict[str, list[str]] = {}  # invocations that failed, per function
        self.container_results: list[dict[str, Any]] = []  # what each process container reported (drive_workers)
        self.timed_out: list[float] = []  # when a process container's invocation was ended at its deadline
        self._modules = 0
        self.log_path = self.home / "logs" / "handlers.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # line-buffered: the CLI's own log records and the handlers' lines interleave whole
        self.log: Any = (
            sys.stdout if os.environ.get("REPLICATE_LOG_STDOUT") else open(self.log_path, "a", buffering=1)  # noqa: SIM115
        )
        self.quiet = _QuietTerminal(self.log)
        self._locked = False  # this stack holds the home's lock (local/home_lock.py)
        self._state_loaded = False  # the state file is in moto whole: only then is it written back

    # ---- lifecycle -------------------------------------------------------------------------
    def start(
        self, source_secret: dict[str, Any], target_secret: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        from aurora_replication_dev.local import cloudformation, moto_server

        # one command at a time per home: the state file is read here and written back by stop()
        home_lock.acquire(self.home, "a local stack")
        self._locked = True
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.quiet.install()
        moto_server.install_iam_patches()
        moto_server.install_query_patch()
        moto_server.install_module_list_cache()
        moto_server.install_update_expression_cache()
        moto_server.install_sqs_patches()
        moto_server.install_transaction_patch()
        port = free_port()
        self.server = moto_server.SerialisedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        self._set_auth(float("inf"))
        # moto keeps its backends per process: start from nothing, as a fresh account would
        self._moto_api("reset")
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            }
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        boto3.DEFAULT_SESSION = None  # a session of an earlier stack keeps the credentials it read
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
        os.environ.setdefault("WORK_DIR", str(self.home / "work"))
        self.session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION
        )
        secrets = self.session.client("secretsmanager")
        src = secrets.create_secret(Name="replication/source", SecretString=json.dumps(source_secret))["ARN"]
        tgt = secrets.create_secret(Name="replication/target", SecretString=json.dumps(target_secret))["ARN"]
        if cloudformation.translator_available() and not os.environ.get("REPLICATE_STACK_FROM_TEMPLATE"):
            self._provision_with_cloudformation(src, tgt)
        else:
            self._provision_from_template(src, tgt)
        self.sqs = self.session.client("sqs")
        self.dynamodb = self.session.client("dynamodb")
        if self.visibility_timeout is not None:
            self.sqs.set_queue_attributes(
                QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": str(self.visibility_timeout)}
            )
            self._note(f"chunk queue VisibilityTimeout overridden: {self.visibility_timeout} s")
        self._load_state()
        os.environ.update(self._environment())
        os.environ.update(env or {})
        for runtime in self.functions.values():
            runtime.env.update(env or {})
        if self.enforce_iam and self.provisioned_by == "cloudformation":
            self._enforce_iam()
        from aws_lambda_powertools.utilities.parameters import base as parameters_base

        from aurora_replication.config import load_settings

        load_settings.cache_clear()
        parameters_base.DEFAULT_PROVIDERS.clear()  # their clients point at an earlier endpoint

    def _moto_api(self, path: str, body: bytes = b"") -> None:
        url = f"{self.endpoint}/moto-api/{path}"
        # text/plain: a form content type would have the body parsed away before moto reads it
        headers = {"Content-Type": "text/plain"}
        request = urllib.request.Request(url, data=body or None, headers=headers, method="POST")  # noqa: S310
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback http

    def _set_auth(self, after_requests: float) -> None:
        """moto checks IAM after this many more requests (inf: never). Process-wide in moto."""
        self._moto_api("reset-auth", str(after_requests).encode())

    def _note(self, text: str) -> None:
        print(f"local stack: {text}", file=self.log, flush=True)

    def _provision_with_cloudformation(self, source_arn: str, target_arn: str) -> None:
        from aurora_replication_dev.local import cloudformation

        parameters = {"SourceSecretArn": source_arn, "TargetSecretArn": target_arn, **self.parameters}
        stack = cloudformation.create_in_moto(self.session, self.template.path, parameters)
        self.cloudformation = stack
        self.provisioned_by = "cloudformation"
        self.queue_url = stack.outputs["ChunkQueueUrl"]
        self.dlq_url = stack.outputs["DeadLetterQueueUrl"]
        self.table_name = stack.outputs["StateTableName"]
        self.queue_arn = stack.outputs["ChunkQueueArn"]
        lam = self.session.client("lambda")
        for logical, body in stack.template["Resources"].items():
            if body["Type"] != "AWS::Lambda::Function":
                continue
            cfg = lam.get_function_configuration(FunctionName=stack.physical[logical])
            env = {k: str(v) for k, v in cfg.get("Environment", {}).get("Variables", {}).items()}
            self.functions[logical] = FunctionRuntime(logical, cfg["FunctionName"], env, cfg.get("Role"))
        for body in stack.resolved["Resources"].values():
            props = body.get("Properties", {})
            if body["Type"] == "AWS::Lambda::EventSourceMapping" and "ChunkQueue" in json.dumps(
                props.get("EventSourceArn")
            ):
                concurrency = stack.value(props.get("ScalingConfig", {}).get("MaximumConcurrency"))
                self.event_source = EventSource(
                    batch_size=int(stack.value(props.get("BatchSize", 10))),
                    report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    maximum_concurrency=int(concurrency) if concurrency is not None else None,
                )
        self._note(
            "resources made by a CloudFormation stack in moto; not made: "
            + "; ".join(f"{k} ({v})" for k, v in sorted(stack.not_created.items()))
        )

    def _provision_from_template(self, source_arn: str, target_arn: str) -> None:
        """The fallback without SAM's translator: the queues and the table from a reading of the
        template (no roles: IAM is not enforced, and the log says so)."""
        self.provisioned_by = "template"
        dlq_name = self.template.dead_letter_queue_of("ChunkQueue")
        sqs = self.session.client("sqs")
        dlq_url = sqs.create_queue(QueueName="chunk-dlq", Attributes=self.template.queue_attributes(dlq_name))[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs = self.template.queue_attributes("ChunkQueue", self.parameters)
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.template.max_receive_count("ChunkQueue")}
        )
        self.queue_url = sqs.create_queue(QueueName="chunks", Attributes=attrs)["QueueUrl"]
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.dlq_url = dlq_url
        self.table_name = "replication-state"
        self.session.client("dynamodb").create_table(
            TableName=self.table_name, **self.template.table_definition("StateTable")
        )
        ttl = self.template.resource("StateTable").get("TimeToLiveSpecification")
        if ttl:
            self.session.client("dynamodb").update_time_to_live(TableName=self.table_name, TimeToLiveSpecification=ttl)
        env = {
            **self.template.literal_environment(),
            "STATE_TABLE": self.table_name,
            "CHUNK_QUEUE_URL": self.queue_url,
            "DLQ_URL": self.dlq_url,
            "SOURCE_SECRET_ARN": source_arn,
            "TARGET_SECRET_ARN": target_arn,
        }
        for name, body in self.template.doc["Resources"].items():
            if body.get("Type") == "AWS::Serverless::Function":
                self.functions[name] = FunctionRuntime(name, name, dict(env))
        event = self.template.sqs_event("WorkerFunction")
        self.event_source = EventSource(
            batch_size=int(self.template.resolve(event.get("BatchSize", 10))),
            report_batch_item_failures="ReportBatchItemFailures" in event.get("FunctionResponseTypes", []),
            maximum_concurrency=int(
                self.template.resolve(event.get("ScalingConfig", {}).get("MaximumConcurrency")) or 0
            )
            or None,
        )
        self._note(
            "SAM's translator (aws-sam-translator) is not installed: queues and table built from a reading of "
            "template.yaml; no roles, IAM not enforced"
        )

    def _environment(self) -> dict[str, str]:
        """The handlers share one process, so one environment: every function's, which must agree."""
        merged: dict[str, str] = {}
        for runtime in self.functions.values():
            for key, value in runtime.env.items():
                if merged.get(key, value) != value:
                    raise BadInputError(
                        f"functions disagree on {key} ({merged[key]!r} vs {value!r}); the local stack runs every "
                        "handler in one process with one environment"
                    )
                merged[key] = value
        return merged

    def _enforce_iam(self) -> None:
        """Users for the local stack and for the ambient credentials, each function's role assumed,
        then moto checks every request."""
        from aurora_replication_dev.local import moto_server

        iam = self.session.client("iam")
        sts = self.session.client("sts")

        def user(name: str, admin: bool) -> dict[str, str]:
            iam.create_user(UserName=name)
            if admin:
                iam.put_user_policy(UserName=name, PolicyName="everything", PolicyDocument=ADMIN_POLICY)
            key = iam.create_access_key(UserName=name)["AccessKey"]
            self.access_keys[key["AccessKeyId"]] = name
            return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

        harness = user("local-stack", admin=True)
        ambient = user(f"local-ambient-{self.ambient}", admin=self.ambient == "admin")
        for runtime in self.functions.values():
            if not runtime.role_arn:
                continue
            c = sts.assume_role(RoleArn=runtime.role_arn, RoleSessionName=runtime.name[:64])["Credentials"]
            runtime.credentials = {
                "AWS_ACCESS_KEY_ID": c["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                "AWS_SESSION_TOKEN": c["SessionToken"],
            }
            self.access_keys[c["AccessKeyId"]] = runtime.logical
        self.session = boto3.session.Session(
            aws_access_key_id=harness["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=harness["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self.sqs = self.session.client("sqs")
        self.dynamodb = self.session.client("dynamodb")
        os.environ.update(ambient)
        boto3.DEFAULT_SESSION = None
        self.iam_decisions = []
        moto_server.iam_decisions = self.iam_decisions
        self._set_auth(0)
        self._note(f"IAM enforced: handlers run as their roles; ambient credentials: {self.ambient}")

    def denied(self, who: str | None = None) -> list[Any]:
        """The requests moto refused (of one function's role, or everyone's)."""
        return [d for d in self.iam_decisions if not d.allowed and who in (None, self.access_keys.get(d.access_key))]

    def used(self, who: str) -> set[tuple[str, str]]:
        """(action, resource) of every request ``who`` (a function's logical id) made and was allowed."""
        return {
            (d.action, d.resource)
            for d in self.iam_decisions
            if d.allowed and self.access_keys.get(d.access_key) == who
        }

    def stop(self) -> None:
        from aurora_replication_dev.local import moto_server

        if self.server is not None:
            if self._state_loaded:  # a start that failed (or was interrupted) half-way has nothing to save
                with interrupts.deferred("saving the local state (state.json)"):
                    self._save_state()
            self._set_auth(float("inf"))
            moto_server.iam_decisions = None
            self.server.stop()
            self.server = None
            boto3.DEFAULT_SESSION = None
        self.quiet.uninstall()
        if self.log is not sys.stdout:
            self.log.flush()
        if self._locked:
            self._locked = False
            home_lock.release(self.home)

    # ---- state that persists between local runs (watermarks, run history) -------------------
    @property
    def _state_file(self) -> Path:
        return self.home / "state.json"

    def _save_state(self) -> None:
        items: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table_name):
            items.extend(i for i in page["Items"] if not i["pk"]["S"].startswith("idempotency#"))
        dead: list[str] = []
        while msgs := self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
        ).get("Messages", []):
            dead.extend(m["Body"] for m in msgs)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"items": items, "dead_letters": dead}))
        tmp.replace(self._state_file)

    def _load_state(self) -> None:
        if not self._state_file.exists():
            self._state_loaded = True
            return
        saved = json.loads(self._state_file.read_text())
        if isinstance(saved, list):  # the format of earlier versions: items only
            saved = {"items": saved}
        for item in saved.get("items", []):
            if item["pk"]["S"].startswith("TABLE#") and item["sk"]["S"] == "LEASE":
                continue  # leases belong to processes that are gone
            if "expiration" in item and int(item["expiration"]["N"]) < time.time():
                continue  # past its TTL: DynamoDB would have deleted it by now
            self.dynamodb.put_item(TableName=self.table_name, Item=item)
        for body in saved.get("dead_letters", []):  # the DLQ outlives the process, as in AWS
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=body)
        self._state_loaded = True

    # ---- handlers --------------------------------------------------------------------------
    def load_handler(self, function: str) -> Callable[..., Any]:
        """A fresh import of the function's app.py: one per simulated Lambda container."""
        return self.load_module(function).lambda_handler

    def load_module(self, function: str) -> ModuleType:
        """Import the function's app.py as its cold start does: with the function's environment and
        its role's credentials in the process environment, and no boto3 session from before, so the
        clients it makes then carry the role's credentials (as in Lambda, where they come from the
        environment too). A function the stack did not make runs with the ambient credentials."""
        path = self.template.function_dir(function) / "app.py"
        # named as Lambda imports it (``Handler: app.lambda_handler``; not put in sys.modules, so each
        # container has its own copy): Powertools keys idempotency records on the function's module and
        # name, so every container reads and writes the records of one key, as in Lambda
        spec = importlib.util.spec_from_file_location(HANDLER_MODULE, path)
        assert spec and spec.loader
        module: ModuleType = importlib.util.module_from_spec(spec)
        # Powertools loggers bind to sys.stdout when first created: point them at this stack's log file
        # (a logger configured by an earlier stack in this process keeps its handler: retarget it)
        service = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        for handler in service.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is not self.log:
                handler.setStream(self.log)
        runtime = self.functions.get(function)
        with _COLD_START:
            saved = {k: os.environ.get(k) for k in CREDENTIAL_VARS}
            if runtime is not None and runtime.credentials:
                os.environ.pop("AWS_SESSION_TOKEN", None)
                os.environ.update(runtime.credentials)
            elif self.enforce_iam and self.provisioned_by == "cloudformation":
                self._note(f"{function} is not part of this stack: it runs with the ambient credentials")
            boto3.DEFAULT_SESSION = None
            try:
                routed = self.quiet.installed  # the terminal router is in place: route by thread
                with self.quiet.handler_output(), contextlib.redirect_stdout(sys.stdout if routed else self.log):
                    spec.loader.exec_module(module)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                boto3.DEFAULT_SESSION = None
        # a new container reads POWERTOOLS_LOG_LEVEL; a logger configured by an earlier stack keeps its
        # level unless it is set again
        level = os.environ.get("POWERTOOLS_LOG_LEVEL", "").strip().upper()
        if level in logging.getLevelNamesMapping():
            service.setLevel(level)
        return module

    def function_timeout(self, function: str) -> float:
        """The function's timeout as its context reports it: the template's, except the worker's under
        a shortened ``visibility_timeout``, which keeps the template's ratio (the queue's visibility at
        least six times the worker's timeout, as AWS advises): an idempotency record a crashed
        invocation left in progress then expires (at the invocation's deadline) before its message
        comes back, as deployed. A process container's invocation is ended at its deadline, as Lambda
        ends it (``containers.poll``, ``kill_at_deadline``); a thread's cannot be, and is not."""
        timeout = float(self.template.function_timeout(function, self.parameters))
        if function == "WorkerFunction" and self.visibility_timeout is not None:
            return min(timeout, self.visibility_timeout / VISIBILITY_PER_TIMEOUT)
        return timeout

    def _context(self, function: str) -> LocalContext:
        runtime = self.functions.get(function)
        return LocalContext(
            runtime.name if runtime else function,
            self.function_timeout(function),
            self.template.function_memory(function),
        )

    def _failed(self, function: str, error: BaseException) -> None:
        self.function_errors.setdefault(function, []).append(f"{type(error).__name__}: {error}")

    def invoke(self, function: str, event: Any) -> Any:
        """A synchronous invocation: the handler's result, or its error raised (and counted)."""
        handler = self.handlers.get(function) or self.load_handler(function)
        self.handlers[function] = handler
        with self.quiet.handler_output():
            try:
                return handler(event, self._context(function))
            except Exception as e:
                self._failed(function, e)
                raise

    # ---- the event source mapping --------------------------------------------------------
    def queue_depth(self, url: str) -> tuple[int, int]:
        """(visible, in flight): delayed messages (a finaliser polling a long statement, a planner's
        watchdog) are not counted (``queue_counts``)."""
        visible, inflight, _ = self.queue_counts(url)
        return visible, inflight

    def queue_counts(self, url: str) -> tuple[int, int, int]:
        """(visible, in flight, delayed) messages of the queue."""
        a = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return (
            int(a["ApproximateNumberOfMessages"]),
            int(a["ApproximateNumberOfMessagesNotVisible"]),
            int(a.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def _polling(self, run_id: str) -> bool:
        """Whether a delayed message of the run is work to come: its tables are not all planned yet (a
        planner's message), or a finaliser of it waits for a long statement (a running table whose
        progress was noted within ASYNC_POLL_SECONDS and a few seconds). Otherwise a delayed message is
        a planner's watchdog, which finds nothing left to plan. A table whose every chunk not copied is
        in the DLQ waits for a redrive, not a statement: its finaliser's poll is not work to come."""
        run = self.dynamodb.get_item(
            TableName=self.table_name, Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}
        ).get("Item", {})
        if "table_count" in run:
            listed = int(run["table_count"]["N"])
        else:  # a run recorded by an earlier version: its list
            listed = len(json.loads(run.get("tables", {}).get("S", "[]")))
        if run.get("status", {}).get("S") == "running" and int(run.get("planned", {}).get("N", 0)) < listed:
            return True  # tables left to plan: a planner's message is to come
        window = float(os.environ.get("ASYNC_POLL_SECONDS", "60")) + 5
        items = self.dynamodb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":t": {"S": "TABLE#"}},
            ProjectionExpression="#s, progress_at, chunk_count, done_count, dead_lettered",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Items", [])
        now = time.time()

        def waits_for_redrive(item: dict[str, Any]) -> bool:
            dead = len(item.get("dead_lettered", {}).get("SS", []))
            count = int(item.get("chunk_count", {}).get("N", -1))
            return dead > 0 and count >= 0 and int(item.get("done_count", {}).get("N", 0)) + dead >= count

        return any(
            i.get("status", {}).get("S") == "running"
            and now - float(i.get("progress_at", {}).get("N", 0)) < window
            and not waits_for_redrive(i)
            for i in items
        )

    def drive_workers(
        self,
        workers: int,
        stop: threading.Event,
        fault: Callable[[str, Any], None] | None = None,
        processes: bool = False,
    ) -> list[threading.Thread]:
        """Worker containers polling as the SQS event source mapping does (``containers.poll``):
        threads, each with its own copy of the handler module, or with ``processes`` each a process
        of its own (as Lambda runs them; ``container_results`` then holds each one's peak memory
        once it has stopped). A fault injector is a function of this process: threads only."""
        source = self.event_source
        if source.maximum_concurrency and workers > int(source.maximum_concurrency):
            self._note(
                f"{workers} workers asked; the event source's MaximumConcurrency is {source.maximum_concurrency}"
            )
            workers = int(source.maximum_concurrency)
        queue = containers.Queue(
            self.queue_url, self.queue_arn, REGION, source.batch_size, source.report_batch_item_failures
        )
        self.container_results = []
        if processes:
            if fault is not None:
                raise BadInputError("fault injection runs in the stack's process: drive the workers as threads")
            threads = [
                threading.Thread(target=self._supervise, args=(i, queue, stop), name=f"container-{i}", daemon=True)
                for i in range(workers)
            ]
        else:

            def container() -> Callable[..., Any]:
                module = self.load_module("WorkerFunction")
                if fault is not None:
                    module.services.hooks.fault = fault
                return module.lambda_handler

            handlers = [container() for _ in range(workers)]

            def poll(handler: Callable[..., Any]) -> None:
                with self.quiet.handler_output():
                    containers.poll(
                        handler,
                        container,
                        self.session.client("sqs"),
                        queue,
                        lambda: self._context("WorkerFunction"),
                        stop.is_set,
                        stop.wait,
                        self.log,
                        lambda e: self._failed("WorkerFunction", e),
                    )

            threads = [
                threading.Thread(target=poll, args=(h,), name=f"worker-{i}", daemon=True)
                for i, h in enumerate(handlers)
            ]
        for t in threads:
            t.start()
        return threads

    def _supervise(self, i: int, queue: containers.Queue, stop: threading.Event) -> None:
        """One process container: started with the worker's environment and role, stopped with ``stop``."""
        runtime = self.functions.get("WorkerFunction")
        env = dict(os.environ)
        if runtime is not None and runtime.credentials:
            env.pop("AWS_SESSION_TOKEN", None)
            env.update(runtime.credentials)
        harness = self.session.get_credentials()
        assert harness is not None  # start() made the session from the harness user's key
        directory = self.home / "containers"
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{self._modules}-{i}"
        self._modules += 1
        spec = containers.ContainerSpec(
            app=str(self.template.function_dir("WorkerFunction") / "app.py"),
            function=runtime.name if runtime else "WorkerFunction",
            timeout=self.function_timeout("WorkerFunction"),
            memory_mb=self.template.function_memory("WorkerFunction"),
            env=env,
            # the event source mapping polls as the stack (its harness user), not as the function's role
            poller_credentials={"aws_access_key_id": harness.access_key, "aws_secret_access_key": harness.secret_key},
            queue=dataclasses.asdict(queue),
            log_path=None if self.log is sys.stdout else str(self.log_path),
            stop_file=str(directory / f"{name}.stop"),
            result_file=str(directory / f"{name}.json"),
            parent_pid=os.getpid(),
        )
        starts = 0
        while starts < CONTAINER_STARTS:
            proc = containers.start(spec, directory / f"{name}.spec.json")
            while not stop.wait(0.5) and proc.poll() is None:
                pass
            result = containers.stop(proc, spec)
            for error in result.get("errors", []):
                self.function_errors.setdefault("WorkerFunction", []).append(str(error))
            self.container_results.append(result)
            if stop.is_set():
                return
            if proc.returncode == containers.TIMED_OUT_EXIT:
                # Lambda ended an invocation at its timeout: what it started (an extract's helper processes)
                # ends with it, and a new execution environment takes the next message
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, 9)
                self.timed_out.append(time.time())
                self.function_errors.setdefault("WorkerFunction", []).append("Task timed out")
                continue
            starts += 1
            # the process ended by itself (it could not start, or crashed): Lambda starts a new one
            message = f"worker container process exited with code {proc.returncode}; see {self.log_path}"
            print(message, file=self.log, flush=True)
            self.function_errors.setdefault("WorkerFunction", []).append(message)

    def receive(self, max_messages: int, sqs: Any = None) -> list[dict[str, Any]]:
        """Chunk messages with their attributes, as the event source mapping receives them."""
        return containers.receive(sqs or self.sqs, self.queue_url, max_messages)

    def _record(self, m: Any) -> dict[str, Any]:
        return containers.record(m, self.queue_arn, REGION)

    def run(
        self,
        request: dict[str, Any],
        workers: int = 2,
        progress: Callable[[RunItem], None] | None = None,
        idle_timeout: float = 20.0,
        fault: Callable[[str, Any], None] | None = None,
        timeout: float = 6 * 3600,
        processes: bool = False,
        on_scheduled: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunOutcome:
        """Invoke the scheduler with ``request`` and drain the queue until the run is finished;
        ``processes``: each worker container a process of its own (``drive_workers``). The worker
        containers poll from before the scheduler's invocation, as the event source mapping polls all
        along: a table's chunks are copied while the scheduler still plans the tables after it.
        ``on_scheduled`` is called with the scheduler's answer once the run is recorded. A Ctrl-C
        during the scheduler's invocation waits for its end (``local/interrupts.py``): the run is then
        recorded whole, and resumable."""
        started = time.monotonic()
        if "SchedulerFunction" not in self.handlers:
            # its cold start puts its role's credentials in the process environment for a moment: done
            # before any worker thread runs, so no client a handler makes then can take them
            self.handlers["SchedulerFunction"] = self.load_handler("SchedulerFunction")
        stop = threading.Event()
        threads = self.drive_workers(workers, stop, fault=fault, processes=processes)
        try:
            with interrupts.deferred("the scheduler's invocation (the run is planned and recorded)"):
                summary = self.invoke("SchedulerFunction", request)
                if on_scheduled is not None:  # told before a Ctrl-C held back here is raised
                    on_scheduled(summary)
        except BaseException:
            self._stop_workers(stop, threads, processes)
            raise
        if "runs" in summary:  # several source databases: a run of each, drained one after the other
            ids = {d: r["run_id"] for d, r in summary["runs"].items() if r.get("status") != "failed"}
            outcomes: dict[str, RunOutcome] = {}
            try:
                for i, (database, run_id) in enumerate(ids.items()):
                    last = i == len(ids) - 1
                    outcomes[database] = self.drain(
                        run_id,
                        workers,
                        progress,
                        idle_timeout,
                        fault,
                        started,
                        timeout,
                        processes,
                        (stop, threads),
                        keep_running=not last,
                    )
            finally:
                self._stop_workers(stop, threads, processes)
            outcome = list(outcomes.values())[-1]
            outcome.runs = outcomes
            return outcome
        return self.drain(
            summary["run_id"], workers, progress, idle_timeout, fault, started, timeout, processes, (stop, threads)
        )

    def drain(
        self,
        run_id: str,
        workers: int = 2,
        progress: Callable[[RunItem], None] | None = None,
        idle_timeout: float = 20.0,
        fault: Callable[[str, Any], None] | None = None,
        started: float | None = None,
        timeout: float = 6 * 3600,
        processes: bool = False,
        running: tuple[threading.Event, list[threading.Thread]] | None = None,
        keep_running: bool = False,
    ) -> RunOutcome:
        """Poll the queue with worker containers (threads, or ``processes``) until every table of the
        run is finished, or nothing is left. ``running``: containers already polling (``run``), with
        the event that stops them."""
        from aurora_replication.ledger.store import StateStore

        started = started or time.monotonic()
        state = StateStore(self.table_name, self.session.resource("dynamodb"))
        stop, threads = running or (threading.Event(), [])
        if running is None:
            threads = self.drive_workers(workers, stop, fault=fault, processes=processes)
        idle_since: float | None = None
        deadline = time.monotonic() + timeout
        try:
            shown = depth_at = checked_at = 0.0
            while time.monotonic() < deadline:
                # the run's status (one item), not the whole run: with every table's plan that is a
                # large query that moto serves while every worker waits for it
                if progress and time.monotonic() - shown >= PROGRESS_SECONDS:
                    progress(state.get_run(run_id))
                    shown = time.monotonic()
                if state.run_status(run_id) in ("succeeded", "failed"):
                    break
                if processes and not any(t.is_alive() for t in threads):
                    break  # every container process gave up (drive_workers): nothing is polling
                time.sleep(0.25)
                if time.monotonic() - depth_at < 1.0:  # the idle check needs no more than a look a second
                    continue
                depth_at = time.monotonic()
                visible, inflight, delayed = self.queue_counts(self.queue_url)
                if delayed and not inflight and not visible and self._polling(run_id):
                    inflight = delayed  # a finaliser's poll to come (a watchdog alone is not work)
                if visible + inflight == 0 and time.monotonic() - checked_at >= 2.0:
                    # nothing left to deliver: every table's status (a finaliser that died before it
                    # marked the run, and was not delivered again), read only then: it grows with the tables
                    checked_at = time.monotonic()
                    statuses = state.table_statuses(run_id)
                    if (
                        statuses
                        and all(is_terminal(status) for status in statuses.values())
                        # every table planned (a worker may plan the rest)
                        and len(statuses) >= state.counted(run_id)[1]
                    ):
                        break
                if visible + inflight == 0:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > idle_timeout:
                        break  # nothing left to deliver: the rest is in the DLQ
                else:
                    idle_since = None
        except KeyboardInterrupt:  # Ctrl-C (the CLI names the run to resume once everything has stopped)
            print(
                "\ninterrupt: stopping; each worker finishes the invocation it is in and takes no new message",
                file=sys.stderr,
                flush=True,
            )
            raise
        finally:
            if not keep_running:  # ``keep_running``: the containers go on to the next run (``run``)
                self._stop_workers(stop, threads, processes)
        run = state.get_run(run_id)
        if progress:
            progress(run)
        return RunOutcome(
            run_id=run_id,
            run=run,
            seconds=time.monotonic() - started,
            dlq_messages=self.dead_letters(run_id),
            cost=cost_ledger.get_figures(state.table, run_id),
            worker_peak_mb=max((float(r.get("maxrss_mb") or 0) for r in self.container_results), default=None)
            if processes
            else None,
        )

    @staticmethod
    def _stop_workers(stop: threading.Event, threads: list[threading.Thread], processes: bool) -> None:
        stop.set()
        for t in threads:  # a process container stops after its invocation in progress
            t.join(timeout=120 if processes else 30)

    def dead_letters(self, run_id: str) -> int:
        """How many messages of ``run_id`` are in the DLQ (peeked; they stay there)."""
        from aurora_replication.ops.redrive import peek

        bodies = [m["Body"] for m in peek(self.sqs, self.dlq_url)]
        count = 0
        for body in bodies:
            try:
                count += json.loads(body).get("run_id") == run_id
            except (ValueError, AttributeError):
                continue
        return count
