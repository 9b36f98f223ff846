"""`make demo` is one of the README's two commands: ``replicate demo`` runs every part OK, and again on
the same home (a fresh dataset, a target emptied of the earlier demo's tables, no stale cdc or history)."""

from __future__ import annotations

from pathlib import Path

from aurora_replication_dev import cli


def test_the_demo_runs_ok_twice_on_one_home(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    try:
        for _ in range(2):
            code = cli.main(["--home", str(home), "demo", "--rows", "3000", "--chunk-rows", "1000"])
            captured = capsys.readouterr()
            out = captured.out + captured.err
            assert code == 0, out
            assert "FAILED" not in out and out.count(": OK in") == 4, out  # full, incremental, cdc twice
            assert "== history mode: versions in COUNTRIES" in out
    finally:
        cli.main(["--home", str(home), "stop"])
