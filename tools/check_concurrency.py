"""Before `sam deploy`: can this account reserve the concurrency the stack asks for?

The stack reserves concurrency for three functions (scheduler 2, worker `WorkerReservedConcurrency`,
health 2). Lambda lets an account reserve only while at least 100 concurrent executions stay
unreserved (PutFunctionConcurrency; GetAccountSettings shows the limit and what is unreserved), and
a new account's limit can be as low as 10, far below the 1,000 default. CloudFormation would fail
half way through the deployment and roll back; this says so before it starts, with the numbers.

    python tools/check_concurrency.py --env prod    (what `make deploy ENV=prod` runs first)

Exit 0: it fits (or the account could not be asked: said, not fatal); 1: it does not fit.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIN_UNRESERVED = 100  # PutFunctionConcurrency: "leave at least 100 simultaneous executions unreserved"
FIXED = {"scheduler": 2, "health": 2}  # ReservedConcurrentExecutions of the two in template.yaml
WORKER_PARAMETER = "WorkerReservedConcurrency"


def wanted(parameters: dict[str, str], template_default: int) -> dict[str, int]:
    """What the stack reserves per function with these parameter overrides."""
    return {**FIXED, "worker": int(parameters.get(WORKER_PARAMETER, template_default))}


def problem(limit: int, unreserved: int, held_by_stack: int, reserves: dict[str, int]) -> str | None:
    """None when the stack's reservations fit the account; else what does not, and the fixes.
    ``held_by_stack``: what the stack's functions reserve now (an update gives that back first)."""
    total = sum(reserves.values())
    left = unreserved + held_by_stack - total
    if left >= MIN_UNRESERVED:
        return None
    parts = ", ".join(f"{name} {n}" for name, n in reserves.items())
    worker_most = reserves["worker"] + left - MIN_UNRESERVED
    fix = (
        f"lower {WORKER_PARAMETER} to {worker_most} (and WorkerMaximumConcurrency with it)"
        if worker_most >= 2
        else f"{WORKER_PARAMETER} cannot go below 2"
    )
    return (
        f"this stack reserves {total} concurrent executions ({parts}), but the account's Lambda concurrency "
        f"limit is {limit} with {unreserved} unreserved ({held_by_stack} of them held by this stack now): "
        f"{left} would stay unreserved and Lambda keeps at least {MIN_UNRESERVED}, so CloudFormation would fail "
        f"the deployment. {fix}, or raise the account's 'Concurrent executions' quota (Service Quotas, "
        "AWS Lambda; new accounts start far below 1,000) and deploy again"
    )


def overrides(env: str, samconfig: Path = ROOT / "samconfig.toml") -> tuple[str, dict[str, str]]:
    """The stack name and parameter overrides of a samconfig.toml environment."""
    config = tomllib.loads(samconfig.read_text())
    deploy = {**config.get("default", {}).get("deploy", {}).get("parameters", {})}
    deploy.update(config.get(env, {}).get("deploy", {}).get("parameters", {}))
    stack = deploy.get("stack_name") or config.get("default", {}).get("global", {}).get("parameters", {}).get(
        "stack_name", ""
    )
    pairs = (item.split("=", 1) for item in shlex.split(str(deploy.get("parameter_overrides", ""))))
    return str(stack), {k: v for k, v in pairs}


def template_default(template: Path = ROOT / "template.yaml") -> int:
    text = template.read_text()
    found = re.search(rf"^  {WORKER_PARAMETER}:\n(?:    .*\n)*?    Default: (\d+)", text, re.M)
    if not found:
        raise SystemExit(f"template.yaml has no {WORKER_PARAMETER} parameter with a Default")
    return int(found.group(1))


def held_by(stack: str, cloudformation: Any, lambda_: Any) -> int:
    """What the stack's functions reserve now (0 for a stack not deployed yet)."""
    try:
        resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    except cloudformation.exceptions.ClientError:
        return 0
    held = 0
    for r in resources:
        if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId"):
            concurrency = lambda_.get_function_concurrency(FunctionName=r["PhysicalResourceId"])
            held += int(concurrency.get("ReservedConcurrentExecutions") or 0)
    return held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dev", help="the samconfig.toml environment (make deploy ENV=...)")
    args = parser.parse_args(argv)
    stack, params = overrides(args.env)
    reserves = wanted(params, template_default())
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        lambda_ = boto3.client("lambda")
        limit_info = lambda_.get_account_settings()["AccountLimit"]
        held = held_by(stack, boto3.client("cloudformation"), lambda_)
    except (ImportError, BotoCoreError, ClientError) as e:
        print(f"concurrency check skipped: the account could not be asked ({e}); see docs/deploying.md")
        return 0
    found = problem(
        int(limit_info["ConcurrentExecutions"]), int(limit_info["UnreservedConcurrentExecutions"]), held, reserves
    )
    if found:
        print(f"{stack}: {found}", file=sys.stderr)
        return 1
    print(f"{stack}: reserves {sum(reserves.values())} concurrent executions; the account has room")
    return 0


if __name__ == "__main__":
    sys.exit(main())
