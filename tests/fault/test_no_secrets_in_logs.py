"""No password, private key or connection URL appears in any log line of a run, even a failing one."""

from __future__ import annotations

from pathlib import Path

from aurora_replication.local.stack import LocalStack, parse_source_url, parse_target_url

ROOT = Path(__file__).resolve().parents[2]
TARGET_PASSWORD = "Tgt-S3cret-Pa55word-xyz"


def test_logs_of_a_full_run_hold_no_secret(env, capsys):
    env.sql("CREATE TABLE s (id INT PRIMARY KEY, v VARCHAR(10))", "INSERT INTO s VALUES (1, 'a'), (2, 'b')")
    target_url = env.target_url.replace("fake:snow@", f"fake:{TARGET_PASSWORD}@")
    stack = LocalStack(env.home, ROOT / "template.yaml")
    env.stack = stack
    stack.start(parse_source_url(env.source_url), parse_target_url(target_url), {"POWERTOOLS_LOG_LEVEL": "DEBUG"})
    assert stack.run({"tables": "s", "mode": "full"}, workers=1).ok
    # and a failing one: an unknown table and a poison message are logged with their errors
    try:
        stack.invoke("SchedulerFunction", {"tables": "nope"})
    except Exception:
        pass
    stack.stop()
    logs = stack.log_path.read_text() + capsys.readouterr().out + capsys.readouterr().err
    assert "chunk copied" in logs  # the logs are really there
    for secret in (env.db.password, TARGET_PASSWORD, env.source_url, target_url):
        assert secret not in logs
