"""The local CLI as an operator uses it, in real processes: Ctrl-C in the middle of `replicate run`,
then `replicate resume`; and two commands against one --home at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from compare import assert_same

GATED = Path(__file__).with_name("gated_replicate.py")


class Output:
    """A process's output (stdout and stderr, as a terminal shows them) as it comes, read by a thread;
    ``wait_for`` awaits a pattern in it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.text = ""
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            with self.changed:
                self.text += chunk.decode(errors="replace")
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while (found := re.search(pattern, self.text)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or (not self.thread.is_alive() and self.proc.poll() is not None):
                    raise AssertionError(f"{pattern!r} not seen; output so far:\n{self.text[-3000:]}")
                self.changed.wait(min(left, 1.0))
            return found

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        self.proc.wait(timeout=timeout)
        self.thread.join(timeout=10)
        return self.proc.returncode, self.text


def _replicate(env, *argv: str, gate: Path | None = None, lock_wait: float | None = None) -> Output:
    """`replicate [--lock-wait S] <argv>` on the test's home, as its own process group (a terminal's
    Ctrl-C goes to the foreground group); with ``gate``, through gated_replicate.py."""
    head = [str(GATED)] if gate is not None else ["-m", "aurora_replication_dev.cli"]
    wait = ["--lock-wait", str(lock_wait)] if lock_wait is not None else []
    environ = {**os.environ, "REPLICATE_TEST_GATE": str(gate or "")}
    proc = subprocess.Popen(
        [sys.executable, *head, "--home", str(env.home), *wait, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=environ,
    )
    return Output(proc)


def _run_args(env, table: str) -> list[str]:
    return [
        "run",
        "--source",
        env.source_url,
        "--target",
        env.target_url,
        "--tables",
        table,
        "--mode",
        "full",
        "--chunk-rows",
        "20",
        "--workers",
        "1",
    ]


def _await_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before {path.name}"
        assert time.monotonic() < deadline, f"{path.name} not written in {timeout} s"
        time.sleep(0.05)  # another process's file: polled


def _saved_runs(home: Path) -> dict[str, str]:
    """run id -> status, from the state file the commands leave behind."""
    items = json.loads((home / "state.json").read_text())["items"]
    return {
        i["pk"]["S"].removeprefix("RUN#"): i.get("status", {}).get("S", "?")
        for i in items
        if i["pk"]["S"].startswith("RUN#") and i["sk"]["S"] == "RUN"
    }


def _saved_chunks(home: Path, run_id: str, table: str) -> set[int]:
    """The chunk ids of ``table`` the run's saved ledger records as copied."""
    items = json.loads((home / "state.json").read_text())["items"]
    prefix = f"CHUNK#{table}#"
    return {
        int(i["sk"]["S"][len(prefix) :])
        for i in items
        if i["pk"]["S"] == f"RUN#{run_id}" and i["sk"]["S"].startswith(prefix) and "attempt" in i
    }


def test_ctrl_c_stops_a_run_cleanly_and_resume_finishes_it(env, tmp_path):
    env.sql(
        "CREATE TABLE ci (id INT PRIMARY KEY, v VARCHAR(20), n DECIMAL(10,2))",
        "INSERT INTO ci SELECT seq, CONCAT('row ', seq), seq / 7 FROM seq_1_to_200",
    )
    gate = tmp_path / "gate"
    gate.mkdir()
    run = _replicate(env, *_run_args(env, "ci"), gate=gate)
    run_id = run.wait_for(r"run (\S+): starting")[1]  # printed before any work
    _await_file(gate / "in-flight", run.proc)  # chunk 1 is read and held: a chunk in flight
    assert (gate / "in-flight").read_text() == run_id

    os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    run.wait_for("interrupt: stopping; each worker finishes the invocation it is in", timeout=60)
    assert run.proc.poll() is None  # it waits for the chunk in flight
    (gate / "release").touch()  # the chunk in flight finishes its invocation; no new one starts
    code, out = run.finish(timeout=180)
    assert code == 130, out[-3000:]
    assert f"interrupted; resume with `replicate resume {run_id}`" in out.splitlines()
    assert "Traceback" not in out
    assert _saved_runs(env.home)[run_id] == "running"  # its ledger was kept, and it is not finished
    done = _saved_chunks(env.home, run_id, "ci")
    assert 1 in done and len(done) < 10  # the chunk in flight finished and was recorded; the rest wait

    resume = _replicate(env, "resume", run_id, "--source", env.source_url, "--target", env.target_url)
    code, out = resume.finish(timeout=300)
    assert code == 0, out[-3000:]
    assert f"run {run_id}: OK" in out
    assert _saved_runs(env.home)[run_id] == "succeeded"
    assert assert_same(env, "ci") == 200


def test_two_commands_on_one_home_wait_or_refuse_and_no_ledger_is_lost(env, tmp_path):
    env.sql(
        "CREATE TABLE la (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO la SELECT seq, CONCAT('a', seq) FROM seq_1_to_60",
        "CREATE TABLE lb (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO lb SELECT seq, CONCAT('b', seq) FROM seq_1_to_60",
    )
    gate = tmp_path / "gate"
    gate.mkdir()
    first = _replicate(env, *_run_args(env, "la"), gate=gate)
    first_id = first.wait_for(r"run (\S+): starting")[1]
    _await_file(gate / "in-flight", first.proc)  # the first run is in the middle of its work

    refused = _replicate(env, *_run_args(env, "lb"))  # no --lock-wait: refused at once
    code, out = refused.finish(timeout=60)
    assert code == 75, out
    assert out.splitlines() == [
        f"error: --home {env.home} is in use by pid {first.proc.pid} (replicate run); wait for it to finish "
        "(--lock-wait SECONDS waits for it), or give this command another --home"
    ]
    status = _replicate(env, "status", "--source", env.source_url, "--target", env.target_url)
    assert status.finish(timeout=60)[0] == 75  # any command that reads and writes the state file

    waiting = _replicate(env, *_run_args(env, "lb"), lock_wait=300)
    waiting.wait_for(rf"waiting up to 300 s for --home {re.escape(str(env.home))}, in use by pid {first.proc.pid}")
    assert waiting.proc.poll() is None and "starting" not in waiting.text  # it waits; it has not started

    (gate / "release").touch()
    code, out = first.finish(timeout=300)
    assert code == 0, out[-3000:]
    second_id = waiting.wait_for(r"run (\S+): starting")[1]  # the first let go: the second runs now
    code, out = waiting.finish(timeout=300)
    assert code == 0, out[-3000:]

    runs = _saved_runs(env.home)  # both runs' ledgers are in the state file: neither overwrote the other
    assert runs[first_id] == "succeeded" and runs[second_id] == "succeeded"
    assert assert_same(env, "la") == 60 and assert_same(env, "lb") == 60


def test_ctrl_c_while_the_scheduler_plans_waits_for_the_run_to_be_recorded(env):
    import pytest

    from aurora_replication.ledger.store import StateStore

    env.sql("CREATE TABLE sp (id INT PRIMARY KEY, v INT)", "INSERT INTO sp SELECT seq, seq FROM seq_1_to_50")
    stack = env.start_stack()
    invoke = stack.invoke

    def ctrl_c_first(function, event):
        if function == "SchedulerFunction" and "resume_run" not in event:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C just as the scheduler starts
        return invoke(function, event)

    stack.invoke = ctrl_c_first
    scheduled = []
    with pytest.raises(KeyboardInterrupt):
        stack.run({"tables": "sp", "mode": "full", "chunk_rows": 10}, workers=1, on_scheduled=scheduled.append)
    (summary,) = scheduled  # the scheduler's invocation finished before the interrupt was raised
    state = StateStore(stack.table_name)
    run = state.get_run(summary["run_id"])
    chunks = int(run["table_states"]["sp"]["chunk_count"])
    assert run["status"] == "running" and chunks > 1
    assert len(state.get_bounds(summary["run_id"], "sp")) == chunks  # recorded whole: every chunk's range
    assert stack.run({"resume_run": summary["run_id"]}, workers=1).ok
    assert assert_same(env, "sp") == 50
