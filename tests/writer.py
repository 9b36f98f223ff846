"""A bounded writer for tests of a live source: loopback MySQL only, a fixed rate, a fixed end.

It updates rows across the whole key range, inserts rows past the current maximum key (into the
last, open-ended chunk) and, if asked, deletes rows; it stops when told to or at its deadline,
whichever comes first, and counts what it did.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any


class Writer:
    def __init__(
        self,
        env: Any,
        table: str = "acct",
        rate: float = 40.0,
        max_seconds: float = 300.0,
        deletes: bool = False,
        seed: int = 11,
    ) -> None:
        self.env = env
        self.table = table
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.deletes = deletes
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="source-writer", daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the writer did not stop"

    @property
    def writes(self) -> int:
        return sum(self.done.values())

    def wait_for(self, writes: int, timeout: float = 60.0) -> None:
        """Until the writer has done at least ``writes`` writes (it is running, not stuck)."""
        deadline = time.monotonic() + timeout
        while self.writes < writes and time.monotonic() < deadline and not self.errors:
            time.sleep(0.05)
        assert not self.errors, self.errors
        assert self.writes >= writes, f"the writer did {self.writes} writes, expected {writes}"

    def _run(self) -> None:
        conn = self.env.db.connect(self.env.database)  # loopback: the test's own MariaDB
        deadline = time.monotonic() + self.max_seconds
        t = f"`{self.table}`"
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT MAX(id) FROM {t}")
                top = int(cur.fetchone()[0] or 0)
                n = 0
                while not self._stop.is_set() and time.monotonic() < deadline:
                    n += 1
                    roll = self.rng.random()
                    if roll < 0.25:
                        top += 1
                        cur.execute(f"INSERT INTO {t} (id, balance, name) VALUES (%s, %s, %s)", (top, n, f"new{n}"))
                        self.done["insert"] += 1
                    elif self.deletes and roll < 0.35:
                        cur.execute(f"DELETE FROM {t} WHERE id = %s", (self.rng.randint(1, top),))
                        self.done["delete"] += cur.rowcount
                    else:
                        # across the whole key range, the top (the open-ended last chunk) included
                        key = top - self.rng.randint(0, 5) if roll > 0.9 else self.rng.randint(1, top)
                        cur.execute(f"UPDATE {t} SET balance = balance + 1, name = %s WHERE id = %s", (f"w{n}", key))
                        self.done["update"] += cur.rowcount
                    conn.commit()
                    self._stop.wait(self.interval)
        except BaseException as e:  # noqa: BLE001 - reported by wait_for and the tests
            self.errors.append(e)
        finally:
            conn.close()
