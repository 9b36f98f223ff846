"""The bench package (``make bench``) holds together: every module imports, and every command
docs/performance.md gives is one its options accept. Nothing is measured here (no servers)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    import bench

    return bench


def test_every_bench_module_imports(bench: ModuleType) -> None:
    names = [m.name for m in pkgutil.iter_modules(bench.__path__) if m.name not in ("__main__", "run")]
    assert {"cli", "suite", "report", "servers", "copies", "cdc", "planning"} <= set(names)
    for name in names:
        importlib.import_module(f"bench.{name}")


def test_the_documented_commands_are_accepted(bench: ModuleType) -> None:
    from bench import cli

    text = (ROOT / "docs" / "performance.md").read_text()
    running = text.split("## Running it", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r'^make bench BENCH_ARGS=("[^"]*"|\S+)', running, re.M)
    commands += re.findall(r"^\.venv/bin/python -m bench (.*)$", running, re.M)
    options = set(re.findall(r"`(--[a-z-]+)", running))
    assert len(commands) >= 8 and len(options) >= 12, (commands, options)
    parser = cli.parser()
    for args in commands:
        parser.parse_args(shlex.split(args.strip('"')))
    known = {o for action in parser._actions for o in action.option_strings}
    assert options <= known, f"documented but not an option: {sorted(options - known)}"


def test_the_cdc_targets_are_of_the_run_until_its_changes_are_visible(bench: ModuleType) -> None:
    """The burst's rate and catch-up ratio are of the scheduler's invocation to the table's commit (its
    changes visible), not of the local run whole with its teardown; a step without a finish time falls back."""
    from bench.cdc import cdc_targets

    step = {"ok": True, "rows": 100_000, "seconds": 10.0, "visible_seconds": 4.0, "write_seconds": 2.0}
    cdc = {"available": True, "changes": [100_000], "cdc": {"100000": step}}
    values = {name.split(" ")[1]: value for name, value, _test, _unit in cdc_targets(cdc)}
    assert values == {"catch-up": 2.0, "run": 25_000.0}
    cdc["cdc"]["100000"] = {**step, "visible_seconds": None}
    values = {name.split(" ")[1]: value for name, value, _test, _unit in cdc_targets(cdc)}
    assert values == {"catch-up": 5.0, "run": 10_000.0}
    cdc["cdc"]["100000"] = {**step, "rows": 99_999}  # not every change applied: nothing to measure
    assert [value for _n, value, _t, _u in cdc_targets(cdc)] == [None, None]


def test_the_window_of_many_tables_is_reported_per_table_and_against_one_table(bench: ModuleType, capsys) -> None:
    from bench.cdc_tables import report_cdc_tables

    many = {
        "tables": 60,
        "changes": 600,
        "scheduler_seconds": 6.0,
        "visible_seconds": 30.0,
        "ok": True,
        "published": 60,
    }
    report_cdc_tables(many, {"scheduler_seconds": 1.5})
    line = capsys.readouterr().out
    assert "60 changed tables (600 changes)" in line and "100 ms a table" in line, line
    assert "4.0 x a window of one table's 1.50 s" in line and "every table published" in line, line
    report_cdc_tables({**many, "ok": False, "published": 59}, None)
    line = capsys.readouterr().out
    assert "NOT ALL PUBLISHED (59)" in line and " x a window" not in line, line
