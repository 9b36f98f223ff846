"""moto in server mode, one request at a time.

moto's backends are not thread-safe: two concurrent ``UpdateItem`` calls on the same item can
lose one of the updates (it copies and mutates the item without a lock), where DynamoDB applies
each atomically. The local stack runs several worker threads against one moto, so it serialises
the requests, which gives every call the atomicity AWS promises. Clients must therefore not
long-poll (``WaitTimeSeconds`` > 0): a waiting receive would hold up every other call.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class _Serialised:
    """WSGI middleware: one request inside the wrapped application at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            # moto's Flask responses are complete lists: materialise inside the lock all the same
            return list(self.app(environ, start_response))


class SerialisedMotoServer(ThreadedMotoServer):
    """A ``ThreadedMotoServer`` whose requests are applied one at a time."""

    def _server_entry(self) -> None:
        app = _Serialised(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


# ---- a Query reads one partition, and within it the key condition's range, as DynamoDB's does ---
# moto (5.2) answers a table Query by listing every item of the table, sorting them all by
# (partition key, sort key) with Python comparisons, and keeping those of the asked-for partition;
# then it walks the partition adding up each item's size (for the 1 MB page limit) *before* it tests
# the sort key condition, so every item of the partition is sized, in range or not (``Item.size``
# walks every attribute: a run's TABLE items carry their plans). Each Query cost O(n log n) in the
# whole table and O(partition) in sizes: a run of many small tables, whose partition grows with
# every table and whose workers query it for each chunk, slowed quadratically. A DynamoDB Query
# reads one partition and, in it, only the items that satisfy the key condition ("Query" in the
# DynamoDB developer guide: "finds items based on primary key values"; the 1 MB limit and the read
# capacity count "the items that match the key condition", before any filter expression). The
# patch hands moto's query those items only, in sort-key order, so the results, their order,
# pagination, filters and projections are moto's own, item for item.
_partition = threading.local()
_query_patched = False


def _partition_items(table: Any, hash_key: Any, comparison: str | None, objs: list[Any]) -> list[Any]:
    """The items of one partition of a table with a sort key that satisfy the sort key condition
    (``comparison`` over ``objs``, as moto tests it; None: every item), in sort-key order."""
    part = (table.items.get(hash_key) or {}).values()
    if comparison:
        part = [item for item in part if item.range_key is not None and item.range_key.compare(comparison, objs)]
    return sorted(part, key=lambda item: item.range_key)


def install_query_patch() -> None:
    """Once per process: a table Query (no index) lists its own partition's items in the key
    condition's range, not the table's."""
    global _query_patched
    if _query_patched:
        return
    from moto.dynamodb.models.table import Table

    signature = inspect.signature(Table.query)
    query, all_items = Table.query, Table.all_items

    def partition_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") or not self.range_key_attr or arguments.get("hash_key") is None:
            return query(self, *args, **kwargs)  # an index query reads the index: moto's own way
        condition = (arguments.get("range_comparison"), arguments.get("range_objs"))
        _partition.wanted = (self, arguments["hash_key"], *condition)
        try:
            return query(self, *args, **kwargs)
        finally:
            _partition.wanted = None

    def partition_all_items(self: Any) -> list[Any]:
        wanted = getattr(_partition, "wanted", None)
        if wanted is None or wanted[0] is not self:
            return list(all_items(self))
        _partition.wanted = None  # only the query's own list of candidates
        return _partition_items(self, wanted[1], wanted[2], list(wanted[3] or []))

    Table.query = partition_query  # type: ignore[method-assign]
    Table.all_items = partition_all_items  # type: ignore[method-assign]
    _query_patched = True


# ---- moto's own package, listed once --------------------------------------------------------
# moto (5.2) finds the backend of every request by listing its package's directory (``os.listdir``
# and an ``isdir`` for each of some 200 entries: ``moto.backends.list_of_moto_modules``), which was
# about 6 % of the local stack's CPU in a run of many small tables. The installed package does not
# change while the server runs: list it once.
_modules_listed = False


def install_module_list_cache() -> None:
    """Once per process: ``list_of_moto_modules`` answers from the first listing."""
    global _modules_listed
    if _modules_listed:
        return
    from moto import backends

    listed = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: listed
    _modules_listed = True


# ---- IAM, as AWS checks it -------------------------------------------------------------------
# moto (5.2) checks a request's action against the caller's policies when IAM enforcement is on
# (INITIAL_NO_AUTH_ACTION_COUNT), but names the resource only for SQS and S3: for DynamoDB and
# Secrets Manager it asks about "*", which a statement naming a table or a secret never matches,
# so every scoped grant would be denied. The local stack names those resources as IAM does
# (table ARN, its index ARN with IndexName; the secret's ARN), which makes moto as strict as AWS
# and no more lenient. Every decision is recorded for the least-privilege tests.
@dataclass
class IamDecision:
    access_key: str
    action: str
    resource: str
    allowed: bool


iam_decisions: list[IamDecision] | None = None  # where the active local stack collects them
_patched = False


def _dynamodb_resource(self: Any) -> str:
    params = getattr(self, "params", None) or {}
    table = params.get("TableName")
    if not table and isinstance(params.get("RequestItems"), dict) and params["RequestItems"]:
        table = next(iter(params["RequestItems"]))
    if not table:
        return "*"
    arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"
    return f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn


def _secretsmanager_resource(self: Any) -> str:
    secret_id = self._get_param("SecretId")
    if not secret_id:
        return "*"
    try:
        return str(self.backend.describe_secret(secret_id).arn)
    except Exception:  # noqa: BLE001 - an unknown secret: the action itself reports it
        return str(secret_id) if str(secret_id).startswith("arn:") else "*"


def install_iam_patches() -> None:
    """Once per process: resource-aware checks for DynamoDB and Secrets Manager, and the record."""
    global _patched
    if _patched:
        return
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequest
    from moto.secretsmanager.responses import SecretsManagerResponse

    DynamoHandler._determine_resource = _dynamodb_resource  # type: ignore[attr-defined]
    SecretsManagerResponse._determine_resource = _secretsmanager_resource  # type: ignore[attr-defined]
    checked = IAMRequest.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        key = self._get_string_between("Credential=", ",", self._headers["Authorization"]).split("/")[0]
        try:
            checked(self, resource)
        except BaseException:
            if iam_decisions is not None:
                iam_decisions.append(IamDecision(key, self._action, resource, False))
            raise
        if iam_decisions is not None:
            iam_decisions.append(IamDecision(key, self._action, resource, True))

    IAMRequest.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    _patched = True
