"""Chunk planning without a database: candidate values per key kind, string ranks, the SQL text."""

from __future__ import annotations

import unicodedata

import pytest

from aurora_replication.keyset import compare_predicate
from aurora_replication.models import Column, TablePlan
from aurora_replication.source import bounds
from aurora_replication.source import sql as source_sql
from aurora_replication.source.sql import mysql_ident


@pytest.mark.parametrize(
    ("domain", "low", "high", "key"),
    [
        (bounds.INTEGERS, "-5", "18446744073709551615", int),
        (bounds.DECIMALS, "-12.5000", "7.25", float),
        (bounds.DATES, "1999-12-30", "2024-03-01", str),
        (bounds.DATES, "0000-00-00", "0001-02-00", str),  # zero dates still give valid candidates
        (bounds.DATETIMES, "2021-01-01 00:00:00.000001", "2021-01-01 00:00:01", str),
        (bounds.DATETIMES, "2020-02-28 23:59:59", "2020-03-01 00:00:00", str),
        (bounds.TIMES, "-838:59:59.000000", "12:00:00.5", None),
    ],
)
def test_arithmetic_candidates_are_increasing_and_inside_the_range(domain, low, high, key):
    got = domain.candidates(low, high, 16, include_low=True)
    assert got[0] == low and len(got) > 3
    codes = [domain._encode(v, low, high) for v in got]
    assert codes == sorted(set(codes)), got
    assert codes[-1] < domain._encode(high, low, high)
    if key is not None:
        assert [key(v) for v in got] == sorted(key(v) for v in got)
    assert low not in domain.candidates(low, high, 16, include_low=False)


def test_arithmetic_candidates_of_adjacent_values_are_only_the_low_one():
    assert bounds.INTEGERS.candidates("7", "8", 10, include_low=False) == []
    assert bounds.INTEGERS.candidates("7", "8", 10, include_low=True) == ["7"]
    assert bounds.DECIMALS.candidates("0.10", "0.11", 4, include_low=False) == []


def test_candidates_of_unparseable_values_are_none():
    assert bounds.DATES.candidates("garbage", "2024-01-01", 4, include_low=False) == []


def test_datetime_candidates_are_mysql_literals():
    got = bounds.DATETIMES.candidates("2021-01-01 00:00:00", "2021-01-03 00:00:00", 4, include_low=False)
    assert got == ["2021-01-01 12:00:00.000000", "2021-01-02 00:00:00.000000", "2021-01-02 12:00:00.000000"]
    assert bounds.TIMES.candidates("-01:00:00", "01:00:00", 2, include_low=False) == ["00:00:00.000000"]


def folded_weights(chars: list[str]) -> list[bytes]:
    """A case- and accent-insensitive collation, as WEIGHT_STRING would rank it."""
    out = []
    for c in chars:
        base = unicodedata.normalize("NFKD", c)[0].upper()
        out.append(b"" if c == "\u00ad" else base.encode())  # a soft hyphen is ignorable
    return out


def test_strings_rank_by_the_collation_weights_not_by_code_point():
    s = bounds.Strings(folded_weights)
    assert s.same("abc", "ABC") and s.same("émile", "Emile") and s.same("a\u00adb", "ab")
    assert not s.same("abc", "abd")
    assert s.digits("a") < s.digits("B") < s.digits("c")  # code points would put B before a


def test_string_candidates_lie_between_the_two_keys_in_collation_order():
    s = bounds.Strings(folded_weights)
    low, high = "alpha-0001", "Alpha-9999"
    got = s.candidates(low, "Zulu", 8, include_low=False)
    assert len(got) == 7
    weights = [s.digits(g) for g in got]
    assert weights == sorted(weights)
    assert all(s.digits(low) < w < s.digits("Zulu") for w in weights)
    # the common prefix is kept and the interpolation happens after it
    inner = s.candidates(low, high.replace("A", "a"), 4, include_low=False)
    assert inner and all(s.same(g[:6], "alpha-") for g in inner)


def test_strings_learn_new_characters_from_the_keys():
    s = bounds.Strings(bounds.code_point_weights)
    got = s.candidates("李-1", "李-9", 4, include_low=False)
    assert got and all(g.startswith("李-") for g in got)


def test_estimate_query_is_one_explain_of_a_union():
    statement, params = source_sql.range_estimate_query("t%", "PRIMARY", ["id"], [(None, ["5"]), (["5"], None)])
    assert statement == (
        "EXPLAIN SELECT 1 FROM `t%%` FORCE INDEX (PRIMARY) WHERE ((`id` <= %s)) "
        "UNION ALL SELECT 1 FROM `t%%` FORCE INDEX (PRIMARY) WHERE ((`id` > %s))"
    )
    assert params == ["5", "5"]


def test_last_keys_query_snaps_each_prefix_bound_inside_the_range():
    statement, params = source_sql.last_keys_query(
        "t", "ux", ["a", "b"], after=["1", "2"], before=["9", "0"], at_most=[["3"], ["4"]]
    )
    one = (
        "(SELECT `a`, `b` FROM `t` FORCE INDEX (`ux`) WHERE ((`a` > %s) OR (`a` = %s AND `b` > %s)) AND "
        "((`a` < %s) OR (`a` = %s AND `b` < %s)) AND ((`a` <= %s)) ORDER BY `a` DESC, `b` DESC LIMIT 1)"
    )
    assert statement == f"{one} UNION ALL {one}"
    assert params == ["1", "1", "2", "9", "9", "0", "3", "1", "1", "2", "9", "9", "0", "4"]


def test_ordered_keys_query_looks_up_points():
    assert source_sql.ordered_keys_query("t", "PRIMARY", ["id"], [["3"], ["1"]]) == (
        "SELECT `id` FROM `t` FORCE INDEX (PRIMARY) WHERE `id` IN (%s, %s) ORDER BY `id`",
        ["3", "1"],
    )
    statement, params = source_sql.ordered_keys_query("t", None, ["a", "b"], [["1", "x"], ["2", "y"]])
    assert (
        statement
        == "SELECT `a`, `b` FROM `t` WHERE (`a` = %s AND `b` = %s) OR (`a` = %s AND `b` = %s) ORDER BY `a`, `b`"
    )
    assert params == ["1", "x", "2", "y"]


def test_prefix_comparisons_and_their_limits():
    assert compare_predicate(["a", "b", "c"], "<=", ["1", "2"], mysql_ident) == (
        "((`a` < %s) OR (`a` = %s AND `b` <= %s))",
        ["1", "1", "2"],
    )
    with pytest.raises(ValueError):
        compare_predicate(["a"], "<=", ["1", "2"], mysql_ident)
    with pytest.raises(ValueError):
        compare_predicate(["a"], "!=", ["1"], mysql_ident)


def test_weights_query_pastes_only_plain_collation_names():
    assert source_sql.weights_query("utf8mb4", "utf8mb4_0900_ai_ci", 2) == (
        "SELECT HEX(WEIGHT_STRING(CONVERT(%s USING utf8mb4) COLLATE utf8mb4_0900_ai_ci)), "
        "HEX(WEIGHT_STRING(CONVERT(%s USING utf8mb4) COLLATE utf8mb4_0900_ai_ci))"
    )
    with pytest.raises(ValueError):
        source_sql.weights_query("utf8mb4", "x) UNION SELECT (1", 1)


def test_bound_probe_query_stops_below_an_upper_key():
    statement, params = source_sql.bound_probe_query("t", ["id"], ["5"], 9, ["20"])
    assert statement == "SELECT `id` FROM `t` WHERE ((`id` > %s)) AND ((`id` < %s)) ORDER BY `id` LIMIT 1 OFFSET 9"
    assert params == ["5", "20"]


# ---- binary and floating-point keys ------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("00" * 16, "FF" * 16),  # BINARY(16): every candidate keeps the length
        ("00FF" + "00" * 14, "0100" + "00" * 14),
        ("6162", "616200FF"),  # VARBINARY: a value, its extensions with 0x00 and 0xFF
        ("", "FFFF"),
        ("7F", "80"),
    ],
)
def test_binary_candidates_are_hex_increasing_bytewise_and_inside_the_range(low, high):
    got = bounds.Bytes().candidates(low, high, 16, include_low=True)
    assert got[0] == low
    values = [bytes.fromhex(v) for v in got]
    assert values == sorted(set(values)), got  # Python orders bytes as MySQL's binary collation does
    assert all(bytes.fromhex(low) <= v < bytes.fromhex(high) for v in values), got
    if len(low) == len(high):
        assert {len(v) for v in got} == {len(low)}, got
    assert low not in bounds.Bytes().candidates(low, high, 16, include_low=False)


def test_binary_candidates_spread_over_a_uuid_range():
    got = bounds.Bytes().candidates("00" * 16, "FF" * 16, 8, include_low=False)
    assert [v[:2] for v in got] == ["1F", "3F", "5F", "7F", "9F", "BF", "DF"]
    assert bounds.Bytes().candidates("zz", "FF", 8, include_low=True) == ["zz"]  # not hex: nothing to cut


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize(
    ("low", "high"),
    [("-2.5", "1000000.125"), ("1e-09", "235000000.0"), ("-3.4e+38", "-1.5"), ("0.1", "0.30000000000000004")],
)
def test_float_candidates_are_exact_values_increasing_inside_the_range(single, low, high):
    import struct

    domain = bounds.Floats(single)
    got = domain.candidates(low, high, 16, include_low=False)
    values = [float(v) for v in got]
    assert len(got) >= 3 and values == sorted(set(values)), got
    assert all(float(low) < v < float(high) for v in values), got
    assert all(repr(float(v)) == v or v == "0" for v in got)  # the text round-trips to the value
    if single:  # a FLOAT column's candidates are single-precision values
        assert all(struct.unpack(">f", struct.pack(">f", v))[0] == v for v in values), got
    if float(low) < 0 < float(high):
        assert "0" in got
    if float(low) > 0 and float(high) / float(low) > bounds.Floats.SPREAD:  # spread by magnitude
        assert values[len(values) // 2] < (float(low) + float(high)) / 100, got


def test_key_form_sends_binary_keys_as_hex_and_compares_them_as_bytes():
    form = source_sql.KeyForm(binary=frozenset({"id"}), floats=frozenset({"f"}))
    statement, params = source_sql.edge_key_query(
        "t", "PRIMARY", ["id", "f"], last=True, after=["00FF", "1.5"], form=form
    )
    assert statement.startswith("SELECT HEX(`id`), (`f` + 0e0) FROM `t` FORCE INDEX (PRIMARY) WHERE ")
    assert "`id` > UNHEX(%s)" in statement and "`id` = UNHEX(%s) AND `f` > %s" in statement
    assert statement.endswith("ORDER BY `id` DESC, `f` DESC LIMIT 1")
    assert params == ["00FF", "00FF", "1.5"]  # bound as parameters, never pasted
    statement, _ = source_sql.ordered_keys_query("t", None, ["id"], [["00"], ["FF"]], form)
    assert statement == "SELECT HEX(`id`) FROM `t` WHERE `id` IN (UNHEX(%s), UNHEX(%s)) ORDER BY `id`"
    statement, _ = source_sql.bound_probe_query("t", ["id"], ["AB"], 9, None, form)
    assert statement == "SELECT HEX(`id`) FROM `t` WHERE ((`id` > UNHEX(%s))) ORDER BY `id` LIMIT 1 OFFSET 9"


def test_key_form_sends_bit_keys_as_numbers_and_compares_them_as_numbers():
    """MySQL sends a BIT value as raw bytes (BIT(64) 23989979 is b'\\x00\\x00\\x00\\x00\\x01n\\x0e\\xdb', not
    text): a BIT key is read as its number and compared as one, as a plan's key form and the planner's say."""
    form = source_sql.KeyForm(bits=frozenset({"b"}))
    statement, params = source_sql.bound_probe_query("t", ["b"], ["23989979"], 1, None, form)
    assert statement == "SELECT (`b` + 0) FROM `t` WHERE ((`b` > CAST(%s AS UNSIGNED))) ORDER BY `b` LIMIT 1 OFFSET 1"
    assert params == ["23989979"]
    plan = TablePlan(
        table="t",
        target_table="T",
        columns=[Column(name="b", kind="bit", target="B"), Column(name="v", kind="text", target="V")],
        key=["b"],
        mode="full",
    )
    assert source_sql.key_form(plan) == form
