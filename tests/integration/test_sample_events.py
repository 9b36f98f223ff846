"""The sample events in events/ run through `replicate invoke`, as `sam local invoke -e` would."""

from __future__ import annotations

import json
from pathlib import Path

from aurora_replication_dev import cli

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_rotation_create_secret_sample_runs_against_the_local_secret(env, capsys):
    urls = ["--source", env.source_url, "--target", env.target_url]
    assert cli.main(["--home", str(env.home), "invoke", "rotation", str(EVENTS / "rotation-create.json"), *urls]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :]) == {"step": "createSecret", "result": "created"}
    assert env.db.password not in out  # neither the current nor the new password is printed


def test_health_sample_events_run(env, capsys):
    urls = ["--source", env.source_url, "--target", env.target_url]
    # a direct invoke answers with the report; a Function URL request with an HTTP response around it
    for name, answer in (("health.json", '"checks"'), ("health-function-url.json", '"statusCode"')):
        code = cli.main(["--home", str(env.home), "invoke", "health", str(EVENTS / name), *urls])
        out = capsys.readouterr().out
        assert code == 0, out
        assert answer in out, out
