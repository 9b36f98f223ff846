"""The Snowflake connector in Lambda: the home directory cannot be written, only /tmp can.

A fresh process, as a Lambda container, with the template's environment (its /tmp paths moved
into this test's directory) and a home directory that cannot exist: the connector imports,
connects and queries, its OCSP cache lands where the template says, and nothing is written home.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aurora_replication.target.snowflake.client import cache_options
from aurora_replication_dev.local.template import Template

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SF_CACHE_VARS = ("SF_OCSP_RESPONSE_CACHE_DIR", "SF_TEMPORARY_CREDENTIAL_CACHE_DIR")

PROGRAM = """
import json, sys
from aurora_replication.secrets import SnowflakeSettings
from aurora_replication.target.snowflake.client import connect, execute
settings = SnowflakeSettings.from_secret(json.loads(sys.argv[1]))
conn = connect(settings)
result = execute(conn, "SELECT %s + 1", [41])
conn.close()
# the OCSP checks run on TLS connections (the emulator speaks http): import them as TLS would
from snowflake.connector import ocsp_snowflake
print(json.dumps({"result": result, "ocsp_cache_dir": ocsp_snowflake.OCSPCache.CACHE_DIR,
                  "validation_cache": type(ocsp_snowflake.OCSP_RESPONSE_VALIDATION_CACHE).__name__}))
"""


def test_template_points_the_connector_caches_at_tmp():
    env = Template(ROOT / "template.yaml").literal_environment()
    for var in SF_CACHE_VARS:
        assert env[var].startswith("/tmp/"), var
    options = cache_options("/tmp")
    assert options["client_store_temporary_credential"] is False
    assert options.get("crl_cache_dir", "/tmp/").startswith("/tmp/")


def test_the_connector_works_with_an_unwritable_home(servers, tmp_path):
    _, sf = servers
    template_env = Template(ROOT / "template.yaml").literal_environment()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "XDG_"))}
    env.update({var: str(tmp_path / template_env[var].removeprefix("/tmp/")) for var in SF_CACHE_VARS})
    env.update({"HOME": "/dev/null/home", "WORK_DIR": str(tmp_path / "work"), "SNOWFLAKE_HOME": "/dev/null/sf"})
    secret = {
        "account": "emulator",
        "user": "fake",
        "password": "snow",
        "database": "ANALYTICS",
        "schema": "PUBLIC",
        "host": "127.0.0.1",
        "port": sf.port,
        "protocol": "http",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(secret)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["result"] == [[42]]
    # the OCSP response cache where the template says, made at import; the validation cache, which
    # has no setting and would go home, falls back to memory
    assert report["ocsp_cache_dir"] == env["SF_OCSP_RESPONSE_CACHE_DIR"]
    assert Path(env["SF_OCSP_RESPONSE_CACHE_DIR"]).is_dir()
    assert report["validation_cache"] == "SFDictCache"
