"""The handlers refuse bad input with one line before they connect to anything or write anything."""

from __future__ import annotations

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication_dev.local.services import free_port
from aurora_replication_dev.local.stack import parse_source_url


def test_bad_requests_and_events_are_refused_before_any_endpoint_or_write(env):
    # a source nobody listens on: a handler that connected first would report that instead
    unreachable = parse_source_url(f"mysql://{env.db.user}:{env.db.password}@127.0.0.1:{free_port()}/{env.database}")
    stack = env.start_stack(source_secret=unreachable)
    for event, line in (
        ({"tables": "t", "chunk_rows": True}, "invalid run request: chunk_rows=True: Input should be a valid integer"),
        ({"tables": "t", "chunk_rows": "5"}, "invalid run request: chunk_rows='5': Input should be a valid integer"),
        (
            {"tables": "t", "resnapshot": "yes"},
            "invalid run request: resnapshot='yes': must be true, false or a list of table names",
        ),
        (
            {"resume_run": "r1", "force": True},
            "invalid resume request: force=True: unknown field; the fields are resume_run",
        ),
    ):
        with pytest.raises(BadInputError) as refused:
            stack.invoke("SchedulerFunction", event)
        assert str(refused.value) == line
    with pytest.raises(BadInputError, match=r"^invalid health event: 'verbose': unknown field\(s\)"):
        stack.invoke("HealthFunction", {"verbose": True})
    # nothing half-written: no run, table, lease or message
    assert stack.dynamodb.scan(TableName=stack.table_name)["Items"] == []
    assert stack.queue_depth(stack.queue_url) == (0, 0)
    # and the same request, well formed, does reach the endpoint check (which is what fails here)
    with pytest.raises(Exception, match="refused|unreachable|connect"):
        stack.invoke("SchedulerFunction", {"tables": "t", "chunk_rows": 5})
