"""Metrics per step (CloudWatch EMF lines in the handlers' log, as Lambda ships them) from a real run."""

from __future__ import annotations

import json


def _emf(out: str) -> list[dict]:
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


def test_worker_publishes_rows_chunks_and_seconds_per_step(env, capsys):
    # the local stack keeps the handlers' output (EMF lines included) off the terminal, in its log file
    env.sql(
        "CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO m SELECT seq, CONCAT('v', seq) FROM seq_1_to_500",
    )
    from aws_lambda_powertools import Metrics

    Metrics().clear_metrics()  # Powertools keeps one metric set per process: start from an empty one
    stack = env.start_stack({"POWERTOOLS_METRICS_DISABLED": "false", "SMALL_CHUNK_ROWS": "100"})
    capsys.readouterr()
    # chunks of 200, 200, 100 rows: two staged files and one small chunk loaded by INSERT
    assert stack.run({"tables": "m", "mode": "full", "chunk_rows": 200}, workers=1).ok
    assert '"_aws"' not in capsys.readouterr().out  # not on the operator's screen
    records = _emf(stack.log_path.read_text())
    steps: dict[str, int] = {}
    rows = chunks = 0
    for r in records:
        names = {m["Name"] for d in r["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
        if "ChunkSeconds" in names:
            steps[r["Step"]] = steps.get(r["Step"], 0) + 1
            assert (
                min(r["ChunkSeconds"]) >= 0 and ["Step", "service"] in r["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            )
        if "RowsCopied" in names:
            rows += sum(r["RowsCopied"]) if isinstance(r["RowsCopied"], list) else r["RowsCopied"]
        if "ChunksCopied" in names:
            chunks += sum(r["ChunksCopied"]) if isinstance(r["ChunksCopied"], list) else r["ChunksCopied"]
    assert rows == 500 and chunks == 3
    assert steps["extract"] == 3 and steps["copy"] == 3 and steps["stage"] == 2
    assert steps["validate"] == 1 and steps["publish"] == 1
