"""A cdc window's batch files are uploaded by one PUT per stage path, whatever the number of tables and
batches it holds (a PUT is a round trip to Snowflake and an upload: one per table made a window of many
changed tables take as many), and a PUT that fails fails the window's tables with their positions kept,
so the next run applies the same changes exactly."""

from __future__ import annotations

from compare import assert_same

TABLES = [f"t{i:02d}" for i in range(12)]


def _seed(env) -> None:
    for t in TABLES:
        env.sql(
            f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20), n INT)",
            f"INSERT INTO {t} SELECT seq, CONCAT('v', seq), seq FROM seq_1_to_5",
        )


def _change(env, round_: int) -> None:
    for i, t in enumerate(TABLES):
        env.sql(
            f"UPDATE {t} SET n = n + {round_} WHERE id <= 3",
            f"INSERT INTO {t} VALUES ({100 * round_ + i}, 'new', {round_})",
            f"DELETE FROM {t} WHERE id = {round_}",
        )


def _scheduler_faults(stack, fault) -> None:
    """The stack's scheduler container, with ``fault`` as its fault hook."""
    module = stack.load_module("SchedulerFunction")
    module.services.hooks.fault = fault
    stack.handlers["SchedulerFunction"] = module.lambda_handler


def _cdc(stack):
    return stack.run({"tables": ",".join(TABLES), "mode": "cdc"}, workers=2, timeout=240)


def test_a_window_of_many_tables_and_batches_is_uploaded_by_one_put(env):
    _seed(env)
    stack = env.start_stack({"CDC_BATCH_ROWS": "2"})  # several batches per table
    assert _cdc(stack).ok
    _change(env, 1)
    uploads: list[str] = []
    staged: list[str] = []

    def record(name: str, payload=None) -> None:
        if name == "cdc_window_uploading":
            uploads.append(payload)
        elif name == "cdc_batch_staged":
            staged.append(f"{payload.path}/{payload.file}")

    _scheduler_faults(stack, record)
    second = _cdc(stack)
    assert second.ok, second.run["table_states"]
    assert len(uploads) == 1, uploads
    assert len(staged) == len(set(staged)) >= 2 * len(TABLES), staged  # every table's batches, each its own file
    assert {s.rsplit("/", 1)[0] for s in staged} == set(uploads)  # all of them under the one path PUT
    for t in TABLES:
        state = second.run["table_states"][t]
        assert state["mode"] == "cdc" and state["upserts"] == 3 and state["deletes"] == 1, (
            t,
            state,
        )  # key 1 updated, then deleted
        assert assert_same(env, t) == 5


def test_a_failed_put_fails_the_windows_tables_and_the_next_run_applies_their_changes(env):
    _seed(env)
    stack = env.start_stack()
    assert _cdc(stack).ok
    _change(env, 1)
    failures = iter([RuntimeError("the upload to the stage timed out")])

    def fail_once(name: str, payload=None) -> None:
        if name == "cdc_window_uploading":
            error = next(failures, None)
            if error is not None:
                raise error

    _scheduler_faults(stack, fail_once)
    failed = _cdc(stack)
    for t in TABLES:
        state = failed.run["table_states"][t]
        assert state["status"] == "failed" and "the upload to the stage timed out" in state["reason"], state
        assert "its position stays where it was" in state["reason"]
    _change(env, 2)
    again = _cdc(stack)
    assert again.ok, again.run["table_states"]
    for t in TABLES:
        assert assert_same(env, t) == 5
