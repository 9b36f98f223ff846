"""What the bench writes: progress on stderr, figures and target verdicts on stdout, the results as JSON."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [jsonable(x) for x in v]
        return sorted(items, key=str) if isinstance(v, (set, frozenset)) else items
    return v


def rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_targets(targets: list[tuple[str, float | None, Any, str]]) -> list[dict[str, Any]]:
    verdicts = []
    for name, value, test, unit in targets:
        if value is None or value != value:
            verdict, shown = "not measured", "-"
        else:
            verdict = "met" if test(value) else "NOT MET"
            shown = f"{value:+.0%}" if unit == "growth" else f"{value:.2f} {unit}" if unit != "x" else f"{value:.2f} x"
        verdicts.append({"target": name, "value": value, "verdict": verdict})
        print(f"  {verdict:<12} {name:<60} measured {shown}")
    return verdicts


def write_results(out: str, results: dict[str, Any]) -> None:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(results), indent=2) + "\n")
    print(f"\nresults written to {path}")
