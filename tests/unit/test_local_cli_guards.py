"""The local CLI's two guards without servers: Ctrl-C held back while a step must finish, and the
--home lock (re-entrant in a process, exclusive between processes, released when its holder ends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aurora_replication_dev.local import home_lock, interrupts


def test_ctrl_c_inside_a_deferred_step_is_raised_once_the_step_is_done(capsys):
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred("the step"):
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # pressed twice: still one step, finished
            done.append("the rest of the step ran")
    assert done == ["the rest of the step ran"]
    assert capsys.readouterr().err.count("interrupt: finishing the step first") == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    with interrupts.deferred("a quiet step"):  # no Ctrl-C: nothing raised
        pass


def _try_lock(home, wait: float = 0.0) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from aurora_replication_dev.local import home_lock
        try:
            home_lock.acquire(Path({str(home)!r}), "replicate test", {wait})
        except home_lock.HomeInUseError as e:
            print(e)
            raise SystemExit(75)
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_home_lock_is_exclusive_between_processes_and_reentrant_within_one(tmp_path):
    home = tmp_path / "home"
    home_lock.acquire(home, "replicate run")
    home_lock.acquire(home, "a local stack")  # the same process again: no wait
    try:
        other = _try_lock(home)
        assert other.returncode == 75
        assert other.stdout.strip() == (
            f"--home {home} is in use by pid {os.getpid()} (replicate run); wait for it to finish "
            "(--lock-wait SECONDS waits for it), or give this command another --home"
        )
        home_lock.release(home)  # one level of two: still held
        assert _try_lock(home, wait=0.3).returncode == 75
    finally:
        home_lock.release(home)
    assert _try_lock(home).returncode == 0  # let go: another process takes it (and its end releases it)
    assert _try_lock(home).returncode == 0


def test_bad_input_is_exit_2_even_while_another_command_holds_the_home(tmp_path, capsys):
    from aurora_replication_dev import cli

    home = tmp_path / "home"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from aurora_replication_dev.local import home_lock; "
            f"home_lock.acquire(Path({str(home)!r}), 'replicate run'); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        urls = ["--source", "mysql://u@127.0.0.1:1/d", "--target", "snowflake://a:b@acct/DB/S"]
        assert cli.main(["--home", str(home), "run", *urls, "--tables", "a,a"]) == 2  # not 75: bad input first
        assert capsys.readouterr().err == "error: invalid run request: tables='a,a': table 'a' is listed twice\n"
        assert cli.main(["--home", str(home), "run", *urls]) == 75  # well formed: the home is busy
        assert f"is in use by pid {holder.pid} (replicate run)" in capsys.readouterr().err
    finally:
        holder.communicate("", timeout=30)
