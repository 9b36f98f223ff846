"""Tables and columns named with reserved words, mixed case, spaces and quotes replicate under the naming rule."""

from __future__ import annotations

from compare import assert_same


def test_odd_identifiers_full_and_incremental(env):
    env.sql(
        """CREATE TABLE `Order Details` (
            `Select` INT NOT NULL, `from` VARCHAR(10) NOT NULL, `Mixed Case` VARCHAR(20), `a"quote` INT,
            `b``tick` TEXT, `updated_at` DATETIME(6) NOT NULL,
            PRIMARY KEY (`from`, `Select`))""",
        "INSERT INTO `Order Details` SELECT seq, CONCAT('k', seq % 3), CONCAT('v', seq), seq * 2, 'x,y', "
        "'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_25",
        "CREATE TABLE `where` (`group` INT PRIMARY KEY, `order` VARCHAR(5))",
        "INSERT INTO `where` VALUES (1, 'a'), (2, NULL)",
    )
    stack = env.start_stack()
    outcome = stack.run({"tables": "Order Details,where", "mode": "full", "chunk_rows": 4}, workers=2)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "Order Details") == 25
    assert assert_same(env, "where") == 2
    env.sql("UPDATE `Order Details` SET `Mixed Case` = 'changed', updated_at = NOW(6) WHERE `Select` % 5 = 0")
    again = stack.run({"tables": "Order Details", "mode": "incremental"}, workers=2)
    assert again.ok and again.run["table_states"]["Order Details"]["mode"] == "incremental"
    assert_same(env, "Order Details")
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute('SELECT COUNT(*) FROM "ORDER DETAILS" WHERE "MIXED CASE" = \'changed\'')
    assert cur.fetchone()[0] == 5
    conn.close()


def test_percent_signs_in_table_and_column_names_full_and_incremental(env):
    """The Snowflake connector %-formats a statement that has bound values: a `%` in a quoted name
    must arrive as one `%` (and `%s` in a name is not a placeholder). Small chunks take the INSERT
    path with bound rows, large ones COPY; both, and the MERGE, DELETE and checksum statements."""
    env.sql(
        """CREATE TABLE `growth%` (`id%s` INT PRIMARY KEY, `rate%` DECIMAL(5,2), `50% off` VARCHAR(20),
           `updated_at` DATETIME(6) NOT NULL)""",
        "INSERT INTO `growth%` SELECT seq, seq / 4, CONCAT(seq, '%'), '2024-01-01' + INTERVAL seq SECOND "
        "FROM seq_1_to_30",
    )
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "5"})  # chunks of 10: the COPY path; the reconcile: INSERT
    outcome = stack.run({"tables": "growth%", "mode": "full", "chunk_rows": 10}, workers=2)
    assert outcome.ok, outcome.run["table_states"]
    assert assert_same(env, "growth%") == 30
    env.sql("UPDATE `growth%` SET `rate%` = 99, updated_at = NOW(6) WHERE `id%s` <= 3")
    again = stack.run({"tables": "growth%", "mode": "incremental"}, workers=1)  # 3 rows: bound INSERTs + MERGE
    assert again.ok, again.run["table_states"]
    assert assert_same(env, "growth%") == 30
    conn = env.snowflake()
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM \"GROWTH%\" WHERE \"RATE%\" = 99 AND \"50% OFF\" IN ('1%', '2%', '3%')")
    assert cur.fetchone()[0] == 3
    conn.close()
