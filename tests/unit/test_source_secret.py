"""The source secret: the RDS-managed shape (username and password only) with the endpoint from the
environment (the template's SourceHost, SourcePort, SourceDatabase), or a whole secret."""

from __future__ import annotations

import pytest

from aurora_replication.config import settings_from
from aurora_replication.errors import BadInputError
from aurora_replication.rotation.base import rotation_settings, secret_kind
from aurora_replication.secrets import MySQLSettings

# what Secrets Manager holds for a cluster created with ManageMasterUserPassword
RDS_MANAGED = {"username": "admin", "password": "pw"}
WHOLE = {"engine": "mysql", "host": "db.example.com", "port": 3307, "username": "u", "password": "p", "dbname": "shop"}
BASE_ENV = {"STATE_TABLE": "t", "CHUNK_QUEUE_URL": "q", "SOURCE_SECRET_ARN": "s", "TARGET_SECRET_ARN": "t"}


def test_an_rds_managed_secret_takes_host_port_and_database_from_the_environment():
    fallback = settings_from({**BASE_ENV, "SOURCE_HOST": "c.cluster-x.rds.amazonaws.com", "SOURCE_DBNAME": "shop"})
    s = MySQLSettings.from_secret(RDS_MANAGED, fallback=fallback.source_fallback)
    assert (s.host, s.port, s.dbname, s.username, s.tls) == (
        "c.cluster-x.rds.amazonaws.com",
        3306,
        "shop",
        "admin",
        True,
    )
    s = MySQLSettings.from_secret(RDS_MANAGED, fallback={"host": "h.example.com", "port": "3307", "dbname": "d"})
    assert s.port == 3307


def test_without_them_the_error_says_which_setting_to_give():
    with pytest.raises(BadInputError) as e:
        MySQLSettings.from_secret(RDS_MANAGED, fallback={"host": "", "port": "", "dbname": ""})
    message = str(e.value)
    assert "lacks host, dbname" in message and "SOURCE_HOST (host)" in message and "SourceHost" in message
    assert "RDS-managed secret holds only username and password" in message


def test_a_whole_secret_is_used_as_it_is_and_a_disagreeing_setting_is_refused():
    assert MySQLSettings.from_secret(WHOLE, fallback={"host": "", "port": "", "dbname": ""}).host == "db.example.com"
    assert MySQLSettings.from_secret(WHOLE, fallback={"host": "db.example.com"}).port == 3307  # agreeing is fine
    with pytest.raises(BadInputError, match="host 'db.example.com' differs from SOURCE_HOST='other'"):
        MySQLSettings.from_secret(WHOLE, fallback={"host": "other"})
    with pytest.raises(BadInputError, match="port 3307 differs from SOURCE_PORT='3306'"):
        MySQLSettings.from_secret(WHOLE, fallback={"port": "3306"})


def test_the_environment_is_validated_once():
    with pytest.raises(BadInputError, match="SOURCE_PORT"):
        settings_from({**BASE_ENV, "SOURCE_PORT": "mysql"})
    with pytest.raises(BadInputError, match="SOURCE_PORT"):
        rotation_settings({"SOURCE_PORT": "33o6"})
    assert rotation_settings({"SOURCE_HOST": "h"}).source_fallback == {"host": "h", "port": "", "dbname": ""}


def test_rotation_knows_a_mysql_secret_without_host_by_its_engine():
    assert secret_kind({**RDS_MANAGED, "engine": "aurora-mysql"}) == "mysql"
    assert secret_kind(WHOLE) == "mysql"
    with pytest.raises(Exception, match="cannot tell"):
        secret_kind(RDS_MANAGED)
