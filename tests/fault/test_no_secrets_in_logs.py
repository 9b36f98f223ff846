"""No password, private key or connection URL appears in any log line of a run, even a failing one."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from aurora_replication.errors import BadInputError
from aurora_replication_dev.local.stack import LocalStack, parse_source_url, parse_target_url

ROOT = Path(__file__).resolve().parents[2]
TARGET_PASSWORD = "Tgt-S3cret-Pa55word-xyz"


def test_logs_of_a_full_run_hold_no_secret(env, capsys):
    env.sql("CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO s VALUES (1, 'a'), (2, 'b')")
    target_url = env.target_url.replace("fake:snow@", f"fake:{TARGET_PASSWORD}@")
    stack = LocalStack(env.home, ROOT / "template.yaml")
    env.stack = stack
    stack.start(parse_source_url(env.source_url), parse_target_url(target_url), {"POWERTOOLS_LOG_LEVEL": "DEBUG"})
    assert stack.run({"tables": "s", "mode": "full"}, workers=1).ok
    # and failing ones: an unknown table, and a message that does not validate; Lambda writes the
    # error of a failed invocation to the function's log, so their texts are scanned too
    with pytest.raises(BadInputError, match="unknown table") as refused:
        stack.invoke("SchedulerFunction", {"tables": "nope"})
    # a record that fails is a partial batch failure; the worker logs its error
    poisoned = stack.invoke("WorkerFunction", json.loads((ROOT / "events" / "worker-malformed.json").read_text()))
    assert poisoned["batchItemFailures"]
    stack.stop()
    captured = capsys.readouterr()  # once: a second call returns only what was written after the first
    errors = [str(refused.value)]
    logs = "\n".join([stack.log_path.read_text(), captured.out, captured.err, *errors])
    # what is scanned is really there: the handlers logged at DEBUG, the copy, the refused request, the poison's error
    assert logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"]).getEffectiveLevel() == logging.DEBUG
    assert "chunk copied" in logs
    assert '"nope"' in logs
    assert "invalid chunk message" in logs
    for secret in (env.db.password, TARGET_PASSWORD, env.source_url, target_url):
        assert secret not in logs
