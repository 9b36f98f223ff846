"""The demo dataset: related tables with realistic types, generated inside MariaDB."""

from __future__ import annotations

from typing import Any

SCHEMA = [
    """CREATE TABLE countries (
        code CHAR(2) NOT NULL PRIMARY KEY,
        name VARCHAR(100) NOT NULL,
        continent ENUM('Africa','Americas','Asia','Europe','Oceania') NOT NULL
    ) CHARACTER SET utf8mb4""",
    """CREATE TABLE customers (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(255) NOT NULL,
        full_name VARCHAR(200) NOT NULL,
        country_code CHAR(2) NOT NULL,
        is_active TINYINT(1) NOT NULL DEFAULT 1,
        lifetime_value DECIMAL(14,2) NOT NULL DEFAULT 0,
        notes TEXT NULL,
        profile JSON NULL,
        birth_date DATE NULL,
        created_at DATETIME(6) NOT NULL,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
        KEY ix_customers_updated (updated_at)
    ) CHARACTER SET utf8mb4""",
    """CREATE TABLE orders (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        customer_id INT UNSIGNED NOT NULL,
        status ENUM('new','paid','shipped','cancelled') NOT NULL,
        total DECIMAL(12,2) NOT NULL,
        discount_rate DOUBLE NULL,
        currency CHAR(3) NOT NULL DEFAULT 'EUR',
        placed_at DATETIME(3) NOT NULL,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
        KEY ix_orders_updated (updated_at)
    ) CHARACTER SET utf8mb4""",
    """CREATE TABLE order_items (
        order_id BIGINT UNSIGNED NOT NULL,
        line_no SMALLINT UNSIGNED NOT NULL,
        sku VARCHAR(32) NOT NULL,
        quantity MEDIUMINT NOT NULL,
        unit_price DECIMAL(10,4) NOT NULL,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
        PRIMARY KEY (order_id, line_no)
    ) CHARACTER SET utf8mb4""",
    """CREATE TABLE audit_log (
        happened_at DATETIME NOT NULL,
        actor VARCHAR(64) NULL,
        action VARCHAR(32) NOT NULL,
        detail TEXT NULL
    ) CHARACTER SET utf8mb4""",
]

COUNTRIES = [
    ("DE", "Deutschland", "Europe"),
    ("FR", "France", "Europe"),
    ("JP", "日本", "Asia"),
    ("BR", "Brasil", "Americas"),
    ("NG", "Nigeria", "Africa"),
    ("AU", "Australia", "Oceania"),
    ("US", "United States", "Americas"),
    ("IN", "भारत", "Asia"),
    ("ES", "España", "Europe"),
    ("CI", "Côte d'Ivoire", "Africa"),
]


def load(conn: Any, rows: int = 200_000) -> dict[str, int]:
    """Create and fill the demo tables (``rows`` orders); returns the row count of each table."""
    customers = max(rows // 10, 10)
    items = max(rows // 2, 10)
    with conn.cursor() as cur:
        for table in ("order_items", "orders", "customers", "countries", "audit_log"):
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        for ddl in SCHEMA:
            cur.execute(ddl)
        cur.executemany("INSERT INTO countries VALUES (%s, %s, %s)", COUNTRIES)
        cur.execute(
            f"""INSERT INTO customers (id, email, full_name, country_code, is_active, lifetime_value, notes, profile,
                birth_date, created_at, updated_at)
            SELECT seq,
                   CONCAT('user', seq, '@example.com'),
                   CASE seq % 5 WHEN 0 THEN CONCAT('Zoë "Z" O''Brien ', seq) WHEN 1 THEN CONCAT('山田 太郎 ', seq)
                        WHEN 2 THEN CONCAT('Ana, María ', seq) WHEN 3 THEN CONCAT('Emoji 😀 ', seq)
                        ELSE CONCAT('Plain Name ', seq) END,
                   ELT(1 + seq % 10, 'DE','FR','JP','BR','NG','AU','US','IN','ES','CI'),
                   seq % 7 <> 0,
                   ROUND((seq * 37 % 100000) / 7, 2),
                   CASE seq % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN CONCAT('line one\\nline two, with \\\\ and "quotes"')
                        ELSE CONCAT('tab\\there ', seq) END,
                   CASE seq % 3 WHEN 0 THEN NULL
                        ELSE JSON_OBJECT('tier', ELT(1 + seq % 3, 'gold','silver','bronze'), 'tags', JSON_ARRAY('a', seq % 9), 'score', seq * 1.5) END,
                   IF(seq % 6 = 0, NULL, DATE('1950-01-01') + INTERVAL (seq * 13 % 20000) DAY),
                   TIMESTAMP('2020-01-01') + INTERVAL (seq * 97) SECOND + INTERVAL (seq % 1000000) MICROSECOND,
                   TIMESTAMP('2024-01-01') + INTERVAL (seq * 11) SECOND
            FROM seq_1_to_{customers}"""
        )
        cur.execute(
            f"""INSERT INTO orders (id, customer_id, status, total, discount_rate, currency, placed_at, updated_at)
            SELECT seq * 10 + (seq % 3),
                   1 + seq % {customers},
                   ELT(1 + seq % 4, 'new','paid','shipped','cancelled'),
                   ROUND((seq * 7919 % 1000000) / 100, 2),
                   IF(seq % 5 = 0, NULL, (seq % 30) / 100),
                   IF(seq % 11 = 0, 'USD', 'EUR'),
                   TIMESTAMP('2021-01-01') + INTERVAL (seq * 61) SECOND + INTERVAL (seq % 1000) * 1000 MICROSECOND,
                   TIMESTAMP('2024-01-01') + INTERVAL (seq * 3) SECOND
            FROM seq_1_to_{rows}"""
        )
        cur.execute(
            f"""INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price, updated_at)
            SELECT (1 + (seq - 1) DIV 3) * 10 + ((1 + (seq - 1) DIV 3) % 3), 1 + (seq - 1) % 3,
                   CONCAT('SKU-', LPAD(seq % 5000, 5, '0')), 1 + seq % 12, ROUND((seq % 99999) / 13, 4),
                   TIMESTAMP('2024-01-01') + INTERVAL (seq * 5) SECOND
            FROM seq_1_to_{items}"""
        )
        cur.execute(
            """INSERT INTO audit_log (happened_at, actor, action, detail)
            SELECT TIMESTAMP('2024-06-01') + INTERVAL (seq DIV 2) MINUTE, IF(seq % 9 = 0, NULL, CONCAT('admin', seq % 4)),
                   ELT(1 + seq % 3, 'login','export','delete'), IF(seq % 2 = 0, 'same detail', CONCAT('detail ', seq))
            FROM seq_1_to_2000"""
        )
        cur.execute("INSERT INTO audit_log SELECT * FROM audit_log LIMIT 10")  # duplicates, kept as they are
        counts = {}
        for table in ("countries", "customers", "orders", "order_items", "audit_log"):
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = int(cur.fetchone()[0])
    return counts


def change_some_rows(conn: Any, rows: int = 200_000) -> dict[str, int]:
    """Updates and inserts for the incremental part of the demo."""
    with conn.cursor() as cur:
        cur.execute("UPDATE orders SET status = 'shipped', total = total + 1 WHERE id % 97 = 0")
        updated = cur.rowcount
        cur.execute("UPDATE customers SET lifetime_value = lifetime_value + 10, notes = 'updated ✓' WHERE id % 89 = 0")
        updated += cur.rowcount
        cur.execute(
            f"""INSERT INTO orders (id, customer_id, status, total, discount_rate, currency, placed_at)
            SELECT ({rows} + seq) * 10 + 7, 1 + seq % 50, 'new', seq * 1.25, NULL, 'EUR', NOW(3)
            FROM seq_1_to_500"""
        )
        inserted = cur.rowcount
    return {"updated": updated, "inserted": inserted}


# the demo's cdc tables (they have keys; audit_log has none, so cdc would copy it whole every run)
CDC_TABLES = ["customers", "orders", "order_items"]
# the demo's table in history mode (type-2, docs/run-requests.md#history-mode): copied by the cdc runs only
HISTORY_TABLE = "countries"


def change_for_cdc(conn: Any, rows: int = 200_000) -> dict[str, int]:
    """Changes an incremental run cannot see: deletes, and an update that does not touch updated_at."""
    with conn.cursor() as cur:
        cur.execute("UPDATE orders SET status = 'cancelled', updated_at = updated_at WHERE id % 101 = 0")
        updated = cur.rowcount
        cur.execute("DELETE FROM order_items WHERE order_id % 103 = 0")
        deleted = cur.rowcount
        cur.execute("DELETE FROM orders WHERE id % 103 = 0")
        deleted += cur.rowcount
        cur.execute(
            f"""INSERT INTO orders (id, customer_id, status, total, discount_rate, currency, placed_at)
            SELECT ({rows} + 1000 + seq) * 10 + 9, 1 + seq % 50, 'new', seq * 2.5, 0.1, 'USD', NOW(3)
            FROM seq_1_to_300"""
        )
        inserted = cur.rowcount
        cur.execute("UPDATE customers SET id = id + 10000000 WHERE id = 7")  # a key change
        updated += cur.rowcount
        # the history table's versions: two renames, a delete and the row back again
        cur.execute("UPDATE countries SET name = 'Germany' WHERE code = 'DE'")
        cur.execute("UPDATE countries SET name = 'Federal Republic of Germany' WHERE code = 'DE'")
        cur.execute("DELETE FROM countries WHERE code = 'CI'")
        cur.execute("INSERT INTO countries VALUES ('CI', 'Ivory Coast', 'Africa')")
        updated += 2
    return {"updated": updated, "inserted": inserted, "deleted": deleted}
