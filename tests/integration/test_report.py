"""The run report: a self-contained HTML page, rendered in headless Chromium without JavaScript errors,
showing the run's tables and a timeline of every chunk attempt (a retried and a dead-lettered one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import Browser, available

from aurora_replication.ledger.store import StateStore
from aurora_replication_dev import cli


@pytest.fixture(scope="module")
def browser():
    if not available():
        pytest.fail(
            "Chromium and ChromeDriver are missing: `make browser` installs Debian's chromium and chromium-driver"
        )
    b = Browser()
    yield b
    b.close()


def test_the_error_check_sees_a_javascript_error(browser):
    """The check the report test relies on does fail on a broken page."""
    browser.console()  # drop what came before
    browser.open("data:text/html,<script>undefinedFunction()</script><p>x</p>")
    assert any(e["level"] == "SEVERE" and "undefinedFunction" in e["message"] for e in browser.console())


def test_report_of_a_run_with_a_retried_and_a_dead_lettered_chunk(env, browser, tmp_path):
    env.sql(
        "CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO p SELECT seq, CONCAT('v', seq) FROM seq_1_to_300",
        "CREATE TABLE q (id INT PRIMARY KEY)",
        "INSERT INTO q SELECT seq FROM seq_1_to_5",
    )
    stack = env.start_stack({"IDEMPOTENCY_ENABLED": "false", "SMALL_CHUNK_ROWS": "50", "REDELIVERY_BASE_SECONDS": "0"})
    failed_once: set[int] = set()

    def faults(step, message=None):
        if step != "extracted":
            return
        if message.plan.table == "p" and message.chunk_id == 1 and 1 not in failed_once:
            failed_once.add(1)
            raise RuntimeError("simulated: chunk 1 of p fails once")
        if message.plan.table == "q":
            raise RuntimeError("simulated: q cannot be loaded")

    outcome = stack.run({"tables": "p,q", "mode": "full", "chunk_rows": 100}, workers=2, fault=faults, idle_timeout=2)
    assert outcome.run["table_states"]["p"]["status"] == "published" and outcome.dlq_messages == 1
    attempts = StateStore(stack.table_name).get_attempts(outcome.run_id)
    by_chunk = {(a["table"], str(a["chunk"])): [] for a in attempts}
    for a in attempts:
        by_chunk[(a["table"], str(a["chunk"]))].append(a)
    assert [x["status"] for x in sorted(by_chunk[("p", "1")], key=lambda a: a["start"])] == ["failed", "ok"]
    assert len(by_chunk[("q", "0")]) == 5 and all(a["status"] == "failed" for a in by_chunk[("q", "0")])
    assert {s for a in by_chunk[("p", "0")] for s, _, _ in json.loads(a["steps"])} >= {"extract", "copy"}
    assert by_chunk[("p", "final")][-1]["status"] == "published"
    stack.stop()
    env.stack = None

    page = tmp_path / "report.html"  # `replicate report` reads the ledger the local stack kept
    assert cli.main(["--home", str(env.home), "report", outcome.run_id, "--out", str(page)]) == 0
    html = page.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html

    browser.console()
    browser.open(page.as_uri())
    assert browser.script("return document.body.getAttribute('data-ready')") == "yes"
    assert browser.script("return window.__errors") == []
    assert [e for e in browser.console() if e["level"] == "SEVERE"] == []
    tables = browser.script(
        "return [...document.querySelectorAll('#tables tbody tr')].map(r => [...r.cells].map(c => c.innerText))"
    )
    assert [row[0] for row in tables] == ["p", "q"]
    # the cost of each table, the dead-lettered q's five failed attempts included (they were paid for)
    costs = browser.script(
        "return [...document.querySelectorAll('#cost tbody tr')].map(r => [...r.cells].map(c => c.innerText))"
    )
    assert [row[0] for row in costs] == ["p", "q"] and all(row[5].startswith("$0.") for row in costs), costs
    chunks = int(outcome.run["table_states"]["p"]["chunk_count"])
    assert tables[0][2] == "published" and tables[0][3] == f"{chunks}/{chunks}"
    assert tables[1][2] == "failed (chunks in the DLQ)" and "dead-lettered chunk(s): 0" in tables[1][9]
    shown = browser.script(
        "const g = [...document.querySelectorAll('#timeline .attempt')];"
        "return {all: g.length, failed: g.filter(x => x.classList.contains('failed')).length,"
        " dead: g.filter(x => x.classList.contains('dead')).length,"
        " retried: g.filter(x => x.classList.contains('retried')).map(x => x.dataset.chunk),"
        " steps: [...new Set([...document.querySelectorAll('#timeline rect[class^=step-]')].map(r => r.getAttribute('class')))],"
        " lanes: document.querySelectorAll('#timeline text.lane').length,"
        " width: document.getElementById('timeline').getBoundingClientRect().width}"
    )
    assert shown["all"] == len(attempts) and shown["failed"] == 6 and shown["dead"] == 5
    assert {"p#1", "q#0"} <= set(shown["retried"])
    assert {"step-extract", "step-copy", "step-validate", "step-publish"} <= set(shown["steps"])
    assert shown["lanes"] >= 1 and shown["width"] > 500
    shot = tmp_path / "report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert Path(page).stat().st_size < 200_000
