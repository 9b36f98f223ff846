"""Run request and chunk message validation; the template's promises about queues and concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest

from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.ledger.keys import EXPIRATION
from aurora_replication.models import ChunkMessage
from aurora_replication.pipeline.scheduler import parse_request
from aurora_replication.pipeline.worker import parse_message
from aurora_replication_dev.local.template import Template

ROOT = Path(__file__).resolve().parents[2]


def test_run_request_accepts_names_lists_and_star():
    assert parse_request({"tables": "a, b"}, "auto").tables == ["a", "b"]
    assert parse_request({"tables": ["*"], "mode": "full"}, "auto").mode == "full"
    assert parse_request({"tables": "x"}, "incremental").mode == "incremental"


@pytest.mark.parametrize(
    "event, fragment",
    [
        ([], "JSON object"),
        ({}, "tables"),
        ({"tables": "a,a"}, "listed twice"),
        ({"tables": "a", "run_id": "../etc"}, "run_id"),
        ({"tables": "a", "watermark_columns": {"a": "x\x00"}}, "control character"),
        ({"tables": "a", "chunk_rows": -5}, "chunk_rows"),
    ],
)
def test_bad_run_requests_name_what_is_wrong(event, fragment):
    with pytest.raises(BadInputError, match=fragment):
        parse_request(event, "auto")


def test_chunk_message_bounds_must_match_the_key():
    body = {
        "run_id": "r1",
        "chunk_id": 0,
        "chunk_count": 1,
        "lower": ["1", "2"],
        "plan": {
            "table": "t",
            "target_table": "T",
            "key": ["id"],
            "mode": "full",
            "columns": [{"name": "id", "kind": "integer", "snowflake_type": "NUMBER(10,0)", "target": "ID"}],
        },
    }
    import json

    with pytest.raises(BadInputError, match="lower bound has 2 values but the key has 1"):
        parse_message(json.dumps(body))
    body["lower"] = ["1"]
    assert isinstance(parse_message(json.dumps(body)), ChunkMessage)
    with pytest.raises(BadInputError, match="not JSON"):
        parse_message("{")


def test_binary_key_bounds_must_be_hex():
    """A binary key's bound is compared through UNHEX(): text that is not hex would select no row."""
    import json

    body = {
        "run_id": "r1",
        "chunk_id": 0,
        "chunk_count": 1,
        "upper": ["00ff10"],
        "plan": {
            "table": "t",
            "target_table": "T",
            "key": ["id"],
            "mode": "full",
            "columns": [{"name": "id", "kind": "binary", "snowflake_type": "BINARY(16)", "target": "ID"}],
        },
    }
    assert isinstance(parse_message(json.dumps(body)), ChunkMessage)
    for bad in ("0g", "abc", "zz"):
        body["upper"] = [bad]
        with pytest.raises(BadInputError, match="upper bound of binary key column 'id' is not hexadecimal"):
            parse_message(json.dumps(body))
    body["plan"]["columns"][0].update(kind="float")
    body["upper"] = ["1.100000023841858"]
    assert isinstance(parse_message(json.dumps(body)), ChunkMessage)
    for bad in ("1,5", "nan", "inf", ""):
        body["upper"] = [bad]
        with pytest.raises(BadInputError, match="floating-point key column 'id' is not a finite number"):
            parse_message(json.dumps(body))


def test_settings_are_validated_with_clear_errors():
    env = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}
    assert settings_from(env).default_chunk_rows == 100_000
    with pytest.raises(BadInputError, match="DEFAULT_CHUNK_ROWS"):
        settings_from({**env, "DEFAULT_CHUNK_ROWS": "0"})
    with pytest.raises(BadInputError, match="STATE_TABLE"):
        settings_from({k: v for k, v in env.items() if k != "STATE_TABLE"})
    assert settings_from(env).run_retention_seconds == 30 * 86400
    with pytest.raises(BadInputError, match="RUN_RETENTION_DAYS=1 .*LEASE_SECONDS"):
        settings_from({**env, "RUN_RETENTION_DAYS": "1", "LEASE_SECONDS": str(2 * 86400)})


def test_template_queue_and_concurrency_promises():
    t = Template(ROOT / "template.yaml")
    worker_timeout = t.function_timeout("WorkerFunction")
    assert int(t.queue_attributes("ChunkQueue")["VisibilityTimeout"]) >= 6 * worker_timeout
    assert t.max_receive_count("ChunkQueue") >= 5
    dlq = t.dead_letter_queue_of("ChunkQueue")
    assert int(t.queue_attributes(dlq)["MessageRetentionPeriod"]) == 14 * 24 * 3600
    event = t.sqs_event("WorkerFunction")
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaximumConcurrency"}
    params = t.doc["Parameters"]
    assert t.resource("WorkerFunction")["ReservedConcurrentExecutions"] == {"Ref": "WorkerReservedConcurrency"}
    assert params["WorkerReservedConcurrency"]["Default"] >= params["WorkerMaximumConcurrency"]["Default"]
    table = t.resource("StateTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": EXPIRATION, "Enabled": True}
    assert params["RunRetentionDays"]["Default"] == 30
    assert t.doc["Globals"]["Function"]["Environment"]["Variables"]["RUN_RETENTION_DAYS"] == {"Ref": "RunRetentionDays"}
    schedule = t.resource("SchedulerFunction")["Events"]["Schedule"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    layer = t.doc["Resources"]["ReplicationLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    glob = t.doc["Globals"]["Function"]
    assert glob["Tracing"] == "Active" and "POWERTOOLS_SERVICE_NAME" in glob["Environment"]["Variables"]


def test_sample_scheduler_events_are_valid_requests():
    import json
    from pathlib import Path

    from aurora_replication.models import RUN_ID_PATTERN, RunRequest

    events = sorted((Path(__file__).resolve().parents[2] / "events").glob("scheduler*.json"))
    assert len(events) >= 4
    for path in events:
        body = json.loads(path.read_text())
        if "resume_run" in body:
            assert set(body) == {"resume_run"} and RUN_ID_PATTERN.match(body["resume_run"])
        else:
            RunRequest.model_validate(body)


def test_heal_rounds_have_their_own_idempotency_keys():
    from aurora_replication.models import Column, TablePlan
    from aurora_replication.pipeline.chunks import chunk_messages, finalise_message

    p = TablePlan(
        table="t",
        target_table="T",
        key=["id"],
        watermark="u",
        mode="incremental",
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="u", kind="datetime", precision=6, target="U"),
        ],
    )
    bounds = [(None, ["10"]), (["10"], ["20"]), (["20"], None)]
    first = chunk_messages("r1", p, bounds, ("2024-01-01", "2024-02-01"))
    heal = chunk_messages("r1", p, bounds, ("2024-01-01", "2024-02-01"), ids=[1], round=1)
    assert [m.chunk_id for m in first] == [0, 1, 2] and [m.chunk_id for m in heal] == [1]
    # a heal re-reads the chunk's window in a new snapshot: the same selection, a new round
    assert first[1].window_from == heal[0].window_from == "2024-01-01" and heal[0].round == 1
    assert heal[0].lower == ["10"] and heal[0].upper == ["20"]
    assert first[1].idempotency_key != heal[0].idempotency_key
    assert finalise_message("r1", p, 3, 1).idempotency_key == "r1:t:finalise:0:1"
