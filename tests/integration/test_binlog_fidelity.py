"""Property: every column kind lands identically through the binlog (cdc) and through the copy.

Five tables hold every kind the type map supports, at every width and attribute a real schema uses
(and every one the peer projects' type fixtures exercise, docs/types.md): integers of each width
signed, unsigned and ZEROFILL, BIT(1..64), DECIMAL up to (65,30), FLOAT, FLOAT(M,D), DOUBLE, YEAR,
DATE, DATETIME(0..6), TIMESTAMP(0..6), TIME(0..6) with negative fractions and +-838 h, zero and
partial-zero dates, text in utf8mb4, utf8mb3, latin1, latin2, cp1251, utf16 and ucs2, binary types,
ENUM and SET (in utf8mb4 and latin1), JSON, every geometry type with SRIDs, generated columns
(virtual and stored) and a RANGE-partitioned table with non-ASCII table and column names.

Edge values are written, the tables are copied (``cdc``: the initial copy is a full copy), then more
values are written (inserts, updates to other values and to NULL, deletes, a key change across
partitions, a row inserted and deleted in one window) and applied through the binlog with ``cdc``.
The cdc-maintained target must then equal, value by value, a fresh full copy of the same source into
a second schema (the copy path's result for the same rows), equal MySQL, and validate.

Values: the edge values of each column, then rows drawn by hypothesis with a fixed seed (each drawn
example one row, so one pipeline cycle meets ``BINLOG_FIDELITY_ROWS`` different rows); a soak run
draws others: ``BINLOG_FIDELITY_SEED=7 BINLOG_FIDELITY_ROWS=200 .venv/bin/pytest tests/integration/test_binlog_fidelity.py``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from compare import fetch_pair

SEED = int(os.environ.get("BINLOG_FIDELITY_SEED", "20261206"))
ROWS = int(os.environ.get("BINLOG_FIDELITY_ROWS", "12"))


@dataclass
class Col:
    name: str
    type: str
    values: Any = None  # hypothesis strategy of bound values; None: a generated column
    edges: list[Any] = field(default_factory=list)  # bound values every run writes (None: NULL)
    placeholder: str = "%s"


@dataclass
class Table:
    name: str
    key: str
    columns: list[Col]
    options: str = "CHARACTER SET utf8mb4"

    @property
    def written(self) -> list[Col]:
        return [c for c in self.columns if c.values is not None]


def ints(lo: int, hi: int) -> Any:
    return st.one_of(st.sampled_from([lo, hi, 0, lo + 1, hi - 1]), st.integers(lo, hi))


def decimals(p: int, s: int, unsigned: bool = False) -> Any:
    top = decimal.Decimal(10) ** (p - s) - decimal.Decimal(10) ** -s
    return st.decimals(0 if unsigned else -top, top, places=s, allow_nan=False, allow_infinity=False).map(str)


def dec_edges(p: int, s: int, unsigned: bool = False) -> list[Any]:
    top = str(decimal.Decimal(10) ** (p - s) - decimal.Decimal(10) ** -s)
    tiny = str(decimal.Decimal(10) ** -s) if s else "1"
    return [top, "0", tiny] + ([] if unsigned else [f"-{top}", f"-{tiny}"])


# ---- nums: every integer width and attribute, BIT, DECIMAL, floats, YEAR ------------------------

NUMS: list[Col] = []
for short, t, lo, hi in [
    ("ti", "TINYINT", -(2**7), 2**7 - 1),
    ("si", "SMALLINT", -(2**15), 2**15 - 1),
    ("mi", "MEDIUMINT", -(2**23), 2**23 - 1),
    ("i", "INT", -(2**31), 2**31 - 1),
    ("bi", "BIGINT", -(2**63), 2**63 - 1),
]:
    top = 2 * hi + 1
    NUMS.append(Col(short, t, ints(lo, hi), [lo, hi, 0, -1]))
    NUMS.append(Col(f"{short}u", f"{t} UNSIGNED", ints(0, top), [0, top, 1]))
    NUMS.append(Col(f"{short}z", f"{t} ZEROFILL", ints(0, top), [0, top, 7]))  # ZEROFILL implies UNSIGNED
NUMS += [
    Col("t1", "TINYINT(1)", ints(-128, 127), [-128, 127, 2]),
    Col("t3us", "TINYINT(3) UNSIGNED ZEROFILL", ints(0, 255), [0, 255, 155]),
    Col("flag", "BOOLEAN", st.sampled_from([0, 1]), [1, 0]),
    Col("i11z", "INT(11) UNSIGNED ZEROFILL", ints(0, 2**32 - 1), [4294967295, 0, 3294967295]),
    Col("i5z", "INT(5) UNSIGNED ZEROFILL", ints(0, 2**32 - 1), [4294967295, 12, 0]),
    Col("b3z", "BIGINT(3) ZEROFILL", ints(0, 2**64 - 1), [2**64 - 1, 5, 0]),
]
for bits in (1, 2, 8, 9, 12, 16, 63, 64):
    NUMS.append(Col(f"bit{bits}", f"BIT({bits})", ints(0, 2**bits - 1), [0, 2**bits - 1, 1]))
for p, s in [(2, 1), (7, 2), (10, 3), (20, 10), (23, 0), (32, 0), (38, 10), (38, 38), (10, 10), (65, 30), (65, 0)]:
    NUMS.append(Col(f"d{p}_{s}", f"DECIMAL({p},{s})", decimals(p, s), dec_edges(p, s)))
NUMS += [
    Col("num", "NUMERIC", decimals(10, 0), ["9999999999", "-123", "0"]),
    Col("num8_4", "NUMERIC(8,4)", decimals(8, 4), ["123.4567", "-9999.9999"]),
    Col("dz", "DECIMAL(10,2) ZEROFILL", decimals(10, 2, True), dec_edges(10, 2, True)),
    Col("dz65", "DECIMAL(65,30) ZEROFILL", decimals(65, 30, True), dec_edges(65, 30, True)),
]
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
finite64 = st.floats(allow_nan=False, allow_infinity=False)
float_edges = [3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45, 1.1754943508222875e-38, 0.1, 5.6]
double_edges = [1.7976931348623157e308, -5e-324, 2.2250738585072014e-308, 0.1, 1e22, -0.0, 2.36]
NUMS += [
    Col("f", "FLOAT", finite32, float_edges),
    Col("f10_2", "FLOAT(10,2)", st.floats(-99999999.99, 99999999.99), [5.61, -99999999.99, 0.005]),
    Col("f7_3z", "FLOAT(7,3) ZEROFILL", st.floats(0, 9999.999), [9999.999, 1.5, 0.0]),
    Col("f35_5", "FLOAT(35,5)", st.floats(-1e29, 1e29), [30.123456, -1e29]),
    Col("f23", "FLOAT(23)", finite32, [64.1, -0.5]),
    Col("f24", "FLOAT(24)", finite32, [64.1, 1e-30]),
    Col("f25", "FLOAT(25)", finite64, [64.1, 1e300]),  # 25..53 bits: a DOUBLE
    Col("dbl", "DOUBLE", st.one_of(st.sampled_from(double_edges), finite64), double_edges),
    Col("dbl20_5", "DOUBLE(20,5)", st.floats(-1e14, 1e14), [30.123456, -99999999999999.99999]),
    Col("rl", "REAL", finite64, [1.25, -2.36]),
    Col("dblz", "DOUBLE ZEROFILL", st.floats(0, 1e300), [2.25, 0.0]),
    Col("yr", "YEAR", st.one_of(st.just(0), st.integers(1901, 2155)), [0, 1901, 2155, "18", "0018", "70", "00"]),
    Col("yr2", "YEAR(2)", st.one_of(st.just(0), st.integers(1970, 2069)), [1984, 2069, 0, "70", "00"]),  # MariaDB
]

# ---- times: DATE, DATETIME(0..6), TIMESTAMP(0..6), TIME(0..6), zero and partial-zero dates ------------

MAX_TIME = (838 * 3600 + 59 * 60 + 59) * 1_000_000


def time_text(micros: int, p: int) -> str:
    sign = "-" if micros < 0 else ""
    micros = abs(micros) // 10 ** (6 - p) * 10 ** (6 - p)
    s, us = divmod(micros, 1_000_000)
    h, rest = divmod(s, 3600)
    return f"{sign}{h:02d}:{rest // 60:02d}:{rest % 60:02d}" + (f".{us:06d}"[: p + 1] if p else "")


def datetimes(lo: str, hi: str, p: int) -> Any:
    values = st.datetimes(dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi))
    return values.map(lambda v: v.isoformat(sep=" ", timespec="microseconds")[: 19 + (p + 1 if p else 0)])


ZERO_DATETIMES = ["0000-00-00 00:00:00", "2020-00-15 10:00:00", "2020-05-00 23:59:59", "0000-01-01 00:00:00"]
TIMES: list[Col] = [
    Col(
        "d",
        "DATE",
        st.one_of(st.sampled_from(["0000-00-00", "2020-00-00", "2020-05-00"]), st.dates().map(str)),
        ["0000-00-00", "2020-00-00", "2020-05-00", "0001-00-00", "0018-04-01", "1000-01-01", "9999-12-31"],
    )
]
for p in range(7):
    frac = "." + "9" * p if p else ""
    TIMES.append(
        Col(
            f"dt{p}",
            f"DATETIME({p})",
            st.one_of(st.sampled_from(ZERO_DATETIMES), datetimes("1000-01-01", "9999-12-31 23:59:59.999999", p)),
            [*ZERO_DATETIMES, f"9999-12-31 23:59:59{frac}", "1000-01-01 00:00:00", "1970-01-01 00:00:00"],
        )
    )
    TIMES.append(
        Col(
            f"ts{p}",
            f"TIMESTAMP({p}) NULL DEFAULT NULL",
            st.one_of(
                st.sampled_from(["0000-00-00 00:00:00", "2021-01-00 00:00:00"]),
                datetimes("1970-01-01 00:00:01", "2038-01-19 03:14:07.999999", p),
            ),
            ["0000-00-00 00:00:00", "1970-01-01 00:00:01", f"2038-01-19 03:14:07{frac}", "2021-01-00 00:00:00"],
        )
    )
    TIMES.append(
        Col(
            f"tm{p}",
            f"TIME({p})",
            ints(-MAX_TIME, MAX_TIME).map(lambda m, p=p: time_text(m, p)),
            [
                time_text(-1 if p == 6 else -(10 ** (6 - p)), p),  # the smallest negative fraction
                time_text(MAX_TIME, p),
                time_text(-MAX_TIME, p),
                time_text(-MAX_TIME + 10 ** (6 - p) if p else -MAX_TIME, p),
                time_text(-1_250_000 // 10 ** (6 - p) * 10 ** (6 - p), p),
                "24:00:00",
                "-00:00:00",
            ],
        )
    )

# ---- texts: character sets, binary, ENUM, SET, JSON ----------------------------------------------

AWKWARD = "\",\n\r\t\\\x00\x1e\x1f'NUL\\N "
any_text = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters(exclude_categories=("Cs",))), max_size=40)
bmp_text = st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=30)
# MySQL's latin1 is Windows-1252 with its five unassigned bytes mapped to the C1 controls
LATIN1 = bytes(range(256)).decode("cp1252", errors="ignore") + "\x81\x8d\x8f\x90\x9d"
LATIN2 = bytes([*range(0x20, 0x7F), *range(0xA0, 0x100)]).decode("iso8859_2")
CP1251 = bytes([*range(0x20, 0x7F), *range(0xC0, 0x100)]).decode("cp1251")
JSON_AS_WRITTEN = [
    '{"a": 1, "a": 2}',
    " [1, 2.50, -0, 1e2, 1E-7] ",
    '{"春江潮水连海平": "海上明月共潮生"}',
    "null",
    '"s"',
]
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), finite64, any_text),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(any_text, children, max_size=3)),
    max_leaves=8,
)
TEXTS: list[Col] = [
    Col("c", "CHAR(20)", st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20), ["ab  ", "", " x"]),
    Col("vc", "VARCHAR(100)", any_text, ["emoji 😀🎉 中文", "NULL", "\\N", AWKWARD]),
    Col("tt", "TINYTEXT", any_text, ["", '""']),
    Col("tx", "TEXT", any_text, ["line1\nline2\r\n\ttab"]),
    Col("mt", "MEDIUMTEXT", any_text, ["0" * 70_000]),
    Col("lt", "LONGTEXT", any_text, ["long " * 3000]),
    Col(
        "lat", "VARCHAR(60) CHARACTER SET latin1", st.text(alphabet=st.sampled_from(LATIN1), max_size=60), [LATIN1[:60]]
    ),
    Col(
        "lat2",
        "VARCHAR(60) CHARACTER SET latin2",
        st.text(alphabet=st.sampled_from(LATIN2), max_size=60),
        ["Žluťoučký kůň"],
    ),
    Col("cyr", "VARCHAR(60) CHARACTER SET cp1251", st.text(alphabet=st.sampled_from(CP1251), max_size=60), ["тест"]),
    Col("u3", "VARCHAR(40) CHARACTER SET utf8mb3", bmp_text, ["产品", "\uffff"]),
    Col("u16", "VARCHAR(40) CHARACTER SET utf16", any_text, ["a😀b", "\ufffd"]),
    Col("ucs", "VARCHAR(40) CHARACTER SET ucs2", bmp_text, ["ucs ü 中"]),
    Col("cbin", "VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", any_text, ["Case ", "case"]),
    Col(
        "nc",
        "NCHAR(5)",
        st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=5),
        ["a", "123"],
    ),
    Col("nvc", "NVARCHAR(25)", bmp_text.map(lambda s: s[:25]), ["hello"]),
    Col("b16", "BINARY(16)", st.binary(max_size=16), [bytes.fromhex("651aed08390f4893b2f136923e7b7400"), b"", b"\x00"]),
    Col("vb", "VARBINARY(60)", st.binary(max_size=60), [b"MySQL", b"", b"\x00\xff"]),
    Col("cb", "CHAR(7) CHARACTER SET binary", st.binary(max_size=7), [b"Airbyte", b""]),
    Col("tb", "TINYBLOB", st.binary(max_size=60), [b"Hello"]),
    Col("bl", "BLOB", st.binary(max_size=200), [bytes(range(256))]),
    Col("mb", "MEDIUMBLOB", st.binary(max_size=100), [b"\x00" * 70_000]),
    Col("lb", "LONGBLOB", st.binary(max_size=100), [b"World"]),
    Col(
        "e",
        "ENUM('a','b c','','ü','\"q\"','a,b','c,''d')",
        st.sampled_from(["a", "b c", "", "ü", '"q"', "a,b", "c,'d"]),
        ["ü", "", "a,b", "c,'d"],
    ),
    # 'zz' is no member: MySQL stores the error value, index 0, printed as ''
    Col("el", "ENUM('x','ü','ß') CHARACTER SET latin1", st.sampled_from(["x", "ü", "ß"]), ["ü", "ß", "zz"]),
    Col("st", "SET('x','y','z')", st.sets(st.sampled_from("xyz")).map(lambda s: ",".join(sorted(s))), ["", "x,z"]),
    Col("stl", "SET('ä','ö','o') CHARACTER SET latin1", st.sets(st.sampled_from("äöo")).map(",".join), ["ä,ö", ""]),
    Col(
        "js",
        "JSON",
        st.one_of(st.sampled_from(JSON_AS_WRITTEN), json_values.map(lambda v: json.dumps(v, ensure_ascii=False))),
        JSON_AS_WRITTEN,
    ),
]

# ---- geo: every geometry type, SRIDs ---------------------------------------------------------------

coord = st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 6))
srid = st.sampled_from([0, 4326, 3857, 3187])
point = st.tuples(coord, coord).map(lambda p: f"{p[0]!r} {p[1]!r}")
ring = st.tuples(coord, coord).map(lambda p: f"(({p[0]} {p[1]}, {p[0] + 1} {p[1]}, {p[0]} {p[1] + 1}, {p[0]} {p[1]}))")
line = st.lists(point, min_size=2, max_size=4).map(lambda ps: f"({', '.join(ps)})")
GEOMETRIES = {
    "g": ("GEOMETRY", point.map(lambda p: f"POINT({p})"), "LINESTRING(0 0, 1 1)"),
    "pt": ("POINT", point.map(lambda p: f"POINT({p})"), "POINT(8.25554554 3.22124447)"),
    "ls": ("LINESTRING", line.map(lambda x: f"LINESTRING{x}"), "LINESTRING(0 0, 1 1)"),
    "pg": ("POLYGON", ring.map(lambda r: f"POLYGON{r}"), "POLYGON((0 0, 1 1, 1 0, 0 0))"),
    "mpt": (
        "MULTIPOINT",
        st.lists(point, min_size=1, max_size=3).map(lambda ps: f"MULTIPOINT({', '.join(ps)})"),
        "MULTIPOINT(1 1, 2 2)",
    ),
    "mls": (
        "MULTILINESTRING",
        st.lists(line, min_size=1, max_size=2).map(lambda ls: f"MULTILINESTRING({', '.join(ls)})"),
        "MULTILINESTRING((0 0, 1 1), (2 2, 3 3))",
    ),
    "mpg": (
        "MULTIPOLYGON",
        st.lists(ring, min_size=1, max_size=2).map(lambda rs: f"MULTIPOLYGON({', '.join(rs)})"),
        "MULTIPOLYGON(((0 0, 1 1, 1 0, 0 0)))",
    ),
    "gc": (
        "GEOMETRYCOLLECTION",
        point.map(lambda p: f"GEOMETRYCOLLECTION(POINT({p}), LINESTRING(0 0, 1 1))"),
        "GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))",
    ),
}
GEO = [
    Col(n, t, st.tuples(values, srid), [(edge, 4326), (edge, 0), (edge, 3187)], "ST_GeomFromText(%s, %s)")
    for n, (t, values, edge) in GEOMETRIES.items()
]

# ---- a partitioned table with non-ASCII names and generated columns ------------------------------

DERIVED = [
    Col("数量", "INT", ints(-1000, 1000), [3, 0]),
    Col("价格", "DECIMAL(10,2)", decimals(8, 2), ["12.50", "-0.01"]),
    Col(
        "名前",
        "VARCHAR(20)",
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20),
        ["ß straße", "产品"],
    ),
    Col("合计", "DECIMAL(21,2) AS (`数量` * `价格`) VIRTUAL"),
    Col("大写", "VARCHAR(40) AS (UPPER(`名前`)) STORED"),
    Col(
        "été", "DATETIME(3)", datetimes("1000-01-01", "9999-12-31", 3), ["2020-00-00 00:00:00", "2024-02-29 12:00:00.5"]
    ),
]

TABLES = [
    Table("nums", "id", NUMS),
    Table("times", "id", TIMES),
    Table("texts", "id", TEXTS),
    Table("geo", "id", GEO),
    Table(
        "派生_表",
        "id",
        DERIVED,
        "CHARACTER SET utf8mb4 PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (1000), "
        "PARTITION p1 VALUES LESS THAN (5000), PARTITION p2 VALUES LESS THAN MAXVALUE)",
    ),
]


def _drawn_rows(table: Table, n: int, salt: int) -> list[tuple[Any, ...]]:
    """``n`` rows drawn by hypothesis (one example each) under a fixed seed: deterministic, and varied
    (hypothesis' first example is its simplest, all zeros and empty strings: an edge case too)."""
    rows: list[tuple[Any, ...]] = []
    strategy = st.tuples(*(st.one_of(st.none(), c.values) for c in table.written))

    @seed(SEED + salt)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(row: tuple[Any, ...]) -> None:
        rows.append(row)

    draw()
    return rows[:n]


def _edge_rows(table: Table, offset: int) -> list[tuple[Any, ...]]:
    """Every edge value of every column, in as many rows as the longest list (rotated by ``offset``)."""
    cols = table.written
    count = max(len(c.edges) for c in cols)
    return [tuple(c.edges[(i + offset) % len(c.edges)] if c.edges else None for c in cols) for i in range(count)]


def _sql_values(table: Table, row: tuple[Any, ...]) -> tuple[list[str], list[Any]]:
    parts, params = [], []
    for c, v in zip(table.written, row, strict=True):
        if v is None:
            parts.append("NULL")
        elif c.placeholder == "%s":
            parts.append("%s")
            params.append(v)
        else:
            parts.append(c.placeholder)
            params.extend(v)
    return parts, params


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _insert(cur: Any, table: Table, key: int, row: tuple[Any, ...]) -> None:
    parts, params = _sql_values(table, row)
    names = ", ".join(_q(c.name) for c in table.written)
    cur.execute(
        f"INSERT INTO {_q(table.name)} ({_q(table.key)}, {names}) VALUES (%s, {', '.join(parts)})", [key, *params]
    )


def _update(cur: Any, table: Table, key: int, row: tuple[Any, ...]) -> None:
    parts, params = _sql_values(table, row)
    sets = ", ".join(f"{_q(c.name)} = {p}" for c, p in zip(table.written, parts, strict=True))
    cur.execute(f"UPDATE {_q(table.name)} SET {sets} WHERE {_q(table.key)} = %s", [*params, key])


def _writer(env) -> Any:
    conn = env.db.connect(env.database)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates, clipping: MySQL stores what it stores
        cur.execute("SET SESSION time_zone = '+00:00'")
    return conn


def _seed_tables(env) -> dict[str, list[int]]:
    conn = _writer(env)
    keys: dict[str, list[int]] = {}
    with conn.cursor() as cur:
        for n, table in enumerate(TABLES):
            cols = ", ".join(
                f"{_q(c.name)} {c.type}{'' if ' AS (' in c.type or 'NULL' in c.type else ' NULL'}"
                for c in table.columns
            )
            cur.execute(
                f"CREATE TABLE {_q(table.name)} ({_q(table.key)} INT NOT NULL PRIMARY KEY, {cols}) {table.options}"
            )
            rows = _edge_rows(table, 0) + _drawn_rows(table, ROWS, n)
            keys[table.name] = list(range(1, len(rows) + 1))
            for key, row in zip(keys[table.name], rows, strict=True):
                _insert(cur, table, key, row)
    conn.close()
    return keys


def _change_tables(env, keys: dict[str, list[int]]) -> None:
    """After the initial copy: new rows (edges in another order, new draws), updates to other values
    and to NULL, deletes, a key change (across partitions in the partitioned table), a row inserted and
    deleted in one window, and a row updated twice."""
    conn = _writer(env)
    with conn.cursor() as cur:
        for n, table in enumerate(TABLES):
            existing = keys[table.name]
            fresh = _edge_rows(table, 1) + _drawn_rows(table, ROWS, 100 + n)
            for i, row in enumerate(fresh[: len(fresh) // 2]):
                _insert(cur, table, 1000 + i, row)
            for key, row in zip(existing[::3], fresh[len(fresh) // 2 :], strict=False):
                _update(cur, table, key, row)
            _update(cur, table, existing[1], tuple(None for _ in table.written))
            _update(cur, table, existing[-1], fresh[0])
            _update(cur, table, existing[-1], fresh[-1])
            for key in existing[4::5]:
                cur.execute(f"DELETE FROM {_q(table.name)} WHERE {_q(table.key)} = %s", [key])
            cur.execute(f"UPDATE {_q(table.name)} SET {_q(table.key)} = 7000 WHERE {_q(table.key)} = %s", [existing[2]])
            _insert(cur, table, 9999, fresh[1])
            cur.execute(f"DELETE FROM {_q(table.name)} WHERE {_q(table.key)} = 9999")
    conn.close()


def _target_rows(env, schema: str, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    from aurora_replication.source import discover as source_discover

    plan = source_discover.discover_table(env.mysql, env.database, table)
    columns = ", ".join('"' + c.target.replace('"', '""') + '"' for c in plan.columns)
    key = '"' + plan.column(plan.key[0]).target + '"'
    conn = env.snowflake()
    try:
        cur = conn.cursor()
        cur.execute(f'SELECT {columns} FROM "ANALYTICS"."{schema}"."{plan.target_table}" ORDER BY {key}')
        rows = [tuple(_plain(c.kind, v) for c, v in zip(plan.columns, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
    return [c.name for c in plan.columns], rows


def _plain(kind: str, v: Any) -> Any:
    if kind == "json" and v is not None:
        return json.loads(v)
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def _validate(tables: list[str]) -> list[dict]:
    from aurora_replication.config import load_settings
    from aurora_replication.pipeline import validate
    from aurora_replication.services import Services

    load_settings.cache_clear()
    return validate.validate_tables(Services.from_settings(load_settings()), tables)


def _position(env) -> Any:
    from aurora_replication.source import binlog

    conn = env.db.connect(env.database)
    try:
        return binlog.current_position(conn)
    finally:
        conn.close()


def _text_rows_are_the_librarys(env, start: Any) -> None:
    """The changes' window read both ways (row images straight to text, ``source/binlog_rows.py``, and
    through the library with its values spelled by ``to_text``): the same changes, value by value; and the
    text reader read every table but the ones whose columns it leaves to the library."""
    from aurora_replication.secrets import MySQLSettings
    from aurora_replication.source import binlog

    conn = env.db.connect(env.database)
    try:
        stop = binlog.current_position(conn)
        specs = {
            t.name: binlog.TableSpec(
                start=start, columns=list(binlog.column_facts(conn, env.database, t.name).values()), key=[t.key]
            )
            for t in TABLES
        }
    finally:
        conn.close()
    settings = MySQLSettings("127.0.0.1", env.db.port, env.db.user, env.db.password, env.database, tls=False)
    read = {}
    for text_rows in (True, False):
        read[text_rows] = binlog.read_window(settings, specs, stop, 4236117, 120, 1 << 40, text_rows=text_rows)
    fast, library = read[True], read[False]
    assert fast.reached_end and library.reached_end
    assert 0 < fast.library_events < library.library_events
    for t in TABLES:  # which tables the text reader reads: all but the one with geometry
        alone = binlog.read_window(settings, {t.name: specs[t.name]}, stop, 4236117, 120, 1 << 40)
        spatial = any(c.kind == "spatial" for c in specs[t.name].columns)
        assert (alone.library_events > 0) == spatial, (t.name, alone.library_events)
    assert fast.unreadable == library.unreadable
    for t in TABLES:
        a, b = fast.changes[t.name], library.changes[t.name]
        assert a.keys() == b.keys(), t.name
        for key in a:
            assert (a[key].op, a[key].pos) == (b[key].op, b[key].pos), (t.name, key)
            for facts, x, y in zip(specs[t.name].columns, a[key].values, b[key].values, strict=True):
                assert x == y, f"{t.name} key {key} column {facts.name!r}: read to text {x!r}, by the library {y!r}"


def test_every_column_kind_lands_through_the_binlog_as_through_the_copy(env, tmp_path):
    keys = _seed_tables(env)
    names = ",".join(t.name for t in TABLES)
    stack = env.start_stack({"SMALL_CHUNK_ROWS": "0"})
    first = stack.run({"tables": names, "mode": "cdc", "chunk_rows": 10}, workers=2, timeout=300)
    assert first.ok, first.run["table_states"]
    changes_from = _position(env)
    _change_tables(env, keys)
    _text_rows_are_the_librarys(env, changes_from)
    second = stack.run({"tables": names, "mode": "cdc"}, workers=2, timeout=300)
    assert second.ok, second.run["table_states"]
    for t in TABLES:
        state = second.run["table_states"][t.name]
        assert state["mode"] == "cdc" and state["upserts"] and state["deletes"], (t.name, state)
    # the cdc-maintained target equals MySQL value by value (read as the copy path reads MySQL)
    sf = env.snowflake()
    try:
        for t in TABLES:
            mysql_rows, sf_rows = fetch_pair(env.db.connect(env.database), env.database, sf, t.name)
            assert len(mysql_rows) == len(sf_rows), t.name
            for m, s in zip(mysql_rows, sf_rows, strict=True):
                assert m == s, f"{t.name}: MySQL {m!r} != cdc target {s!r}"
    finally:
        sf.close()
    reports = _validate([t.name for t in TABLES])
    assert all(r["result"] == "ok" and "differences" not in r for r in reports), reports
    cdc_schema = env.schema
    # a fresh full copy of the same source into a second schema, with its own state: the copy path
    stack.stop()
    env.stack = None
    env.schema, env.home = f"{cdc_schema}_COPY", tmp_path / "copy"
    copy = env.start_stack({"SMALL_CHUNK_ROWS": "0"}).run(
        {"tables": names, "mode": "full", "chunk_rows": 10}, workers=2
    )
    assert copy.ok, copy.run["table_states"]
    for t in TABLES:
        columns, by_cdc = _target_rows(env, cdc_schema, t.name)
        _, by_copy = _target_rows(env, env.schema, t.name)
        assert len(by_cdc) == len(by_copy), t.name
        for a, b in zip(by_cdc, by_copy, strict=True):
            for name, x, y in zip(columns, a, b, strict=True):
                assert x == y, f"{t.name} id={a[0]} column {name!r}: through the binlog {x!r}, through the copy {y!r}"
