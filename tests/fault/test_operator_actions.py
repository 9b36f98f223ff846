"""What operators ordinarily do between runs, in MySQL or Snowflake: a source table dropped and created
again, a watermark set back, the watermark column changed, a target column dropped. A run never reports
OK over a target that differs from MySQL: it copies the table again (``auto``), or fails it loudly with
the reason and the fix (``incremental``)."""

from __future__ import annotations

import pytest
from test_target_drift import _snowflake

from aurora_replication.errors import BadInputError
from compare import assert_same

ROWS = 200
# no slice of the rolling audit (a day's period, a large minimum): only the planning checks can see it
NO_AUDIT = {"AUDIT_PERIOD_SECONDS": "86400", "AUDIT_MIN_ROWS": "100000000"}
CREATE = """CREATE TABLE acct (id INT PRIMARY KEY, balance DECIMAL(12,2) NOT NULL, name VARCHAR(30),
    version INT NOT NULL DEFAULT 0,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY by_updated (updated_at), KEY by_version (version))"""


def _seed(env, name: str = "n", start: str = "2024-01-01", version: int = 0) -> None:
    env.sql(
        CREATE,
        f"INSERT INTO acct (id, balance, name, version, updated_at) SELECT seq, seq * 1.5, CONCAT('{name}', seq), "
        f"{version} + seq, '{start}' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )


def _run(stack, mode: str = "auto", **extra):
    return stack.run({"tables": "acct", "mode": mode, "chunk_rows": 50, **extra}, workers=2, timeout=180)


def _copied_in_full(outcome, why: str) -> dict:
    t = outcome.run["table_states"]["acct"]
    assert outcome.ok and t["mode"] == "full", t
    assert any(why in n for n in t["notes"]), t["notes"]
    return t


def test_a_source_table_created_again_with_older_rows_is_copied_in_full_not_reported_ok(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    # dropped (or renamed away) and created again under its name: the same keys, other rows, older watermarks
    env.sql("RENAME TABLE acct TO acct_old")
    _seed(env, name="other", start="2023-01-01")
    with pytest.raises(BadInputError) as refused:  # the request's only table: nothing is written
        _run(stack, "incremental")
    assert "largest watermark 'updated_at' in MySQL fell from 2024-01-01 00:03:20" in str(refused.value)
    assert "mode 'full'" in str(refused.value)

    healed = _run(stack)
    t = _copied_in_full(healed, "fell from 2024-01-01 00:03:20.000000 (committed by the last published run) to 2023")
    assert [c["change"] for c in t["schema_changes"]] == ["rows gone"], t
    assert assert_same(env, "acct") == ROWS
    env.sql("UPDATE acct SET name = 'after' WHERE id = 3")
    after = _run(stack)  # the next runs are incremental again
    assert after.ok and after.run["table_states"]["acct"]["mode"] == "incremental", after.run["table_states"]
    assert assert_same(env, "acct") == ROWS


def test_a_watermark_set_back_is_seen_and_the_table_copied_in_full(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    # the newest row corrected with an older watermark: no window above the stored one reads it
    env.sql("UPDATE acct SET name = 'set back', updated_at = '2020-06-01' WHERE id = 200")
    healed = _run(stack)
    _copied_in_full(healed, "fell from 2024-01-01 00:03:20.000000")
    assert assert_same(env, "acct") == ROWS


def test_an_emptied_table_keyed_by_text_is_copied_in_full(env):
    env.sql(
        """CREATE TABLE acct (code VARCHAR(10) PRIMARY KEY, name VARCHAR(30),
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))""",
        f"INSERT INTO acct SELECT CONCAT('k', seq), 'n', '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{ROWS}",
    )
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    env.sql("TRUNCATE TABLE acct")  # no integer key whose fall would show it
    healed = _run(stack)
    _copied_in_full(healed, "holds no value in MySQL now")
    assert assert_same(env, "acct") == 0


def test_an_integer_watermark_column_named_after_a_timestamp_one_is_not_windowed_from_its_value(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok  # its watermark: updated_at, the ON UPDATE column
    env.sql("UPDATE acct SET name = 'moved', version = version + 1 WHERE id <= 10")
    # a window `version > '2024-01-01 00:03:20'` is `version > 2024` to MySQL: none of the versions 2..201
    changed = _run(stack, watermark_columns={"acct": "version"})
    _copied_in_full(changed, "is not a value of its watermark column 'version'")
    assert assert_same(env, "acct") == ROWS


def test_a_target_column_dropped_in_snowflake_is_added_again_and_filled(env):
    _seed(env)
    stack = env.start_stack(NO_AUDIT)
    assert _run(stack, "full").ok
    _snowflake(env, 'ALTER TABLE "ACCT" DROP COLUMN "NAME"')
    env.sql("UPDATE acct SET balance = 0 WHERE id = 5")
    outcome = _run(stack)
    t = outcome.run["table_states"]["acct"]
    assert outcome.ok, t
    assert assert_same(env, "acct") == ROWS
