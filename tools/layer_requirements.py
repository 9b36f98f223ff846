"""The layer's requirements.txt, generated from pyproject.toml so the two cannot drift.

The layer gets the project's runtime dependencies (``[project] dependencies``) except those
``[tool.aurora-replication.layer] exclude`` names, each with its reason there (boto3 is in the
Lambda runtime; PyYAML only serves the local stack). ``sam build`` installs the file into the layer.

    python tools/layer_requirements.py          # write layers/aurora_replication/requirements.txt
    python tools/layer_requirements.py --check  # exit 1 when the file differs (make lint)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
REQUIREMENTS = ROOT / "layers" / "aurora_replication" / "requirements.txt"
HEADER = "# Generated from pyproject.toml by tools/layer_requirements.py (make requirements): do not edit.\n"


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if not match:
        raise ValueError(f"pyproject.toml dependency {spec!r} does not start with a distribution name")
    return normalise(match.group(1))


def layer_requirements(pyproject: dict) -> str:
    """The text of the layer's requirements.txt for a parsed pyproject.toml."""
    dependencies: list[str] = pyproject["project"]["dependencies"]
    exclude = pyproject.get("tool", {}).get("aurora-replication", {}).get("layer", {}).get("exclude", {})
    excluded = {normalise(name) for name in exclude}
    names = {requirement_name(d) for d in dependencies}
    unknown = sorted(excluded - names)
    if unknown:
        raise ValueError(f"[tool.aurora-replication.layer] exclude names {unknown}, which are not dependencies")
    kept = sorted((d.strip() for d in dependencies if requirement_name(d) not in excluded), key=requirement_name)
    return HEADER + "".join(f"{d}\n" for d in kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is not what pyproject.toml says")
    args = parser.parse_args(argv)
    expected = layer_requirements(tomllib.loads(PYPROJECT.read_text(encoding="utf-8")))
    current = REQUIREMENTS.read_text(encoding="utf-8") if REQUIREMENTS.exists() else ""
    if args.check:
        if current != expected:
            print(
                f"{REQUIREMENTS.relative_to(ROOT)} differs from pyproject.toml: run make requirements", file=sys.stderr
            )
            return 1
        return 0
    if current != expected:
        REQUIREMENTS.write_text(expected, encoding="utf-8")
        print(f"wrote {REQUIREMENTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
