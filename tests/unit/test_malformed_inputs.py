"""Generated malformed run requests and chunk messages: each gets a clear BadInputError, nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_replication.errors import BadInputError
from aurora_replication.pipeline.scheduler import parse_request
from aurora_replication.pipeline.worker import parse_message

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
    if accepted:  # whatever passes is well formed
        request = parse_request(value, "auto")
        assert request.tables and request.mode in ("full", "incremental", "auto")


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
