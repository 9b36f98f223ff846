"""Which cdc windows a cascading foreign key declines (``pipeline/modes/cdc/cascades.py``), pure."""

from __future__ import annotations

from aurora_replication.pipeline.modes.cdc.cascades import Cascade, Child, changed_by_cascade, watch
from aurora_replication.source.binlog import Position, TableSpec, Window

START = Position("binlog.000001", 1000)
EARLIER = Position("binlog.000001", 500)
BEFORE, AFTER = Position("binlog.000001", 900).key(), Position("binlog.000001", 1100).key()


def _spec(start: Position = START, key: tuple[str, ...] = ("id",)) -> TableSpec:
    return TableSpec(start=start, columns=[], key=list(key))


def _child(*cascades: Cascade, start: Position = START) -> Child:
    return Child("books", "books", start, [(c, c.parent) for c in cascades])


def _fk(on_delete: str = "RESTRICT", on_update: str = "RESTRICT", columns: tuple[str, ...] = ("id",)) -> Cascade:
    return Cascade("fk", "db", "authors", columns, on_delete, on_update)


def _window(**noted: str) -> Window:
    w = Window(start=START, end=START)
    for field, at in noted.items():
        getattr(w, field)["authors"] = at
    return w


def test_each_action_is_declined_only_by_the_parents_change_that_fires_it():
    specs = {"authors": _spec(), "books": _spec()}
    delete, update = _fk(on_delete="CASCADE"), _fk(on_update="SET NULL")
    assert changed_by_cascade(_child(delete), specs, _window(deleted=AFTER))
    assert changed_by_cascade(_child(delete), specs, _window(rekeyed=AFTER, updated=AFTER)) is None
    assert changed_by_cascade(_child(update), specs, _window(rekeyed=AFTER))
    assert changed_by_cascade(_child(update), specs, _window(deleted=AFTER, updated=AFTER)) is None
    # a change at or before the child's start is in its copy or an earlier window already
    assert changed_by_cascade(_child(delete, update), specs, _window(deleted=BEFORE, rekeyed=BEFORE)) is None
    # a foreign key on columns that are not the parent's key: any update may have changed them
    other = _fk(on_update="CASCADE", columns=("code",))
    assert changed_by_cascade(_child(other), specs, _window(updated=AFTER))
    reason = changed_by_cascade(_child(delete), specs, _window(deleted=AFTER)) or ""
    assert "'fk' of 'books' on 'authors' (ON DELETE CASCADE)" in reason and "copies 'books' again" in reason


def test_parents_are_watched_from_their_earliest_childs_start_and_an_unread_parent_declines_the_child():
    specs = {"authors": _spec(), "books": _spec(), "notes": _spec(start=EARLIER)}
    late = Child("books", "books", START, [(_fk(on_delete="CASCADE"), "authors")])
    early = Child("notes", "notes", EARLIER, [(_fk(on_delete="SET NULL"), "authors")])
    orphan = Child("reviews", "reviews", START, [(_fk(on_delete="CASCADE"), "critics")])
    watched, unread = watch(specs, [late, early, orphan])
    assert watched["authors"].watch_from == EARLIER and watched["books"].watch_from is None
    assert watched["authors"].start == START  # its own changes still start where they did
    assert set(unread) == {"reviews"} and "is not read in this window" in unread["reviews"]
