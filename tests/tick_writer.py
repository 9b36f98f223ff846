"""A loopback writer at a bounded rate for a bounded time, and the newest of its stamps Snowflake shows:
the cdc lag tests' source of changes (tests/integration/test_cdc_pace.py, test_cdc_follow.py)."""

from __future__ import annotations

import datetime as dt
import threading
import time


class TickWriter(threading.Thread):
    """``ticks_per_second`` transactions a second for ``seconds``, each: ``rows_per_tick`` rows of ``items``
    updated with ``stamp`` set to the transaction's own time (UTC), one row deleted and one inserted.
    Records (stamp, commit time, changes)."""

    def __init__(self, env, seconds: float, ticks_per_second: int = 10, rows_per_tick: int = 40) -> None:
        super().__init__(daemon=True)
        self.env = env
        self.seconds, self.rate, self.rows = seconds, ticks_per_second, rows_per_tick
        self.ticks: list[tuple[float, float, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        conn = self.env.db.connect(self.env.database)
        try:
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                started = time.time()
                tick = 0
                while time.time() < started + self.seconds:
                    due = started + tick / self.rate
                    if time.time() < due:
                        time.sleep(due - time.time())  # the writer's pace: a rate, not a condition
                    now = time.time()
                    stamp = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
                    lower = (tick * self.rows) % 1000
                    cur.execute("BEGIN")
                    cur.execute(
                        "UPDATE items SET qty = qty + 1, stamp = %s WHERE id > %s AND id <= %s",
                        (stamp, lower, lower + self.rows),
                    )
                    changed = cur.rowcount
                    changed += cur.execute("DELETE FROM items WHERE id = %s", (10_000 + tick - 5,))
                    changed += cur.execute(
                        "INSERT INTO items (id, qty, stamp) VALUES (%s, 0, %s)", (10_000 + tick, stamp)
                    )
                    cur.execute("COMMIT")
                    self.ticks.append((now, time.time(), changed))
                    tick += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            conn.close()


def newest_stamp(env) -> float | None:
    sf = env.snowflake()
    try:
        cur = sf.cursor()
        cur.execute('SELECT MAX("STAMP") FROM "ITEMS"')
        newest = cur.fetchone()[0]
    finally:
        sf.close()
    return newest.replace(tzinfo=dt.UTC).timestamp() if newest is not None else None
