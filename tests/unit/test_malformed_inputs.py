"""Malformed run requests, resume requests, chunk messages, events, environment settings and CLI
flags: each gets a clear BadInputError (one line naming the field, the value and the fix) or exit 2,
and a value of the wrong type is never taken for another (``true`` is not 1, ``"5"`` is not 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.models import parse_resume_request
from aurora_replication.ops.health import is_function_url
from aurora_replication.pipeline.scheduler import parse_request
from aurora_replication.pipeline.worker import parse_message
from aurora_replication.rotation.base import parse_event as parse_rotation_event
from aurora_replication.rotation.base import rotation_settings
from aurora_replication_dev import cli

ROOT = Path(__file__).resolve().parents[2]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
hostile_names = st.sampled_from(
    ["orders`; DROP TABLE x; --", "a\x00b", "", " padded", "x" * 70, "*", 'q"uote', "ok_name"]
)
requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"tables": st.one_of(json_values, st.lists(hostile_names, max_size=3), hostile_names)},
        optional={
            "mode": st.one_of(st.sampled_from(["full", "incremental", "auto", "FULL", "", "delete"]), json_values),
            "chunk_rows": st.one_of(st.integers(-5, 20_000_000), json_values),
            "run_id": st.one_of(st.text(max_size=80), json_values),
            "watermark_columns": st.one_of(st.dictionaries(hostile_names, hostile_names, max_size=2), json_values),
            "table_options": json_values,
            "extra": json_values,
        },
    ),
)


def _acceptable(value: object) -> bool:
    try:
        parse_request(value, "auto")
        return True
    except BadInputError as e:
        assert str(e).startswith(("invalid run request", "run request must be")), e
        return False


@settings(max_examples=700, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(requests)
def test_generated_run_requests_are_accepted_or_rejected_clearly(value):
    accepted = _acceptable(value)
    if accepted:  # whatever passes is well formed, and taken as it was given: nothing coerced
        request = parse_request(value, "auto")
        assert request.tables and request.mode in ("full", "incremental", "auto")
        for name in ("mode", "chunk_rows", "run_id", "watermark_columns"):
            if name in value:
                given_value, taken = value[name], getattr(request, name)
                assert type(taken) is type(given_value) and taken == given_value, (name, given_value, taken)


messages = st.one_of(
    st.text(max_size=50),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {
            "run_id": st.one_of(st.text(max_size=70), json_values),
            "chunk_id": json_values,
            "chunk_count": json_values,
            "plan": json_values,
        },
        optional={"kind": json_values, "lower": json_values, "upper": json_values},
    ).map(json.dumps),
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(messages)
def test_generated_chunk_messages_are_rejected_clearly(body):
    try:
        parse_message(body)
    except BadInputError as e:
        assert str(e).startswith(("invalid chunk message", "chunk message is not JSON")), e
    else:  # pragma: no cover - hypothesis would have to invent a whole valid plan
        raise AssertionError(f"accepted {body!r}")


# ---- strict types: a value of another type is refused, never converted --------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("chunk_rows", True),  # a boolean is not an integer (it was taken as 1)
        ("chunk_rows", False),
        ("chunk_rows", "5"),  # nor is text of digits
        ("chunk_rows", 5.0),  # nor a float, even a whole one
        ("resnapshot", "yes"),
        ("resnapshot", 1),
        ("run_id", 20240601),
        ("mode", ["full"]),
        ("watermark_columns", [["orders", "updated_at"]]),
    ],
)
def test_run_request_fields_are_strictly_typed(field, value):
    with pytest.raises(BadInputError) as refused:
        parse_request({"tables": "orders", field: value}, "auto")
    line = str(refused.value)
    assert "\n" not in line and line.startswith("invalid run request: ")
    assert f"{field}={value!r}" in line  # the field and the value as given


def test_run_request_tables_keep_their_documented_string_form():
    assert parse_request({"tables": "a, b"}, "auto").tables == ["a", "b"]
    with pytest.raises(BadInputError, match=r"tables\.0=1: Input should be a valid string"):
        parse_request({"tables": [1]}, "auto")


def test_an_unknown_field_is_named_with_the_fields_there_are():
    with pytest.raises(BadInputError) as refused:
        parse_request({"tables": "a", "chunkrows": 5}, "auto")
    assert str(refused.value) == (
        "invalid run request: chunkrows=5: unknown field; the fields are chunk_rows, database_mapping, databases, "
        "follow_seconds, mode, resnapshot, run_id, start_position, table_options, tables, watermark_columns"
    )
    with pytest.raises(BadInputError, match=r"table_options\.a\.exlude=\['x'\]: unknown field"):
        parse_request({"tables": "a", "table_options": {"a": {"exlude": ["x"]}}}, "auto")


@pytest.mark.parametrize(
    "event, fragment",
    [
        ({"resume_run": 5}, "resume_run=5: Input should be a valid string"),
        ({"resume_run": "r1", "tables": "a"}, "tables='a': unknown field; the fields are resume_run"),
        ({"resume_run": "../r1"}, "resume_run='../r1': must be a run id"),
    ],
)
def test_resume_requests_are_strict(event, fragment):
    with pytest.raises(BadInputError, match="^invalid resume request: .*" + fragment.replace(".", r"\.")):
        parse_resume_request(event)
    with pytest.raises(BadInputError, match="invalid resume request"):  # the scheduler reads it the same way
        from aurora_replication.models import parse_scheduler_event

        parse_scheduler_event(event, "auto")
    assert parse_resume_request({"resume_run": "20240601T120000Z-3fa9c1"}) == "20240601T120000Z-3fa9c1"


REF = {"kind": "chunk", "run_id": "r1", "table": "orders", "chunk_id": 1, "chunk_count": 3}
BATCH = {"start": "0000000001:000000000004:000000", "end": "0000000001:000000000900:000000", "path": "cdc/t/a-b"}


@pytest.mark.parametrize(
    "change",
    [
        {"chunk_id": True},  # was taken as chunk 1
        {"chunk_id": "1"},
        {"chunk_count": 3.0},
        {"round": False},
        {"window_to": 20240601},
        {"batch": {**BATCH, "file": "batch-00001.csv.gz", "rows": True}},
        {"batch": {**BATCH, "file": "batch-00001.csv.gz", "rows": "7"}},
    ],
)
def test_chunk_references_are_strictly_typed(change):
    assert parse_message(json.dumps(REF)).chunk_id == 1
    with pytest.raises(BadInputError) as refused:
        parse_message(json.dumps({**REF, **change}))
    line = str(refused.value)
    assert line.startswith("invalid chunk message: ") and "\n" not in line
    (field,) = change
    assert field in line


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("", "chunk message is not JSON: it is empty"),
        ("   ", "chunk message is not JSON: it is empty"),
        ('{"run_id": "r1", "chunk_id": 1', "chunk message is not JSON: Expecting ',' delimiter: line 1 column 31"),
        ('{"run_id": "r1", "run_id": "r2"}', "chunk message is not JSON: key 'run_id' is given twice"),
        ('{"chunk_id": NaN}', "chunk message is not JSON: NaN is not a JSON value"),
        ('{"chunk_id": Infinity}', "chunk message is not JSON: Infinity is not a JSON value"),
        ("[1, 2]", "invalid chunk message: (top level)=[1, 2]: must be a JSON object"),
    ],
)
def test_message_bodies_are_json_as_the_standard_defines_it(body, fragment):
    with pytest.raises(BadInputError) as refused:
        parse_message(body)
    assert str(refused.value) == fragment


ENV = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "x"}


@pytest.mark.parametrize(
    "name, value, fix",
    [
        ("IDEMPOTENCY_ENABLED", "yes", "is not a boolean; set it to true or false"),  # pydantic took it for true
        ("IDEMPOTENCY_ENABLED", "1", "is not a boolean; set it to true or false"),
        ("IDEMPOTENCY_ENABLED", "off", "is not a boolean; set it to true or false"),
        ("DEFAULT_CHUNK_ROWS", "1.5", "is not a whole number; set it to digits only"),
        ("DEFAULT_CHUNK_ROWS", "1.0", "is not a whole number; set it to digits only"),
        ("DEFAULT_CHUNK_ROWS", " 5", "is not a whole number; set it to digits only"),
        ("DEFAULT_CHUNK_ROWS", "1_000", "is not a whole number; set it to digits only"),
        ("MAX_RECEIVE_COUNT", "", "is not a whole number; set it to digits only"),
        ("RETRY_BASE_SECONDS", "nan", "is not a number; set it to a decimal such as 0.5"),
        ("RETRY_BASE_SECONDS", "inf", "is not a number; set it to a decimal such as 0.5"),
        ("RETRY_BASE_SECONDS", "0,5", "is not a number; set it to a decimal such as 0.5"),
    ],
)
def test_environment_values_are_parsed_strictly_and_named(name, value, fix):
    with pytest.raises(BadInputError) as refused:
        settings_from({**ENV, name: value})
    assert str(refused.value) == f"environment variable {name}={value!r} {fix}"


def test_environment_values_in_their_documented_forms_are_taken():
    s = settings_from(
        {**ENV, "IDEMPOTENCY_ENABLED": "False", "DEFAULT_CHUNK_ROWS": "5000", "RETRY_BASE_SECONDS": "2.5e-1"}
    )
    assert (s.idempotency_enabled, s.default_chunk_rows, s.retry_base_seconds) == (False, 5000, 0.25)
    assert settings_from({**ENV, "IDEMPOTENCY_ENABLED": "TRUE", "CDC_MAX_SECONDS": "120"}).cdc_max_seconds == 120.0
    with pytest.raises(BadInputError, match=r"^invalid environment: DEFAULT_MODE='fast': Input should be 'full'"):
        settings_from({**ENV, "DEFAULT_MODE": "fast"})
    with pytest.raises(BadInputError, match="ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY='yes' is not a boolean"):
        rotation_settings({"ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY": "yes"})
    with pytest.raises(BadInputError, match="ROTATION_PASSWORD_LENGTH='32.0' is not a whole number"):
        rotation_settings({"ROTATION_PASSWORD_LENGTH": "32.0"})
    assert rotation_settings({"ROTATION_SNOWFLAKE_UNSET_PREVIOUS_KEY": "true"}).unset_previous_key is True


def test_rotation_events_are_strictly_typed():
    event = json.loads((ROOT / "events" / "rotation-create.json").read_text())
    assert parse_rotation_event(event).step == "createSecret"
    with pytest.raises(BadInputError, match="invalid rotation event: ClientRequestToken=123"):
        parse_rotation_event({**event, "ClientRequestToken": 12345678901234567890123456789012345})
    with pytest.raises(BadInputError, match=r"Step=\['createSecret'\]"):
        parse_rotation_event({**event, "Step": ["createSecret"]})


def test_health_events_are_the_schedules_or_a_function_urls():
    assert is_function_url({}) is False
    assert is_function_url(json.loads((ROOT / "events" / "health-function-url.json").read_text())) is True
    for event, fragment in (
        ([], "health event must be a JSON object, got list []"),
        ({"tables": "*"}, "invalid health event: 'tables': unknown field(s)"),
        ({"requestContext": "GET /"}, "invalid health event: requestContext='GET /': a Function URL request"),
    ):
        with pytest.raises(BadInputError) as refused:
            is_function_url(event)
        assert str(refused.value).startswith(fragment)


# ---- the CLI: bad input exits 2 with one line, before anything starts ------------------------------

URLS = ["--source", "mysql://u@127.0.0.1:1/d", "--target", "snowflake://a:b@acct/DB/SCHEMA"]


def _cli(tmp_path, capsys, *argv: str) -> tuple[int, list[str]]:
    code = cli.main(["--home", str(tmp_path / "home"), *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.splitlines()


@pytest.mark.parametrize(
    "content, line",
    [
        ("", "error: event file '{path}' is not JSON: it is empty"),
        (
            '{"tables": "orders", "mo',
            "error: event file '{path}' is not JSON: Unterminated string starting at: line 1 column 22",
        ),
        (
            '{"tables": "orders", "chunk_rows": true}',
            "error: invalid run request: chunk_rows=True: Input should be a valid integer",
        ),
        (
            '{"tables": "orders", "chunk_size": 5}',
            "error: invalid run request: chunk_size=5: unknown field; the fields are chunk_rows, database_mapping, "
            "databases, follow_seconds, mode, resnapshot, run_id, start_position, table_options, tables, watermark_columns",
        ),
        (
            '{"resume_run": "r1", "mode": "full"}',
            "error: invalid resume request: mode='full': unknown field; the fields are resume_run",
        ),
    ],
)
def test_invoke_with_a_bad_event_file_exits_2_with_one_line(tmp_path, capsys, content, line):
    path = tmp_path / "event.json"
    path.write_text(content)
    code, err = _cli(tmp_path, capsys, "invoke", "scheduler", str(path), *URLS)
    assert (code, err) == (2, [line.format(path=path)])
    assert not (tmp_path / "home" / "state.json").exists()  # no stack started, nothing written


def test_invoke_refuses_unknown_functions_missing_files_and_malformed_records(tmp_path, capsys):
    code, err = _cli(tmp_path, capsys, "invoke", "sheduler", str(ROOT / "events" / "scheduler.json"), *URLS)
    assert code == 2 and err == [
        "error: unknown function 'sheduler'; name one of scheduler, worker, health, rotation (or its logical id: "
        "SchedulerFunction, WorkerFunction, HealthFunction, RotationFunction)"
    ]
    code, err = _cli(tmp_path, capsys, "invoke", "worker", str(tmp_path / "nope.json"), *URLS)
    assert code == 2 and err == [
        f"error: event file '{tmp_path / 'nope.json'}' does not exist; give a JSON event file, e.g. events/scheduler.json"
    ]
    code, err = _cli(tmp_path, capsys, "invoke", "worker", str(ROOT / "events" / "worker-malformed.json"), *URLS)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: invalid worker event: Records.0.body: invalid chunk message: run_id='x; DROP")
    event = tmp_path / "health.json"
    event.write_text('{"check": "all"}')
    code, err = _cli(tmp_path, capsys, "invoke", "health", str(event), *URLS)
    assert code == 2 and err == [
        "error: invalid health event: 'check': unknown field(s); a direct invoke is {} and a Function URL request "
        "has requestContext"
    ]
    assert not (tmp_path / "home" / "state.json").exists()


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["run", *URLS, "--workers", "1.5"],
            "error: replicate run: argument --workers: '1.5' is not a whole number of at least 1; see `replicate run --help`",
        ),
        (
            ["run", *URLS, "--workers", "0"],
            "error: replicate run: argument --workers: '0' is not a whole number of at least 1; see `replicate run --help`",
        ),
        (  # 0 was silently dropped: the run went ahead with the default size
            ["run", *URLS, "--chunk-rows", "0"],
            "error: replicate run: argument --chunk-rows: '0' is not a whole number of at least 1; see `replicate run --help`",
        ),
        (
            ["run", *URLS, "--chunk-rows", "20000000"],
            "error: invalid run request: chunk_rows=20000000: Input should be less than or equal to 10000000",
        ),
        (["run", *URLS, "--tables", "a,a"], "error: invalid run request: tables='a,a': table 'a' is listed twice"),
        (
            ["run", *URLS, "--mode", "full", "--resnapshot"],
            "error: --resnapshot goes with --mode cdc: it takes a new initial copy of the tables",
        ),
        (
            ["resume", "../r1"],
            "error: replicate resume: argument run_id: '../r1' is not a run id (1-64 letters, digits, '-' or '_'; "
            "`replicate status` lists stalled runs); see `replicate resume --help`",
        ),
        (
            ["run", "--source", "postgres://u@h/d", "--target", URLS[3]],
            "error: source must look like mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?tls=true], got 'postgres://u@h/d'",
        ),
        (
            ["demo", "--rows", "-3"],
            "error: replicate demo: argument --rows: '-3' is not a whole number of at least 1; see `replicate demo --help`",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_anything_starts(tmp_path, capsys, argv, line):
    code, err = _cli(tmp_path, capsys, *argv)
    assert (code, err) == (2, [line])
    assert not (tmp_path / "home" / "state.json").exists()


def test_cdc_fields_go_with_mode_cdc_and_resnapshot_names_the_requests_tables():
    with pytest.raises(BadInputError, match="start_position is a field of cdc runs"):
        parse_request({"tables": "a", "mode": "full", "start_position": "now"}, "auto")
    with pytest.raises(BadInputError, match="resnapshot is a field of cdc runs"):
        parse_request({"tables": "a", "resnapshot": True}, "auto")
    with pytest.raises(BadInputError, match="resnapshot names table 'b', which the request's tables do not list"):
        parse_request({"tables": "a", "mode": "cdc", "resnapshot": ["b"]}, "auto")
    with pytest.raises(BadInputError, match="start_position='later'"):
        parse_request({"tables": "a", "mode": "cdc", "start_position": "later"}, "auto")
    request = parse_request({"tables": "a,b", "mode": "cdc", "resnapshot": ["b"], "start_position": "now"}, "auto")
    assert not request.resnapshots("a") and request.resnapshots("b") and request.start_position == "now"
    assert parse_request({"tables": "*", "mode": "cdc", "resnapshot": ["b"]}, "auto").resnapshots("b")
