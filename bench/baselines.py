"""What the project is measured against: the ceiling (the ``mariadb --quick`` client dumping the table to
/dev/null) and the peer (dlt's sql_database source into DuckDB, in a venv of its own)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.output import log
from bench.settings import BENCH, DATABASE, TABLE
from bench.usage import mariadb_pid, process_cpu

DLT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import dlt
    from dlt.sources.sql_database import sql_table

    url, duck_path, pipelines_dir, out = sys.argv[1:5]
    source = sql_table(credentials=url, table="orders", backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench_orders",
        destination=dlt.destinations.duckdb(duck_path),
        dataset_name="bench",
        pipelines_dir=pipelines_dir,
    )
    started = time.perf_counter()
    info = pipeline.run(source, write_disposition="replace")
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT COUNT(*) FROM orders")[0][0]
    json.dump({"seconds": seconds, "rows": int(rows), "dlt_version": dlt.__version__,
               "failed_jobs": bool(info.has_failed_jobs)}, open(out, "w"))
    """
)


def measure_ceiling(db: Any, rows: int, tries: int = 2) -> dict[str, Any]:
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        return {"available": False, "reason": "neither the mariadb nor the mysql client is on PATH"}
    cmd = [
        client,
        "--quick",
        "--batch",
        "--skip-column-names",
        "-h",
        "127.0.0.1",
        "-P",
        str(db.port),
        "-u",
        db.user,
        DATABASE,
        "-e",
        f"SELECT * FROM `{TABLE}`",
    ]
    env = {**os.environ, "MYSQL_PWD": db.password}
    server = mariadb_pid(db)
    times, server_cpu = [], []
    for _ in range(tries):
        before = process_cpu(server) if server else 0.0
        started = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(cmd, stdout=null, check=True, env=env)
        times.append(time.perf_counter() - started)
        server_cpu.append(process_cpu(server) - before if server else None)
    return {
        "available": True,
        "client": client,
        "seconds": min(times),
        "all_seconds": times,
        "rows": rows,
        # MariaDB's CPU for the dump: the least any reader of these rows can cost it (the mean of the tries)
        "mariadb_cpu_seconds": (sum(c or 0.0 for c in server_cpu) / len(server_cpu)) if server else None,
        "all_mariadb_cpu_seconds": server_cpu,
    }


def ensure_dlt_venv() -> tuple[Path | None, str]:
    venv = BENCH / "dlt-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and python.exists():
        return python, ""
    log(f"installing dlt into {venv} (once)...")
    try:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, capture_output=True, text=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "dlt[duckdb,sql_database]", "pyarrow", "sqlalchemy", "pymysql"],
            check=True,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        subprocess.run([str(python), "-c", "import dlt, duckdb, pyarrow, sqlalchemy, pymysql"], check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        reason = "installing dlt failed: " + (str(detail).strip().splitlines() or ["?"])[-1]
        return None, reason
    marker.touch()
    return python, ""


def measure_dlt(db: Any, rows: int) -> dict[str, Any]:
    python, reason = ensure_dlt_venv()
    if python is None:
        return {"available": False, "reason": reason}
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp:
        script, out = Path(tmp) / "dlt_bench.py", Path(tmp) / "out.json"
        script.write_text(DLT_SCRIPT)
        # the DuckDB file must not be named like the dataset ("bench"): DuckDB then finds the
        # catalog and the schema ambiguous and dlt's load step fails
        url = f"mysql+pymysql://{db.user}:{db.password}@127.0.0.1:{db.port}/{DATABASE}"
        env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "RUNTIME__LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        proc = subprocess.run(
            [str(python), str(script), url, str(Path(tmp) / "peer.duckdb"), str(Path(tmp) / "pipelines"), str(out)],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not out.exists():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            errors = [line for line in lines if "Error" in line or "Exception" in line] or lines[-1:]
            return {"available": False, "reason": f"dlt run failed (exit {proc.returncode}): " + errors[-1][:300]}
        result = json.loads(out.read_text())
    ok = result["rows"] == rows and not result["failed_jobs"]
    return {"available": True, "ok": ok, "process_seconds": wall, **result}
