"""Before a run writes anything: both endpoints answer, accept who we are, and have what the run names.

A run request that cannot start (MySQL or Snowflake unreachable, a wrong password, a database or
warehouse that does not exist) must fail before the scheduler takes a lease, records a run or sends
a message, with one line that says what was tried and what to check (``errors.EndpointError``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aurora_replication.errors import EndpointError
from aurora_replication.services import Services


def check_endpoints(services: Services) -> None:
    """Connect to MySQL, then log in to Snowflake and check the session's database, schema and warehouse. The
    session, once checked, is kept as the container's warm one (``Connections.adopt_target``): the run's
    planning goes on in it instead of logging in again."""
    services.connections.mysql().close()
    sf = services.connections.snowflake()
    try:
        services.connections.warehouse(sf).check_session(services.endpoints.snowflake_settings())
    except BaseException as e:
        sf.close()  # a session that failed its check is not kept
        if isinstance(e, Exception) and not isinstance(e, EndpointError):
            described = services.endpoints.endpoint_error(e, "target")
            if described is not e:
                raise described from e
        raise
    services.connections.adopt_target(sf)


@contextlib.contextmanager
def actionable_errors(services: Services, logger: Any) -> Iterator[None]:
    """A driver error a person can act on leaves the handler as an EndpointError, logged as its one
    line with the traceback beside it (Powertools puts it in the record's ``exception`` field)."""
    try:
        yield
    except Exception as e:
        failure = services.endpoints.describe(e)
        if not isinstance(failure, EndpointError):
            raise
        logger.exception(str(failure), extra={"endpoint": failure.endpoint, "failure": failure.kind})
        if failure is e:
            raise
        raise failure from e
