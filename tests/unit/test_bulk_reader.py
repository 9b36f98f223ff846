"""The bulk reader (source/bulk.py) and the worker's row codec (pipeline/rowcodec.py), without a server:
TLS options as source/connect.py's, errors as pymysql's, doubles spelled exactly, the compression a
COPY names."""

from __future__ import annotations

import math
import struct

import MySQLdb
import pymysql
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_replication.errors import BadInputError
from aurora_replication.pipeline import rowcodec
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import bulk
from aurora_replication.target.snowflake import sql as target_sql


def _settings(tls: bool, bundle: str = "") -> MySQLSettings:
    return MySQLSettings("db.example", 3306, "u", "pw", "shop", tls=tls, ca_bundle=bundle)


def test_tls_is_verified_against_the_bundle_with_the_host_name(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert bulk.tls_options(_settings(True, str(bundle))) == {"ssl": {"ca": str(bundle)}, "ssl_mode": "VERIFY_IDENTITY"}
    assert bulk.tls_options(_settings(False)) == {"ssl_mode": "DISABLED"}
    system = bulk.tls_options(_settings(True, "system"))
    assert system["ssl_mode"] == "VERIFY_IDENTITY" and system["ssl"]["ca"].endswith((".crt", ".pem"))


def test_a_missing_bundle_is_named(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        bulk.tls_options(_settings(True, str(tmp_path / "nope.pem")))


def test_errors_are_pymysqls_of_the_same_code():
    with pytest.raises(pymysql.err.OperationalError) as raised, bulk.translated():
        raise MySQLdb.OperationalError(2013, "Lost connection to server during query")
    assert raised.value.args == (2013, "Lost connection to server during query")
    with pytest.raises(pymysql.err.ProgrammingError), bulk.translated():
        raise MySQLdb.ProgrammingError(1064, "syntax")


EDGE = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, 0.1, 1e22]


def _reference(x: float) -> bytes:
    """source.sql._float_canonical's definition from the bits: |x| = m * 2^(e-52), 2^52 <= m < 2^53."""
    if x == 0:
        return b"0"
    bits = struct.unpack(">Q", struct.pack(">d", abs(x)))[0]
    biased, fraction = bits >> 52, bits & ((1 << 52) - 1)
    if biased:
        m, e = fraction | (1 << 52), biased - 1023
    else:  # subnormal: shift the fraction up to 53 bits
        m, e = fraction << (53 - fraction.bit_length()), fraction.bit_length() - 1075
    return b"%s%dp%d" % (b"-" if x < 0 else b"", m, e)


@given(st.lists(st.one_of(st.sampled_from(EDGE), st.floats(allow_nan=False, allow_infinity=False)), min_size=1))
def test_doubles_are_spelled_by_their_bits(values):
    texts = [repr(v).encode() for v in values]
    assert rowcodec._floats(texts) == [_reference(v) for v in values] == [rowcodec.float_canonical(v) for v in values]


def test_a_double_that_is_not_finite_is_an_error():
    with pytest.raises(rowcodec.RowEncodingError):
        rowcodec._floats([b"inf"])
    assert math.isnan(float(b"nan"))


def test_a_copy_names_the_compression_of_its_files():
    assert "COMPRESSION = ZSTD" in target_sql.csv_file_format(target_sql.compression_of(["data-a.csv.zst"]))
    assert target_sql.compression_of(["a-000.csv.gz", "a-001.csv.gz"]) == "GZIP"
    with pytest.raises(ValueError, match="one compression"):
        target_sql.compression_of(["a.csv.gz", "b.csv.zst"])
    with pytest.raises(ValueError):
        target_sql.compression_of(["a.csv"])
