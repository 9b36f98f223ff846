"""`sam build` output: every function with its layers fits Lambda's 250 MB unzipped limit."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
LIMIT = 250 * 1024 * 1024


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.fixture(scope="module")
def build() -> Path:
    if not (BUILD / "template.yaml").exists():
        sam = ROOT / ".venv-sam" / "bin" / "sam"
        if not sam.exists() and not shutil.which("sam"):
            pytest.fail("SAM CLI is missing: run `make sam` (make test does)")
        subprocess.run(
            [str(sam) if sam.exists() else "sam", "build"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        )
    return BUILD


def test_each_function_with_its_layer_is_under_the_unzipped_limit(build: Path):
    layer = _size(build / "ReplicationLayer")
    assert (build / "ReplicationLayer" / "python" / "aurora_replication" / "pipeline" / "worker.py").exists()
    assert (build / "ReplicationLayer" / "python" / "snowflake" / "connector").is_dir()
    for function in ("SchedulerFunction", "WorkerFunction"):
        total = _size(build / function) + layer
        assert total < LIMIT, f"{function} with its layer is {total / 2**20:.0f} MB unzipped"


def test_the_built_layer_holds_only_what_lambda_runs(build: Path):
    """The local stack, the emulator's launcher and the CLI stay out of what Lambda loads."""
    python = build / "ReplicationLayer" / "python"
    assert (python / "aurora_replication" / "pipeline" / "worker.py").exists()
    cdc = python / "aurora_replication" / "pipeline" / "modes" / "cdc"  # a package inside a package
    assert {p.name for p in cdc.glob("*.py")} >= {"__init__.py", "mode.py", "reader.py", "follow.py", "health.py"}
    assert not (python / "aurora_replication" / "local").exists()
    assert not (python / "aurora_replication" / "cli.py").exists()
    assert not (python / "aurora_replication_dev").exists()
    assert not list(python.glob("moto*")) and not list(python.glob("fakesnow*"))


def test_the_built_template_is_one_cloudformation_accepts(build: Path):
    """What `sam deploy` uploads is the built template: translated as CloudFormation's SAM transform
    does, it passes the rehearsal's checks (functions allowed in Rules, Conditions, resources and
    outputs; parameters, rules, conditions and every reference resolved)."""
    from aurora_replication_dev.local import cloudformation as cfn

    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
    parameters = {"SourceSecretArn": secret.format("source"), "TargetSecretArn": secret.format("target")}
    doc = cfn.translate(build / "template.yaml", parameters)
    assert cfn.placement_problems(doc) == []
    resolved = cfn.resolve(doc, parameters)
    assert {"ChunkQueue", "WorkerFunction", "StateTable"} <= set(resolved.doc["Resources"])
