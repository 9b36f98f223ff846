"""The health function's metrics: lag per table and its maximum, stalled runs, dead letters, failing checks."""

from __future__ import annotations

import json

import pytest

from aurora_replication.ops.health_metrics import gauges, publish


def _report(**checks):
    base = {
        "mysql": {"ok": True, "detail": "connected (8.0)"},
        "dead_letter_queue": {
            "ok": False,
            "depth": 3,
            "oldest_age_seconds": 420,
            "tables": ["orders (run r1)"],
            "detail": "3 message(s)",
        },
        "replication": {
            "ok": False,
            "tables": {
                "orders": {"last_run": "r1", "status": "published", "at": 1795760000, "lag_seconds": 900},
                "customers": {"last_run": "r1", "status": "failed", "at": 1795762000, "lag_seconds": 120},
                "audit_log": {"watermark": "42"},  # never finished a run: no lag to report
            },
            "stalled_runs": [
                {"run_id": "r0", "running_for_seconds": 7200},
                {"run_id": "r2", "running_for_seconds": 3700},
            ],
            "detail": "...",
        },
    }
    base.update(checks)
    failing = [n for n, c in base.items() if not c.get("ok", True)]
    return {"healthy": not failing, "failing": failing, "checks": base, "checked_at": 1795763200}


def _by_name(gs):
    return {(g.name, tuple(sorted(g.dimensions.items()))): g.value for g in gs}


def test_gauges_from_a_full_report():
    assert _by_name(gauges(_report())) == {
        ("ReplicationLagSeconds", (("table", "customers"),)): 120.0,
        ("ReplicationLagSeconds", (("table", "orders"),)): 900.0,
        ("MaxReplicationLagSeconds", ()): 900.0,
        ("StalledRuns", ()): 2.0,
        ("DeadLetterMessages", ()): 3.0,
        ("FailingChecks", ()): 2.0,
    }


def test_a_separate_stalled_check_wins_over_the_replication_check():
    report = _report(stalled={"ok": False, "count": 5})
    assert _by_name(gauges(report))[("StalledRuns", ())] == 5.0
    report = _report(stalled={"ok": False, "runs": [{"run_id": "x"}]})
    assert _by_name(gauges(report))[("StalledRuns", ())] == 1.0


def test_no_stalled_information_at_all_publishes_zero():
    report = _report()
    del report["checks"]["replication"]
    values = _by_name(gauges(report))
    assert values[("StalledRuns", ())] == 0.0
    assert not any(name == "ReplicationLagSeconds" for name, _ in values)


def test_a_failed_check_without_data_is_not_published_as_zero():
    report = _report(
        replication={"ok": False, "detail": "no answer within 10 s"},
        dead_letter_queue={"ok": False, "detail": "AccessDenied"},
    )
    names = {name for name, _ in _by_name(gauges(report))}
    assert names == {"FailingChecks"}


def test_publish_prints_one_emf_line_per_gauge_with_service_and_table_dimensions(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "AuroraSnowflakeReplication")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "aurora-snowflake-replication")
    published = publish(_report())
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == len(published) == 6
    by_metric = {}
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "AuroraSnowflakeReplication"
        (metric,) = directive["Metrics"]
        assert line["service"] == "aurora-snowflake-replication"
        by_metric.setdefault(metric["Name"], []).append((line, sorted(directive["Dimensions"][0])))
    # Powertools writes each value as a list of samples
    lag = {entry["table"]: entry["ReplicationLagSeconds"] for entry, _ in by_metric["ReplicationLagSeconds"]}
    assert lag == {"orders": [900.0], "customers": [120.0]}
    assert all(dims == ["service", "table"] for _, dims in by_metric["ReplicationLagSeconds"])
    ((max_line, max_dims),) = by_metric["MaxReplicationLagSeconds"]
    assert max_dims == ["service"] and max_line["MaxReplicationLagSeconds"] == [900.0]
    assert by_metric["StalledRuns"][0][0]["StalledRuns"] == [2.0]


@pytest.mark.parametrize("lag", [True, "900", None])
def test_non_numeric_lag_is_ignored(lag):
    report = _report()
    report["checks"]["replication"]["tables"] = {"t": {"lag_seconds": lag}}
    assert not [g for g in gauges(report) if "Lag" in g.name]
