"""SIGKILL the whole local run at random moments, rerun it, and compare source and target completely."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from compare import assert_same

KILLS = int(os.environ.get("REPLICATE_FAULT_KILLS", "14"))  # REPLICATE_FAULT_KILLS=50 for a longer soak
TABLES = ("acct", "ledger", "tags")


def _replicate(env, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aurora_replication_dev.cli",
            "--home",
            str(env.home),
            "run",
            "--source",
            env.source_url,
            "--target",
            env.target_url,
            "--tables",
            "*",
            "--mode",
            mode,
            "--workers",
            "2",
            "--chunk-rows",
            "40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_random_sigkills_leave_no_divergence(env):
    rng = random.Random(int(os.environ.get("REPLICATE_FAULT_SEED", "7")))
    env.sql(
        """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        "INSERT INTO acct (id, balance, name) SELECT seq, seq * 1.5, CONCAT('n', seq) FROM seq_1_to_300",
        "CREATE TABLE ledger (acct_id INT NOT NULL, n INT NOT NULL, amount DECIMAL(10,2), PRIMARY KEY (acct_id, n))",
        "INSERT INTO ledger SELECT 1 + seq % 50, seq, seq / 3 FROM seq_1_to_250",
        "CREATE TABLE tags (tag VARCHAR(20) NOT NULL, note TEXT)",
        "INSERT INTO tags SELECT CONCAT('t', seq % 7), 'dup' FROM seq_1_to_30",
    )
    kills = 0
    for i in range(KILLS):
        mode = "full" if i % 3 == 0 else "auto"
        env.sql(
            f"UPDATE acct SET balance = balance + 1, name = 'it{i}' WHERE id % {rng.randint(3, 17)} = 0",
            f"INSERT INTO acct (id, balance) VALUES ({1000 + i}, {i})",
            f"INSERT INTO ledger VALUES ({rng.randint(1, 50)}, {1000 + i}, {i})",
        )
        proc = _replicate(env, mode)
        time.sleep(rng.uniform(0.3, 4.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        rerun = _replicate(env, mode)
        out, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, out.decode()[-3000:]
        for table in TABLES:
            assert_same(env, table)
    assert kills >= KILLS // 2  # most runs really were killed mid-way
