"""The local stack's moto server: connections kept open between requests, and SQS receives whose cost
does not grow with the queue (``local/moto_server``), with exactly the answers moto gives otherwise."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from aurora_replication_dev.local import moto_server
from aurora_replication_dev.local.services import free_port


@pytest.fixture
def server() -> Iterator[int]:
    port = free_port()
    srv = moto_server.SerialisedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    try:
        yield port
    finally:
        srv.stop()


def _headers(action: str) -> dict[str, str]:
    return {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"AmazonSQS.{action}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }


def _sqs_call(conn: http.client.HTTPConnection, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
    conn.request("POST", "/", body=json.dumps(body), headers=_headers(action))
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")


def test_one_connection_serves_request_after_request_and_a_chunked_body_closes_it(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    status, headers, created = _sqs_call(conn, "CreateQueue", {"QueueName": "kept"})
    assert status == 200 and headers.get("Connection", "").lower() != "close"
    sock = conn.sock
    for i in range(5):  # each with a body: read in full, so the next request line is where the stream stands
        status, headers, _ = _sqs_call(conn, "SendMessage", {"QueueUrl": created["QueueUrl"], "MessageBody": f"m{i}"})
        assert status == 200 and conn.sock is sock  # the same socket: never closed by the server
    status, _, listed = _sqs_call(
        conn, "GetQueueAttributes", {"QueueUrl": created["QueueUrl"], "AttributeNames": ["All"]}
    )
    assert listed["Attributes"]["ApproximateNumberOfMessages"] == "5" and conn.sock is sock
    conn.close()

    # a chunked body cannot be told apart from the next request without reading it: that connection closes
    chunked = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    body = json.dumps({"QueueUrl": created["QueueUrl"], "MessageBody": "chunked"}).encode()
    chunked.request(
        "POST",
        "/",
        body=iter([body]),
        headers=_headers("SendMessage"),
        encode_chunked=True,
    )
    response = chunked.getresponse()
    response.read()
    assert response.status == 200 and response.getheader("Connection", "").lower() == "close"
    chunked.close()


def test_a_boto3_client_keeps_its_connection_and_its_answers(server: int) -> None:
    accepted: list[Any] = []
    setup = moto_server.KeepAliveRequestHandler.setup

    def counting(self: Any) -> None:
        accepted.append(self.client_address)
        setup(self)

    moto_server.KeepAliveRequestHandler.setup = counting  # type: ignore[method-assign]
    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{server}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for _ in range(20):
            client.update_item(
                TableName="t",
                Key={"pk": {"S": "a"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        assert client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "20"}
    finally:
        moto_server.KeepAliveRequestHandler.setup = setup  # type: ignore[method-assign]
    assert len(accepted) == 1, accepted  # 22 requests, one connection


@pytest.fixture
def sqs_unpatched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's own SQS during the test and after it, whatever the test installs."""
    from moto.sqs.models import Queue, SQSBackend

    originals = moto_server._sqs_originals
    monkeypatch.setattr(Queue, "messages", originals.get("messages", Queue.__dict__["messages"]))
    monkeypatch.setattr(Queue, "attributes", originals.get("attributes", Queue.__dict__["attributes"]))
    monkeypatch.setattr(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        originals.get("retained", SQSBackend.__dict__["is_message_valid_based_on_retention_period"]),
    )
    monkeypatch.setattr(
        SQSBackend,
        "get_queue_attributes",
        originals.get("get_queue_attributes", SQSBackend.__dict__["get_queue_attributes"]),
    )
    monkeypatch.setattr(moto_server, "_sqs_patched", False)
    yield


COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]


def _scenario() -> list[Any]:
    """Receives, in-flight and delayed messages, deletes, a message past its retention period and a
    redrive to the dead-letter queue: what each call answers, without ids and times."""
    from moto.sqs.models import sqs_backends

    out: list[Any] = []
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dead")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        q = sqs.create_queue(
            QueueName="work",
            Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})},
        )["QueueUrl"]

        def attrs(names: list[str]) -> dict[str, str]:
            got = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=names)["Attributes"]
            return {k: v for k, v in got.items() if not k.endswith("Timestamp")}

        def bodies(**kw: Any) -> list[str]:
            got = sqs.receive_message(QueueUrl=q, **kw).get("Messages", [])
            out.append(sorted(m["Body"] for m in got))
            return [m["ReceiptHandle"] for m in got]

        for i in range(8):
            sqs.send_message(QueueUrl=q, MessageBody=f"m{i}")
        sqs.send_message(QueueUrl=q, MessageBody="later", DelaySeconds=900)
        first = bodies(MaxNumberOfMessages=1, VisibilityTimeout=300)
        out.append(attrs(COUNTS))
        out.append(attrs(["All"]))
        out.append(attrs(["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"]))
        taken = bodies(MaxNumberOfMessages=3, VisibilityTimeout=300)
        sqs.delete_message(QueueUrl=q, ReceiptHandle=first[0])
        sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=taken[0], VisibilityTimeout=0)
        out.append(attrs(COUNTS))
        bodies(MaxNumberOfMessages=2, VisibilityTimeout=0)  # seen twice now: the next receive redrives them
        out.append(attrs(COUNTS))
        bodies(MaxNumberOfMessages=10, VisibilityTimeout=300)
        out.append(attrs(COUNTS))
        out.append(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=COUNTS)["Attributes"])
        # past its retention period a message is not delivered
        sqs.set_queue_attributes(QueueUrl=q, Attributes={"MessageRetentionPeriod": "60"})
        sqs.send_message(QueueUrl=q, MessageBody="old")
        queue = sqs_backends["123456789012"]["us-east-1"].queues["work"]
        for m in queue._messages:
            if m.body == "old":
                m.sent_timestamp -= 120_000
        bodies(MaxNumberOfMessages=10)
        out.append(attrs(COUNTS))
    return out


def test_sqs_answers_the_same_with_the_patches(sqs_unpatched: None) -> None:
    before = _scenario()
    moto_server.install_sqs_patches()
    assert _scenario() == before
    # the scenario did what it says: a redrive, and a message past its retention not delivered
    assert before[0] == ["m0"] and before[-3]["ApproximateNumberOfMessages"] == "1" and before[-2] == []


def test_a_receive_reads_only_the_messages_it_takes(sqs_unpatched: None) -> None:
    from moto.sqs.models import Message

    moto_server.install_sqs_patches()
    tested: list[str] = []
    visible = Message.visible

    def counting(self: Any) -> bool:
        tested.append(self.body)
        return bool(visible.fget(self))  # type: ignore[attr-defined]

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        q = sqs.create_queue(QueueName="long")["QueueUrl"]
        for i in range(300):
            sqs.send_message(QueueUrl=q, MessageBody=f"m{i}")
        Message.visible = property(counting)  # type: ignore[method-assign,assignment]
        try:
            got = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=1)["Messages"]
        finally:
            Message.visible = visible  # type: ignore[method-assign]
    assert [m["Body"] for m in got] == ["m0"]
    assert len(tested) < 10, len(tested)  # not the 300 messages of the queue, three times over


def test_stopping_the_server_ends_the_threads_of_its_idle_connections() -> None:
    import threading
    import time

    port = free_port()
    srv = moto_server.SerialisedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert _sqs_call(conn, "CreateQueue", {"QueueName": "idle"})[0] == 200  # the connection stays open, idle
    handlers = [t for t in threading.enumerate() if "process_request_thread" in t.name]
    assert handlers
    started = time.monotonic()
    srv.stop()  # does not wait for the idle connection's timeout
    for t in handlers:
        t.join(timeout=5)
    assert time.monotonic() - started < 5 and not any(t.is_alive() for t in handlers)
    conn.close()
