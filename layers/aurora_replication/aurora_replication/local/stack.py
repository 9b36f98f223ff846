"""The local stack: moto (SQS, DynamoDB, Secrets Manager) built from ``template.yaml``, the real
handlers, and worker threads that poll the queue as the SQS event source mapping does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3

from aurora_replication.errors import BadInputError
from aurora_replication.local.services import free_port
from aurora_replication.local.template import Template

REGION = "us-east-1"
TERMINAL = {"published", "failed", "declined"}


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
    u = urlparse(url)
    if u.scheme not in ("mysql", "mariadb") or not u.hostname or not u.path.strip("/"):
        raise BadInputError("source must look like mysql://USER:PASSWORD@HOST:PORT/DATABASE")
    return {
        "engine": "mysql",
        "host": u.hostname,
        "port": u.port or 3306,
        "username": unquote(u.username or ""),
        "password": unquote(u.password or ""),
        "dbname": unquote(u.path.strip("/")),
    }


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


class LocalContext:
    """What the Lambda runtime hands a handler."""

    def __init__(self, function_name: str, timeout: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class RunOutcome:
    run_id: str
    run: dict[str, Any]
    seconds: float
    dlq_messages: int

    @property
    def ok(self) -> bool:
        states = self.run.get("table_states", {})
        return bool(states) and all(t.get("status") == "published" for t in states.values()) and not self.dlq_messages


class LocalStack:
    """moto in-process on a loopback port, with resources created from the template."""

    def __init__(self, home: Path, template: Path | None = None) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.template = Template(template or find_template())
        self.server: Any = None
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._modules = 0
        self.log_path = self.home / "logs" / "handlers.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log: Any = sys.stdout if os.environ.get("REPLICATE_LOG_STDOUT") else open(self.log_path, "a")  # noqa: SIM115

    # ---- lifecycle -------------------------------------------------------------------------
    def start(
        self, source_secret: dict[str, Any], target_secret: dict[str, Any], env: dict[str, str] | None = None
    ) -> None:
        from aurora_replication.local.moto_server import SerialisedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        port = free_port()
        self.server = SerialisedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        endpoint = f"http://127.0.0.1:{port}"
        # moto keeps its backends per process: start from nothing, as a fresh account would
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - loopback http
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            }
        )
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
        os.environ.setdefault("WORK_DIR", str(self.home / "work"))
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")
        secrets = boto3.client("secretsmanager")

        dlq_name = self.template.dead_letter_queue_of("ChunkQueue")
        dlq_url = self.sqs.create_queue(QueueName="chunk-dlq", Attributes=self.template.queue_attributes(dlq_name))[
            "QueueUrl"
        ]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs = self.template.queue_attributes("ChunkQueue")
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.template.max_receive_count("ChunkQueue")}
        )
        self.queue_url = self.sqs.create_queue(QueueName="chunks", Attributes=attrs)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.dlq_url = dlq_url
        self.table_name = "replication-state"
        self.dynamodb.create_table(TableName=self.table_name, **self.template.table_definition("StateTable"))
        self._load_state()
        src = secrets.create_secret(Name="replication/source", SecretString=json.dumps(source_secret))["ARN"]
        tgt = secrets.create_secret(Name="replication/target", SecretString=json.dumps(target_secret))["ARN"]
        os.environ.update(self.template.literal_environment())
        os.environ.update(
            {
                "STATE_TABLE": self.table_name,
                "CHUNK_QUEUE_URL": self.queue_url,
                "DLQ_URL": self.dlq_url,
                "SOURCE_SECRET_ARN": src,
                "TARGET_SECRET_ARN": tgt,
                **(env or {}),
            }
        )
        from aws_lambda_powertools.utilities.parameters import base as parameters_base

        from aurora_replication.config import load_settings

        load_settings.cache_clear()
        parameters_base.DEFAULT_PROVIDERS.clear()  # their clients point at an earlier endpoint

    def stop(self) -> None:
        if self.server is not None:
            self._save_state()
            self.server.stop()
            self.server = None
        if self.log is not sys.stdout:
            self.log.flush()

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
            return
        saved = json.loads(self._state_file.read_text())
        if isinstance(saved, list):  # the format of earlier versions: items only
            saved = {"items": saved}
        for item in saved.get("items", []):
            if item["pk"]["S"].startswith("TABLE#") and item["sk"]["S"] == "LEASE":
                continue  # leases belong to processes that are gone
            self.dynamodb.put_item(TableName=self.table_name, Item=item)
        for body in saved.get("dead_letters", []):  # the DLQ outlives the process, as in AWS
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=body)

    # ---- handlers --------------------------------------------------------------------------
    def load_handler(self, function: str) -> Callable[..., Any]:
        """A fresh import of the function's app.py: one per simulated Lambda container."""
        return self.load_module(function).lambda_handler

    def load_module(self, function: str) -> ModuleType:
        path = self.template.function_dir(function) / "app.py"
        self._modules += 1
        spec = importlib.util.spec_from_file_location(f"_asr_{function}_{self._modules}", path)
        assert spec and spec.loader
        module: ModuleType = importlib.util.module_from_spec(spec)
        # Powertools loggers bind to sys.stdout when first created: point them at this stack's log file
        # (a logger configured by an earlier stack in this process keeps its handler: retarget it)
        service = logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        for handler in service.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is not self.log:
                handler.setStream(self.log)
        with contextlib.redirect_stdout(self.log):
            spec.loader.exec_module(module)
        # a new container reads POWERTOOLS_LOG_LEVEL; a logger configured by an earlier stack keeps its
        # level unless it is set again
        level = os.environ.get("POWERTOOLS_LOG_LEVEL", "").strip().upper()
        if level in logging.getLevelNamesMapping():
            service.setLevel(level)
        return module

    def invoke(self, function: str, event: Any) -> Any:
        handler = self.handlers.get(function) or self.load_handler(function)
        self.handlers[function] = handler
        return handler(event, LocalContext(function, self.template.function_timeout(function)))

    # ---- the event source mapping --------------------------------------------------------
    def queue_depth(self, url: str) -> tuple[int, int]:
        a = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])

    def drive_workers(
        self,
        workers: int,
        stop: threading.Event,
        retry_delay: int = 1,
        fault: Callable[[str, Any], None] | None = None,
    ) -> list[threading.Thread]:
        """Worker threads, each with its own copy of the handler module (a Lambda container each)."""
        batch_size = int(self.template.resolve(self.template.sqs_event("WorkerFunction").get("BatchSize", 10)))
        timeout = self.template.function_timeout("WorkerFunction")

        def container() -> Callable[..., Any]:
            module = self.load_module("WorkerFunction")
            if fault is not None:
                module.services.fault = fault
            return module.lambda_handler

        handlers = [container() for _ in range(workers)]

        def poll(handler: Callable[..., Any]) -> None:
            sqs = boto3.client("sqs")
            while not stop.is_set():
                msgs = self.receive(batch_size, sqs)
                if not msgs:
                    stop.wait(0.2)
                    continue
                event = {"Records": [self._record(m) for m in msgs]}
                try:
                    result = handler(event, LocalContext("WorkerFunction", timeout)) or {}
                    failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                except Exception as e:  # the whole invocation failed: every message returns
                    print(f"worker invocation failed: {type(e).__name__}: {e}", file=self.log, flush=True)
                    failed = {m["MessageId"] for m in msgs}
                except BaseException as e:  # noqa: B036 - the container died: Lambda starts a new one
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    print(f"worker container died: {type(e).__name__}: {e}", file=self.log, flush=True)
                    failed = {m["MessageId"] for m in msgs}
                    handler = container()
                for m in msgs:
                    if m["MessageId"] in failed:
                        # Lambda leaves a failed message invisible for the rest of its visibility
                        # timeout; locally it returns sooner, backing off as receives add up
                        receives = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                        sqs.change_message_visibility(
                            QueueUrl=self.queue_url,
                            ReceiptHandle=m["ReceiptHandle"],
                            VisibilityTimeout=min(retry_delay * 2 ** (receives - 1), 60),
                        )
                    else:
                        sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

        threads = [
            threading.Thread(target=poll, args=(h,), name=f"worker-{i}", daemon=True) for i, h in enumerate(handlers)
        ]
        for t in threads:
            t.start()
        return threads

    def receive(self, max_messages: int, sqs: Any = None) -> list[dict[str, Any]]:
        """Chunk messages with their attributes, as the event source mapping receives them. The local
        moto serves one request at a time, so this polls and never waits."""
        return list(
            (sqs or self.sqs)
            .receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )

    def _record(self, m: Any) -> dict[str, Any]:
        arn = self.queue_arn
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }

    def run(
        self,
        request: dict[str, Any],
        workers: int = 2,
        progress: Callable[[dict[str, Any]], None] | None = None,
        idle_timeout: float = 20.0,
        retry_delay: int = 1,
        fault: Callable[[str, Any], None] | None = None,
        timeout: float = 6 * 3600,
    ) -> RunOutcome:
        """Invoke the scheduler with ``request``, then drain the queue until the run is finished."""
        started = time.monotonic()
        summary = self.invoke("SchedulerFunction", request)
        return self.drain(summary["run_id"], workers, progress, idle_timeout, retry_delay, fault, started, timeout)

    def drain(
        self,
        run_id: str,
        workers: int = 2,
        progress: Callable[[dict[str, Any]], None] | None = None,
        idle_timeout: float = 20.0,
        retry_delay: int = 1,
        fault: Callable[[str, Any], None] | None = None,
        started: float | None = None,
        timeout: float = 6 * 3600,
    ) -> RunOutcome:
        """Poll the queue with worker threads until every table of the run is finished, or nothing is left."""
        from aurora_replication.state import StateStore

        started = started or time.monotonic()
        state = StateStore(self.table_name)
        stop = threading.Event()
        threads = self.drive_workers(workers, stop, retry_delay=retry_delay, fault=fault)
        idle_since: float | None = None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                run = state.get_run(run_id)
                if progress:
                    progress(run)
                states = run.get("table_states", {})
                if states and all(t.get("status") in TERMINAL for t in states.values()):
                    break
                visible, inflight = self.queue_depth(self.queue_url)
                if visible + inflight == 0:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > idle_timeout:
                        break  # nothing left to deliver: the rest is in the DLQ
                else:
                    idle_since = None
                time.sleep(0.25)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        run = state.get_run(run_id)
        if progress:
            progress(run)
        return RunOutcome(
            run_id=run_id, run=run, seconds=time.monotonic() - started, dlq_messages=self.dead_letters(run_id)
        )

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
