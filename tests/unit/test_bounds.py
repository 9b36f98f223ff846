"""Chunk planning without a database: candidate values per key kind, string ranks, the SQL text."""

from __future__ import annotations

import unicodedata

import pytest

from aurora_replication.keyset import compare_predicate
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
