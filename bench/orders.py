"""The measured table, ``bench.orders``: built once in MariaDB and reused, and the statements that change its rows."""

from __future__ import annotations

import time
from typing import Any

from bench import servers
from bench.output import log
from bench.settings import BENCH, CHANGED_ROWS, DATABASE, TABLE

DDL = f"""CREATE TABLE `{TABLE}` (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    email VARCHAR(120) NOT NULL,
    total DECIMAL(12,2) NOT NULL,
    discount DOUBLE NULL,
    placed_at DATETIME(6) NOT NULL,
    ship_date DATE NULL,
    status ENUM('new','paid','shipped','cancelled','returned') NOT NULL,
    note TEXT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY ix_orders_updated_at (updated_at)
) ENGINE=InnoDB CHARACTER SET utf8mb4"""


FILL = """INSERT INTO `{table}` (id, customer_id, email, total, discount, placed_at, ship_date, status, note, updated_at)
SELECT seq,
       1 + (seq * 7919) % 50000,
       CONCAT('customer', (seq * 7919) % 50000, '@example.com'),
       ROUND((seq * 104729 % 10000000) / 100, 2),
       IF(seq % 5 = 0, NULL, (seq % 1000) / 7e0),
       TIMESTAMP('2021-01-01') + INTERVAL (seq * 31) SECOND + INTERVAL (seq % 1000000) MICROSECOND,
       IF(seq % 4 = 0, NULL, DATE('2021-01-01') + INTERVAL (seq % 1400) DAY),
       ELT(1 + seq % 5, 'new', 'paid', 'shipped', 'cancelled', 'returned'),
       CASE seq % 6
            WHEN 0 THEN NULL
            WHEN 1 THEN ''
            WHEN 2 THEN CONCAT('Gift wrap, "fragile", leave at door ', seq)
            WHEN 3 THEN CONCAT('Zustellung an Nachbarn 🚚 — Größe M ', seq)
            WHEN 4 THEN REPEAT('lorem ipsum dolor ', 1 + seq % 8)
            ELSE CONCAT('line one\\nline two\\twith tab ', seq)
       END,
       TIMESTAMP('2024-01-01') + INTERVAL (seq * 2) SECOND
FROM seq_1_to_{rows}"""


# the rows an earlier run changed (FILL's updated_at ends in January 2024), back as FILL made them
RESET_CHANGES = (
    "UPDATE `{table}` SET updated_at = TIMESTAMP('2024-01-01') + INTERVAL (id * 2) SECOND "
    "WHERE updated_at >= TIMESTAMP('2024-01-01') + INTERVAL (id * 2) SECOND + INTERVAL 1 SECOND"
)


def build_table(db: Any, rows: int) -> dict[str, Any]:
    conn = servers.server_connection(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{DATABASE}`")
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                (DATABASE, TABLE),
            )
            columns = int(cur.fetchone()[0])  # type: ignore[index]
            existing = -1
            if columns == 10:
                cur.execute(f"SELECT COUNT(*) FROM `{TABLE}`")
                existing = int(cur.fetchone()[0])  # type: ignore[index]
            if existing == rows:
                log(f"table {DATABASE}.{TABLE} has {rows:,} rows already (cached)")
                # an earlier run's changes (cdc and incremental, 100,000 rows at a time) moved their
                # updated_at to that run's moment: the newest of them would be the full run's
                # watermark, and every row changed with it would fall in the next incremental window's
                # overlap. Put them back where FILL generated them, so each run starts from one state
                cur.execute(RESET_CHANGES.format(table=TABLE))
                if cur.rowcount:
                    log(f"  {cur.rowcount:,} rows changed by an earlier run put back as generated")
                return {"built": False, "seconds": 0.0}
            log(f"building {DATABASE}.{TABLE} with {rows:,} rows (once; cached under {BENCH})...")
            started = time.perf_counter()
            cur.execute(f"DROP TABLE IF EXISTS `{TABLE}`")
            cur.execute(DDL)
            cur.execute(FILL.format(table=TABLE, rows=int(rows)))
            cur.execute(f"ANALYZE TABLE `{TABLE}`")
            cur.fetchall()
            seconds = time.perf_counter() - started
            log(f"  built in {seconds:.1f} s")
            return {"built": True, "seconds": seconds}
    finally:
        conn.close()


def change_rows_sql(rows: int) -> str:
    every = max(rows // CHANGED_ROWS, 1)
    return f"UPDATE `{TABLE}` SET updated_at = NOW(6) WHERE id % {every} = 0 LIMIT {CHANGED_ROWS}"


def change_n_sql(rows: int, n: int, statements: int = 1) -> list[str]:
    """``n`` rows updated by ``statements`` bulk statements over consecutive id ranges (their watermark moves
    too, so both modes see them)."""
    every = max(rows // n, 1)
    span = -(-rows // statements)
    each = -(-n // statements)
    return [
        f"UPDATE `{TABLE}` SET updated_at = NOW(6), total = total + 1 "
        f"WHERE id > {i * span} AND id <= {(i + 1) * span} AND id % {every} = 0 LIMIT {min(each, n - i * each)}"
        for i in range(statements)
        if n - i * each > 0
    ]
