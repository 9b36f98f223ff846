"""The developer's and operator's side of aurora-snowflake-replication: what runs on a laptop or in CI,
never in Lambda.

- ``cli``: the ``replicate`` command (runs, status, reports, the local stack, the demo).
- ``local``: the local stack (MariaDB, the moto server, the Snowflake emulator's launcher, the local
  runner that drives the Lambda handlers as their event sources would, the CloudFormation rehearsal).

It imports ``aurora_replication`` (the Lambda layer's package); the layer never imports it, and
``sam build`` packages only the layer (``tests/unit/test_architecture.py`` checks both).
"""
