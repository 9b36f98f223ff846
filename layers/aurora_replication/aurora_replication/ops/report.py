"""One run as a self-contained HTML page: per table the status, rows, validation and notes; a timeline
of every chunk attempt per worker with its steps; where the time went.

Everything is inline (CSS, SVG, a few lines of JavaScript): the page opens from a file with no
network. The data comes from the ledger (``StateStore.get_run`` and ``get_attempts``), so the same
page can be made for a local run (``replicate report RUN_ID``) and for one in AWS (``--state-table``).
"""

from __future__ import annotations

import json
import math
import os
import time
from html import escape
from typing import Any

from aurora_replication.cost import estimate as cost
from aurora_replication.cost import ledger as cost_ledger
from aurora_replication.ledger.chunks import AttemptItem
from aurora_replication.ledger.keys import Scope
from aurora_replication.ledger.runs import RunItem, every_table_published
from aurora_replication.ledger.store import StateStore

STEPS = ["extract", "stage", "copy", "merge", "reconcile", "validate", "publish"]
COLOURS = {
    "extract": "#4e79a7",
    "stage": "#f28e2b",
    "copy": "#59a14f",
    "merge": "#b07aa1",
    "reconcile": "#9c755f",
    "validate": "#edc948",
    "publish": "#76b7b2",
    "other": "#c9ced6",
}
LANE = 30  # px per worker lane
LEFT = 150  # px for the lane labels
WIDTH = 1100  # px of the SVG


def build(state: StateStore, run_id: str) -> str:
    """The page for ``run_id``, read from the ledger."""
    run = state.get_run(run_id)
    if not run.get("sk") and not run.get("table_states"):
        from aurora_replication.errors import BadInputError

        raise BadInputError(f"no run {run_id!r} in the state table; `replicate status` lists the latest runs")
    return render(run_id, run, state.get_attempts(run_id), costs(run, cost_ledger.get_figures(state.table, run_id)))


def costs(run: RunItem, figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each table's estimated cost (cost/estimate.py) at the prices the environment names."""
    return cost.run_costs(run, figures, cost.Prices.from_environ(os.environ))


def _cost_rows(costs: dict[str, dict[str, Any]]) -> str:
    if not costs:
        return '<tr><td colspan="8">no cost figures recorded for this run</td></tr>'
    rows = []
    for name, c in costs.items():
        s = c["by_service"]
        cells = "".join(f"<td>{cost.money(s[k])}</td>" for k in cost.SERVICES)
        flag = "nothing changed: no rows moved, yet it cost this" if c["nothing_changed"] else ""
        rows.append(
            f"<tr><td>{escape(name)}</td>{cells}<td><b>{cost.money(c['estimated_cost'])}</b></td>"
            f"<td>{c['snowflake_credits']:.6f} ({escape(c['snowflake_basis'])})</td><td>{flag}</td></tr>"
        )
    return "".join(rows)


def _steps(attempt: AttemptItem) -> list[tuple[str, float, float]]:
    try:
        return [(str(s), float(o), float(d)) for s, o, d in json.loads(str(attempt.get("steps") or "[]"))]
    except (ValueError, TypeError):
        return []


def _scope_line(run: RunItem) -> str:
    """Where the run's tables come from and go to (its ``scope``): the source database, target schema and
    any table-name prefix; what tells the runs of a request naming several databases apart."""
    scope = Scope.from_item(run.get("scope"))
    if scope is None:
        return ""
    prefix = f" (tables named <b>{escape(scope.table_prefix)}</b>…)" if scope.table_prefix else ""
    return (
        f"source database <b>{escape(scope.source_database)}</b> into "
        f"<b>{escape(scope.target_database)}.{escape(scope.target_schema)}</b>{prefix} · "
    )


def _fmt_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _when(epoch: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))
    except (TypeError, ValueError):
        return "-"


def _tick_step(span: float) -> float:
    raw = span / 8 or 1
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else escape(str(value or "-"))


def _chunk_label(a: AttemptItem) -> str:
    return f"{a.get('table')} {'finalise' if a.get('chunk') == 'final' else '#' + str(a.get('chunk'))}"


def _table_rows(run: RunItem, attempts: list[AttemptItem]) -> str:
    rows = []
    for name, t in sorted(run.get("table_states", {}).items()):
        copied = int(t.get("rows_copied") or 0)
        status = str(t.get("status", "?"))
        dead = sorted(t.get("dead_lettered") or (), key=lambda c: int(c))
        if dead:
            status = "failed (chunks in the DLQ)" if status == "running" else status
        tries = [a for a in attempts if a.get("table") == name and a.get("kind") == "chunk"]
        retried = len({a["chunk"] for a in tries}) - len(tries) if tries else 0
        notes = [str(n) for n in (t.get("notes") or [])]
        for c in t.get("schema_changes") or []:
            notes.append(f"schema change: {c.get('change')} {c.get('column')!r} ({c.get('detail')})")
        for key in ("reason", "last_error"):
            if t.get(key):
                notes.append(f"{key.replace('_', ' ')}: {t[key]}")
        if dead:
            notes.append(f"dead-lettered chunk(s): {', '.join(dead)}")
        if retried:
            notes.append(f"{-retried} retried attempt(s)")
        started = float(t.get("started_at") or 0)
        finished = float(t.get("finished_at") or t.get("updated_at") or started)
        seconds = _fmt_seconds(finished - started) if started and finished > started else "-"
        css = "ok" if status == "published" else "bad" if "fail" in status else "warn"
        # chunks done: the ledger's done_count (it may pass the count after a redelivery, never fall short)
        count = int(t.get("chunk_count", 0))
        rows.append(
            "<tr>"
            f"<td>{escape(name)}</td><td>{escape(str(t.get('mode', '-')))}</td>"
            f'<td class="{css}">{escape(status)}</td>'
            f"<td class=num>{min(int(t.get('done_count') or 0), count)}/{count}</td>"
            f"<td class=num>{copied:,}</td>"
            f"<td class=num>{_count(t.get('source_rows'))}</td><td class=num>{_count(t.get('target_rows'))}</td>"
            f"<td>{escape(str(t.get('validation', '-')))}</td><td class=num>{seconds}</td>"
            f"<td class=notes>{'<br>'.join(escape(n) for n in notes) or '-'}</td>"
            "</tr>"
        )
    return "\n".join(rows)


def _timeline(attempts: list[AttemptItem], run: RunItem) -> str:
    if not attempts:
        return '<p class="empty">No chunk attempts were recorded for this run.</p>'
    t0 = min(float(a["start"]) for a in attempts)
    t1 = max(float(a["start"]) + float(a.get("seconds") or 0) for a in attempts)
    span = max(t1 - t0, 0.001)
    scale = (WIDTH - LEFT - 20) / span
    workers: list[str] = []
    for a in sorted(attempts, key=lambda a: float(a["start"])):
        if str(a.get("worker")) not in workers:
            workers.append(str(a.get("worker")))
    dead = {(name, str(c)) for name, t in run.get("table_states", {}).items() for c in (t.get("dead_lettered") or ())}
    tries: dict[tuple[str, str], int] = {}
    for a in attempts:
        key = (str(a.get("table")), str(a.get("chunk")))
        tries[key] = tries.get(key, 0) + 1
    height = 40 + LANE * len(workers)
    out = [f'<svg id="timeline" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">']
    tick = _tick_step(span)
    x = 0.0
    while x <= span + 1e-9:
        px = LEFT + x * scale
        out.append(f'<line x1="{px:.1f}" y1="20" x2="{px:.1f}" y2="{height - 10}" class="grid"/>')
        out.append(f'<text x="{px:.1f}" y="14" class="tick">{_fmt_seconds(x) if x else "0"}</text>')
        x += tick
    for i, w in enumerate(workers):
        y = 24 + i * LANE
        out.append(f'<text x="{LEFT - 8}" y="{y + 15}" class="lane">{escape(w[-22:])}</text>')
        out.append(f'<line x1="{LEFT}" y1="{y + LANE - 2}" x2="{WIDTH - 10}" y2="{y + LANE - 2}" class="lanesep"/>')
    for a in attempts:
        y = 24 + workers.index(str(a.get("worker"))) * LANE
        x0 = LEFT + (float(a["start"]) - t0) * scale
        width = max(float(a.get("seconds") or 0) * scale, 2.0)
        key = (str(a.get("table")), str(a.get("chunk")))
        failed = a.get("status") == "failed"
        classes = ["attempt"] + (["failed"] if failed else []) + (["retried"] if tries[key] > 1 else [])
        if failed and key in dead:
            classes.append("dead")
        steps = _steps(a)
        tip = [
            f"{_chunk_label(a)} (round {a.get('round', 0)}), {a.get('status')}, {_fmt_seconds(a.get('seconds') or 0)}"
        ]
        tip += [f"{s}: {_fmt_seconds(d)}" for s, _, d in steps]
        if a.get("rows") is not None:
            tip.append(f"rows: {int(a.get('rows') or 0):,}")
        if a.get("error"):
            tip.append(str(a["error"]))
        if tries[key] > 1:
            tip.append(f"{tries[key]} attempts of this chunk")
        if key in dead:
            tip.append("dead-lettered")
        chunk_id = escape(f"{key[0]}#{key[1]}", quote=True)
        out.append(f'<g class="{" ".join(classes)}" data-chunk="{chunk_id}"><title>{escape(chr(10).join(tip))}</title>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{width:.1f}" height="{LANE - 10}" fill="{COLOURS["other"]}"/>'
        )
        for step, offset, seconds in steps:
            colour = COLOURS.get(step, "#888")
            sx = x0 + offset * scale
            out.append(
                f'<rect x="{sx:.1f}" y="{y + 3}" width="{max(seconds * scale, 0.8):.1f}" '
                f'height="{LANE - 10}" fill="{colour}" class="step-{escape(step)}"/>'
            )
        if failed:
            out.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{width:.1f}" height="{LANE - 10}" class="failmark"/>')
        label = _chunk_label(a) + (" ✗" if failed else "") + (" DLQ" if failed and key in dead else "")
        if width > 7 * len(label):
            out.append(f'<text x="{x0 + 3:.1f}" y="{y + 17}" class="label">{escape(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def _where_time_went(attempts: list[AttemptItem]) -> str:
    totals: dict[str, float] = {}
    for a in attempts:
        steps = _steps(a)
        for step, _, seconds in steps:
            totals[step] = totals.get(step, 0.0) + seconds
        totals["other"] = totals.get("other", 0.0) + max(float(a.get("seconds") or 0) - sum(d for _, _, d in steps), 0)
    if not totals:
        return ""
    biggest = max(totals.values()) or 1
    order = [s for s in [*STEPS, "other"] if s in totals] + sorted(set(totals) - {*STEPS, "other"})
    out = [f'<svg id="steps" width="700" height="{24 * len(order) + 10}" role="img">']
    whole = sum(totals.values()) or 1
    for i, step in enumerate(order):
        w = 420 * totals[step] / biggest
        y = 6 + i * 24
        out.append(f'<text x="110" y="{y + 14}" class="lane">{escape(step)}</text>')
        out.append(f'<rect x="120" y="{y}" width="{max(w, 1):.1f}" height="18" fill="{COLOURS.get(step, "#888")}"/>')
        out.append(
            f'<text x="{126 + w:.1f}" y="{y + 14}" class="val">'
            f"{_fmt_seconds(totals[step])} ({100 * totals[step] / whole:.0f} %)</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _attempt_rows(attempts: list[AttemptItem]) -> str:
    rows = []
    for a in sorted(attempts, key=lambda a: (str(a.get("table")), str(a.get("chunk")).zfill(9), float(a["start"]))):
        steps = ", ".join(f"{s} {_fmt_seconds(d)}" for s, _, d in _steps(a))
        rows.append(
            f"<tr><td>{escape(_chunk_label(a))}</td><td class=num>{a.get('round', 0)}</td>"
            f"<td>{escape(str(a.get('worker')))}</td><td>{_when(a['start'])}</td>"
            f"<td class=num>{_fmt_seconds(float(a.get('seconds') or 0))}</td>"
            f'<td class="{"bad" if a.get("status") == "failed" else "ok"}">{escape(str(a.get("status")))}</td>'
            f"<td class=num>{'' if a.get('rows') is None else f'{int(a.get("rows") or 0):,}'}</td>"
            f"<td>{escape(steps)}</td><td class=notes>{escape(str(a.get('error') or ''))}</td></tr>"
        )
    return "\n".join(rows)


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555;margin-bottom:8px} .meta b{color:#1d2430}
table{border-collapse:collapse;margin:4px 0} th,td{border-bottom:1px solid #e3e6ea;padding:4px 10px;
text-align:left;vertical-align:top} th{background:#f5f6f8;font-weight:600} td.num{text-align:right;
font-variant-numeric:tabular-nums} td.notes{max-width:420px;color:#444;font-size:12px}
.ok{color:#1a7f37} .bad{color:#c62828;font-weight:600} .warn{color:#9a6700}
.verdict{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600}
.verdict.ok{background:#dafbe1} .verdict.bad{background:#ffebe9}
svg text{font:11px system-ui,sans-serif;fill:#333} .tick{text-anchor:middle;fill:#666}
.lane{text-anchor:end} .grid{stroke:#eceef1} .lanesep{stroke:#f3f4f6}
.label{fill:#1d2430;font-weight:600;pointer-events:none;paint-order:stroke;stroke:#fff;stroke-width:3px}
.val{text-anchor:start;fill:#333} .attempt{cursor:pointer}
.failmark{fill:url(#hatch);stroke:#c62828;stroke-width:2}
.attempt.retried rect:first-of-type{stroke:#333;stroke-dasharray:3 2}
.attempt.dim{opacity:.25} .legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.empty{color:#666} details summary{cursor:pointer;color:#0550ae} #js-errors{color:#c62828}
"""

SCRIPT = """
(function () {
  var groups = document.querySelectorAll('#timeline .attempt');
  groups.forEach(function (g) {
    g.addEventListener('mouseenter', function () {
      var chunk = g.getAttribute('data-chunk');
      groups.forEach(function (o) { if (o.getAttribute('data-chunk') !== chunk) o.classList.add('dim'); });
    });
    g.addEventListener('mouseleave', function () { groups.forEach(function (o) { o.classList.remove('dim'); }); });
  });
  document.getElementById('attempt-count').textContent = String(groups.length);
  document.body.setAttribute('data-ready', 'yes');
})();
"""


def render(
    run_id: str, run: RunItem, attempts: list[AttemptItem], costs: dict[str, dict[str, Any]] | None = None
) -> str:
    states = run.get("table_states", {})
    ok = every_table_published(run)
    rows = sum(int(t.get("rows_copied") or 0) for t in states.values())
    started = run.get("created_at")
    finished = run.get("finished_at")
    duration = _fmt_seconds(float(finished) - float(started)) if started and finished else "-"
    retried = sum(1 for a in attempts if a.get("status") == "failed")
    legend = "".join(f'<span><i style="background:{COLOURS[s]}"></i>{s}</span>' for s in STEPS)
    legend += f'<span><i style="background:{COLOURS["other"]}"></i>other (connect, ledger, send)</span>'
    title = f"Run {escape(run_id)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.__errors = []; window.onerror = function (m) {{ window.__errors.push(String(m)); }};</script>
<style>{CSS}</style></head>
<body>
<h1>{title} <span class="verdict {"ok" if ok else "bad"}">{"OK" if ok else "FAILED"}</span></h1>
<div class="meta">{_scope_line(run)}mode <b>{escape(str(run.get("mode", "-")))}</b> · started <b>{_when(started)}</b> ·
finished <b>{_when(finished) if finished else "not finished"}</b> · took <b>{duration}</b> ·
<b>{len(states)}</b> table(s) · <b>{rows:,}</b> rows copied · <b id="attempt-count">{len(attempts)}</b> attempts,
<b>{retried}</b> failed</div>
<h2>Tables</h2>
<table id="tables"><thead><tr><th>table</th><th>mode</th><th>status</th><th>chunks</th><th>rows copied</th>
<th>source rows</th><th>target rows</th><th>validation</th><th>time</th><th>notes</th></tr></thead>
<tbody>{_table_rows(run, attempts)}</tbody></table>
<h2>Estimated cost (docs/cost.md)</h2>
<table id="cost"><thead><tr><th>table</th><th>Lambda</th><th>SQS</th><th>DynamoDB</th><th>Snowflake</th>
<th>total</th><th>Snowflake credits</th><th></th></tr></thead>
<tbody>{_cost_rows(costs or {})}</tbody></table>
<h2>Timeline: every chunk attempt, per worker</h2>
<div class="legend">{legend}<span>▨ failed attempt (✗; DLQ: dead-lettered)</span>
<span>dashed: a chunk tried more than once</span></div>
<svg width="0" height="0" style="position:absolute"><defs><pattern id="hatch" width="6" height="6"
patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#c62828"
fill-opacity=".55"/></pattern></defs></svg>
{_timeline(attempts, run)}
<h2>Where the time went (sum over attempts)</h2>
{_where_time_went(attempts)}
<details><summary>All attempts ({len(attempts)})</summary>
<table id="attempts"><thead><tr><th>chunk</th><th>round</th><th>worker</th><th>start</th><th>time</th>
<th>status</th><th>rows</th><th>steps</th><th>error</th></tr></thead>
<tbody>{_attempt_rows(attempts)}</tbody></table></details>
<p id="js-errors"></p>
<script>{SCRIPT}</script>
</body></html>
"""
