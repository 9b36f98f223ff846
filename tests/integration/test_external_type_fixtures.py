"""Other projects' type fixtures, replicated exactly: Debezium's MySQL connector DDL and
python-mysql-replication's data type tests (``tests/fixtures/external_types/``, each file says where its
tables come from, under which licence, and how they were adapted), beside MariaDB-only column features.

Their tables hold what our own fixtures may not think of: keys on BIT(64), ENUM, FLOAT, DOUBLE,
DECIMAL UNSIGNED, BOOLEAN, VARBINARY with trailing zero bytes, DATE + DATETIME(2) and a composite unique
key without a primary key; SERIAL at 2^64-1; display widths, ZEROFILL, two-digit years, zero dates, TIME
fractions and negatives, NCHAR defaults, an ENUM altered while cdc follows the table. Each is copied with
mode ``full`` (several chunks: two rows each) and compared value by value with MySQL; then with ``cdc``:
the initial copy, the fixture's changes (inserts, updates, deletes, key changes hitting the edge values)
followed through the binlog, compared again. A table cdc cannot follow (no key; a MariaDB COMPRESSED
column) must be refused with its reason, and the other tables go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from compare import assert_same

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "external_types"


@dataclass
class Fixture:
    name: str
    statements: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def _statements(lines: list[str]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for line in lines:
        if not current and (not line.strip() or line.startswith("--")):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    assert not current, f"a statement without its ';': {current}"
    return out


def parse(path: Path) -> list[Fixture]:
    """The ``-- @table`` blocks of a fixture file, each split at ``-- @changes``."""
    found: list[Fixture] = []
    blocks = re.split(r"^-- @table (\S+)\n", path.read_text(encoding="utf-8"), flags=re.M)
    for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
        load, _, changes = body.partition("-- @changes\n")
        found.append(Fixture(name, _statements(load.splitlines()), _statements(changes.splitlines())))
    return found


# MariaDB-only column features, beside the external tables (ours, not copied from anywhere)
MARIADB = [
    Fixture(
        "mariadb_invisible_defaults",
        [
            """CREATE TABLE mariadb_invisible_defaults (id INT PRIMARY KEY, secret VARCHAR(20) INVISIBLE DEFAULT 'hidden',
            u VARCHAR(36) DEFAULT (UUID()), created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            changed TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            n INT DEFAULT (1 + 1), v INT AS (n * 2) VIRTUAL, s VARCHAR(40) AS (CONCAT(secret, '/', n)) STORED,
            inv2 INT INVISIBLE)""",
            "INSERT INTO mariadb_invisible_defaults (id, secret, inv2) VALUES (1, 'shh', 7), (2, DEFAULT, NULL)",
        ],
        [
            "UPDATE mariadb_invisible_defaults SET n = 5, secret = 'changed', inv2 = 8 WHERE id = 1",
            "INSERT INTO mariadb_invisible_defaults (id, n) VALUES (3, NULL)",
            "DELETE FROM mariadb_invisible_defaults WHERE id = 2",
        ],
    ),
    # the characters whose byte sequences Python's codecs read otherwise than MySQL (test_binlog_charsets.py)
    Fixture(
        "legacy_charsets",
        [
            """CREATE TABLE legacy_charsets (id INT PRIMARY KEY, g VARCHAR(10) CHARACTER SET greek,
            h VARCHAR(10) CHARACTER SET hebrew, r VARCHAR(10) CHARACTER SET cp866, k VARCHAR(10) CHARACTER SET koi8u,
            s VARCHAR(10) CHARACTER SET sjis, u VARCHAR(10) CHARACTER SET ujis, e VARCHAR(10) CHARACTER SET euckr,
            w VARCHAR(10) CHARACTER SET utf32)""",
            "INSERT INTO legacy_charsets VALUES (1, 'αβγ', 'שלום', 'привет', 'Ґґ', 'ｱ日本', '日本', '한국', '😀x')",
        ],
        [
            "INSERT INTO legacy_charsets VALUES (2, 'ʽʼ', '‾', 'ⁿ²', '•', CONVERT(X'815F' USING sjis), "
            "CONVERT(X'A1C0' USING ujis), '갂똠', '\\\\')",
            "UPDATE legacy_charsets SET g = 'ʽ', r = 'ⁿ' WHERE id = 1",
        ],
    ),
    Fixture(
        "mariadb_compressed",
        [
            """CREATE TABLE mariadb_compressed (id INT PRIMARY KEY, v VARCHAR(1000) COMPRESSED, b BLOB COMPRESSED,
            tx TEXT COMPRESSED CHARACTER SET latin1)""",
            "INSERT INTO mariadb_compressed VALUES (1, REPEAT('abc', 300), REPEAT(X'00FF', 400), REPEAT('é', 500)), "
            "(2, '', X'', ''), (3, NULL, NULL, NULL)",
        ],
        ["UPDATE mariadb_compressed SET v = REPEAT('xyz😀', 100) WHERE id = 1"],
    ),
]

# tables cdc refuses, and what the refusal must say
CDC_REFUSED = {
    "STRING_TABLE": "has no key to match its changes to rows",
    "UNSIGNED_BIGINT_TABLE": "has no key to match its changes to rows",
    "mariadb_compressed": "MariaDB COMPRESSED columns",
}


def _fixtures() -> list[Fixture]:
    return parse(FIXTURES / "debezium.sql") + parse(FIXTURES / "mysql_replication.sql") + MARIADB


def _run_statements(env, statements: list[str]) -> None:
    conn = env.db.connect(env.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def test_the_fixture_files_parse():
    fixtures = _fixtures()
    names = [f.name for f in fixtures]
    assert len(names) == len(set(names)) and len(fixtures) >= 30
    assert all(f.statements[0].startswith("CREATE TABLE") for f in fixtures), names


@pytest.mark.parametrize("mode", ["full", "cdc"])
def test_external_type_fixtures_replicate_exactly(env, mode):
    fixtures = _fixtures()
    _run_statements(env, [s for f in fixtures for s in f.statements])
    names = ",".join(f.name for f in fixtures)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0" if mode == "full" else "1000"})
    first = stack.run({"tables": names, "mode": mode, "chunk_rows": 2}, workers=2, timeout=300)
    states = first.run["table_states"]
    if mode == "full":
        assert first.ok, {t: s.get("last_error") for t, s in states.items() if s.get("status") != "published"}
        for f in fixtures:
            assert_same(env, f.name)
        return

    refused = {t: str(s.get("reason")) for t, s in states.items() if s.get("status") != "published"}
    assert refused.keys() == CDC_REFUSED.keys(), refused
    for table, reason in CDC_REFUSED.items():
        assert reason in refused[table], refused[table]
    followed = [f for f in fixtures if f.name not in CDC_REFUSED]
    _run_statements(env, [s for f in followed for s in f.changes])
    second = stack.run({"tables": ",".join(f.name for f in followed), "mode": "cdc"}, workers=2, timeout=300)
    states = second.run["table_states"]
    assert second.ok, {t: s.get("last_error") for t, s in states.items() if s.get("status") != "published"}
    assert all(states[f.name]["mode"] == "cdc" for f in followed)
    for f in followed:
        assert_same(env, f.name)


def test_a_table_that_is_not_a_base_table_is_named_as_such(env):
    """MariaDB's system-versioned tables (``WITH SYSTEM VERSIONING``) and views are not base tables and are
    not replicated: naming one says what it is, not only that it is unknown."""
    env.sql(
        "CREATE TABLE versioned (id INT PRIMARY KEY, v VARCHAR(10)) WITH SYSTEM VERSIONING",
        "CREATE TABLE plain (id INT PRIMARY KEY)",
        "CREATE VIEW plain_view AS SELECT id FROM plain",
    )
    stack = env.start_stack()
    with pytest.raises(Exception, match="'versioned' in database '[^']+' is a system-versioned table") as e:
        stack.invoke("SchedulerFunction", {"tables": "plain,versioned,plain_view,nope", "mode": "full"})
    assert "which is not replicated (only base tables are)" in str(e.value)
    assert "'plain_view' in database" in str(e.value) and "is a view, and views are not copied" in str(e.value)
    assert f"unknown table(s) 'nope' in database '{env.database}'" in str(e.value)
