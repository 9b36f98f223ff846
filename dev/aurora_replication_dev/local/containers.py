"""The worker's containers: the SQS event source mapping's polling loop, run by the local stack in
a worker thread, or in a process of its own, one Lambda execution environment each.

In Lambda every container of the worker is a process with its own interpreter and memory; worker
threads of one process share one GIL with each other and with moto. A process container polls the
stack's moto over HTTP as a thread does, with the same loop (``poll``), and reports its own peak
resident memory when it stops: what one Lambda worker holds, without moto or the local stack.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]
REGION = "us-east-1"
# a process container whose invocation ran past its deadline ends with this code (Lambda: "Task timed out"):
# its supervisor starts a new one, as Lambda starts a new execution environment
TIMED_OUT_EXIT = 86
HANDLER_MODULE = "app"  # every function's ``Handler: app.lambda_handler`` in template.yaml


class LocalContext:
    """What the Lambda runtime hands a handler."""

    def __init__(self, function_name: str, timeout: float, memory_mb: int = 1024) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def receive(sqs: Any, queue_url: str, max_messages: int) -> list[dict[str, Any]]:
    """Chunk messages with their attributes, as the event source mapping receives them. The local
    moto serves one request at a time, so this polls and never waits."""
    return list(
        sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    )


def record(m: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One received message as a record of the SQS event Lambda hands the function."""
    return {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class Queue:
    """The event source: the queue, its ARN and region, and the mapping's batch settings."""

    url: str
    arn: str
    region: str
    batch_size: int
    report_batch_item_failures: bool


def poll(
    handler: Handler,
    new_container: Callable[[], Handler],
    sqs: Any,
    queue: Queue,
    context: Callable[[], Any],
    stopped: Callable[[], bool],
    wait: Callable[[float], Any],
    log: Any,
    on_failed: Callable[[BaseException], None],
    kill_at_deadline: bool = False,
) -> int:
    """Poll until ``stopped()``: batches of the mapping's size; after the function returns, the messages
    it did not report as failed are deleted (all of them without ReportBatchItemFailures); a failed
    message, and every message of a failed invocation, is left alone: it comes back when its
    visibility timeout ends, which the function may have changed (the worker's redelivery backoff)
    or not (the queue's own, for a crash). A container that dies is replaced. ``kill_at_deadline`` (a
    process container): an invocation still running at its context's deadline ends the process at once,
    as Lambda ends one that times out (nothing after it runs; its messages stay in flight). Returns the
    invocations."""
    invocations = 0
    while not stopped():
        msgs = receive(sqs, queue.url, queue.batch_size)
        if not msgs:
            wait(0.2)
            continue
        event = {"Records": [record(m, queue.arn, queue.region) for m in msgs]}
        ids = {m["MessageId"] for m in msgs}
        invocations += 1
        ctx = context()
        timer: threading.Timer | None = None
        if kill_at_deadline:
            seconds = ctx.get_remaining_time_in_millis() / 1000
            timer = threading.Timer(seconds, _time_out, (log, ctx.aws_request_id, seconds))
            timer.daemon = True
            timer.start()
        try:
            result = handler(event, ctx) or {}
        except Exception as e:  # a function error: the whole batch returns
            print(f"worker invocation failed: {type(e).__name__}: {e}", file=log, flush=True)
            on_failed(e)
            continue
        except BaseException as e:  # noqa: B036 - the container died: Lambda starts a new one
            if isinstance(e, KeyboardInterrupt):
                raise
            print(f"worker container died: {type(e).__name__}: {e}", file=log, flush=True)
            on_failed(e)
            handler = new_container()
            continue
        finally:
            if timer is not None:
                timer.cancel()
        failed: set[str] = set()
        if queue.report_batch_item_failures:
            reported = [f.get("itemIdentifier") for f in result.get("batchItemFailures", [])]
            # an identifier that is empty or not of this batch fails the whole batch
            failed = ids if any(not i or i not in ids for i in reported) else {str(i) for i in reported}
        for m in msgs:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=m["ReceiptHandle"])
    return invocations


def _time_out(log: Any, request_id: str, seconds: float) -> None:
    """The invocation reached its deadline: the process ends at once (Lambda's timeout ends the execution
    environment's process; no ``finally`` runs, nothing is flushed but this line)."""
    try:
        print(f"{request_id} Task timed out after {seconds:.2f} seconds", file=log, flush=True)
    finally:
        os._exit(TIMED_OUT_EXIT)


# ---- a container in a process of its own ---------------------------------------------------------


@dataclass
class ContainerSpec:
    """What a process container needs: the function's code, name, timeout and memory, its whole
    environment (with its role's credentials), the poller's credentials, the queue, and where to log,
    to look for the stop signal, and to write its result."""

    app: str
    function: str
    timeout: float
    memory_mb: int
    env: dict[str, str]
    poller_credentials: dict[str, str]
    queue: dict[str, Any]
    log_path: str | None
    stop_file: str
    result_file: str
    parent_pid: int


def start(spec: ContainerSpec, spec_file: Path) -> subprocess.Popen[bytes]:
    """Start the container: a new interpreter, ``python -m aurora_replication_dev.local.containers``."""
    spec_file.write_text(json.dumps(asdict(spec)))
    Path(spec.stop_file).unlink(missing_ok=True)  # a container started again after one ended (stop() made it)
    env = dict(spec.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.Popen(
        [sys.executable, "-m", "aurora_replication_dev.local.containers", str(spec_file)],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], spec: ContainerSpec, timeout: float = 60.0) -> dict[str, Any]:
    """Ask the container to stop after its invocation in progress, wait for it, and read its result
    (its peak resident memory); one that does not stop in ``timeout`` seconds is killed."""
    Path(spec.stop_file).touch()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    try:
        result: dict[str, Any] = json.loads(Path(spec.result_file).read_text())
    except (OSError, ValueError):
        result = {"exit_code": proc.returncode, "maxrss_mb": None}
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program: Linux's ``VmHWM`` (the
    high-water mark of this program's memory; ``ru_maxrss`` would also count the parent's memory
    that the forked child held before its ``exec``), else ``ru_maxrss`` (KB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_handler(spec: ContainerSpec) -> Handler:
    import importlib.util

    # named as Lambda imports it: the idempotency records' key (stack.load_module)
    loaded = importlib.util.spec_from_file_location(HANDLER_MODULE, spec.app)
    assert loaded and loaded.loader
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


def main(spec_file: str) -> int:
    """The container process: import the function as its cold start does, poll until asked to stop
    (or until the stack that started it is gone), then write the result."""
    spec = ContainerSpec(**json.loads(Path(spec_file).read_text()))
    log: Any = sys.stdout
    if spec.log_path:
        log = open(spec.log_path, "a", buffering=1)  # noqa: SIM115 - the container's output, until it exits
        sys.stdout = sys.stderr = log
    import boto3

    def new_container() -> Handler:
        return _load_handler(spec)

    queue = Queue(**spec.queue)
    session = boto3.session.Session(
        aws_access_key_id=spec.poller_credentials["aws_access_key_id"],
        aws_secret_access_key=spec.poller_credentials["aws_secret_access_key"],
        region_name=queue.region,
    )
    sqs = session.client("sqs")
    errors: list[str] = []
    invocations = poll(
        new_container(),
        new_container,
        sqs,
        queue,
        lambda: LocalContext(spec.function, spec.timeout, spec.memory_mb),
        lambda: os.path.exists(spec.stop_file) or os.getppid() != spec.parent_pid,
        time.sleep,
        log,
        lambda e: errors.append(f"{type(e).__name__}: {e}"),
        kill_at_deadline=True,
    )
    Path(spec.result_file).write_text(
        json.dumps({"maxrss_mb": peak_rss_mb(), "invocations": invocations, "errors": errors, "exit_code": 0})
    )
    log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
