"""Python transforms are found through the TRANSFORM_MODULES setting of config.Settings, and only there."""

from __future__ import annotations

import sys
import uuid

import pytest

from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.models import Column, TableOptions, TablePlan
from aurora_replication.pipeline import transforms

ENV = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}


def _plan() -> TablePlan:
    return TablePlan(
        table="people",
        target_table="PEOPLE",
        columns=[
            Column(name="id", kind="integer", precision=10, scale=0, target="ID"),
            Column(name="name", kind="text", target="NAME"),
        ],
        key=["id"],
        mode="full",
    )


@pytest.fixture
def transform_module(tmp_path, monkeypatch) -> tuple[str, str]:
    """A module, importable but not yet imported, that registers one transform under a fresh name."""
    module, name = f"user_transforms_{uuid.uuid4().hex[:8]}", f"shout_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from aurora_replication.pipeline.transforms import register\n\n\n"
        f"@register({name!r})\n"
        "def shout(rows, plan):\n"
        "    for row in rows:\n"
        "        yield (row[0], row[1].upper())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, name
    sys.modules.pop(module, None)


def test_a_transform_of_a_module_named_in_the_settings_is_registered_and_runs(transform_module):
    module, name = transform_module
    s = settings_from({**ENV, "TRANSFORM_MODULES": f" {module} ,"})
    assert s.transform_modules == f" {module} ,"
    plan = transforms.apply_options(
        _plan(), TableOptions(transform=name), "upper", transform_modules=s.transform_modules
    )
    assert plan.transform == name
    assert any("not compared with the source" in n for n in plan.notes)
    fn = transforms.registered(name, s.transform_modules)
    assert list(fn(iter([(1, "ann")]), plan)) == [(1, "ANN")]


def test_transform_modules_in_os_environ_alone_are_not_read(transform_module, monkeypatch):
    """The variable reaches the code only through config.Settings: set in the process environment
    but not passed from the settings, the module is not imported and the name is unknown."""
    module, name = transform_module
    monkeypatch.setenv("TRANSFORM_MODULES", module)
    with pytest.raises(BadInputError, match=rf"no transform named '{name}'.*TRANSFORM_MODULES"):
        transforms.apply_options(_plan(), TableOptions(transform=name), "upper", transform_modules="")
    assert module not in sys.modules


def test_a_module_that_cannot_be_imported_fails_with_its_name():
    with pytest.raises(ModuleNotFoundError, match="no_such_transform_module"):
        transforms.registered("anything", "no_such_transform_module")
