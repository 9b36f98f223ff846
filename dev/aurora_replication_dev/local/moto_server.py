"""moto in server mode, one request at a time.

moto's backends are not thread-safe: two concurrent ``UpdateItem`` calls on the same item can
lose one of the updates (it copies and mutates the item without a lock), where DynamoDB applies
each atomically. The local stack runs several worker threads against one moto, so it serialises
the requests, which gives every call the atomicity AWS promises. Clients must therefore not
long-poll (``WaitTimeSeconds`` > 0): a waiting receive would hold up every other call.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import io
import json
import socket
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
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


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open between requests as AWS endpoints do.

    Werkzeug's development server answers every request with ``Connection: close``, because
    ``http.server`` cannot skip a request body the application left unread before it reads the next
    request line. So every call of every client opened a new TCP connection, and the server started a
    new thread for it: in a run of many small tables that was about a third of moto's busy time
    (the thread per connection, the accept, the socket set-up, the response written to a socket
    about to close), and a new connection on the client's side. Here each request's body is read in
    full before the application sees it (``Content-Length``; a chunked body still closes the
    connection), so the next request line is where the stream stands, and the connection stays open
    for the client's next request (HTTP/1.1, as botocore's connection pool expects). An idle
    connection is closed after ``timeout`` seconds; the client's pool opens a new one."""

    protocol_version = "HTTP/1.1"
    timeout = 120
    # the response goes out in several small writes (status and headers, then the body); on a connection
    # that stays open, Nagle's algorithm would hold the last of them for the client's delayed ACK (40 ms)
    disable_nagle_algorithm = True
    _connection_rfile: Any = None  # the connection's stream while the request's own is read

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            self.close_connection = True
            return environ
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(length) if length > 0 else b"")
        # werkzeug discards whatever the socket holds after the response (the unread body of a
        # connection about to close); here that would be the client's next request. The body is read:
        # its discarding reads from an empty stream until the response is written
        self._connection_rfile, self.rfile = self.rfile, io.BytesIO()
        return environ

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            kept = getattr(self, "_connection_rfile", None)
            if kept is not None:
                self.rfile, self._connection_rfile = kept, None

    def setup(self) -> None:
        super().setup()
        _open_connections(self.server).add(self.connection)

    def finish(self) -> None:
        _open_connections(self.server).discard(self.connection)
        super().finish()

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
            return  # werkzeug's blanket close: the body was read in full, the connection can serve the next
        super().send_header(keyword, value)


def _open_connections(server: Any) -> set[Any]:
    """The connections a server's handlers are serving (each waits for its next request when idle)."""
    return server.__dict__.setdefault("_asr_connections", set())


class SerialisedMotoServer(ThreadedMotoServer):
    """A ``ThreadedMotoServer`` whose requests are applied one at a time, on kept-alive connections."""

    def _server_entry(self) -> None:
        app = _Serialised(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler)
        # closing the server must not wait for the threads of idle kept-alive connections: ``stop`` ends them
        self._server.block_on_close = False  # type: ignore[attr-defined]
        self._server_ready_event.set()
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving, then end every open connection's thread: its next read sees the end of the
        stream (a request being answered still gets its response written)."""
        server = self._server
        super().stop()
        for connection in list(_open_connections(server)) if server is not None else []:
            try:
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass  # closed meanwhile by its client


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


# ---- SQS: a receive costs what it reads, not what the queue holds ----------------------------
# moto (5.2) made each ReceiveMessage of one message walk the whole queue several times: it lists every
# visible message (``Queue.messages``, two clock reads per message) before taking the first, and its
# retention check of the message taken asks ``get_queue_attributes`` for ``MessageRetentionPeriod``,
# which builds the queue's whole attribute map three times over, each time counting the visible,
# in-flight and delayed messages. With a run's 300 messages queued that was about 17 ms a receive
# inside moto, which serves one request at a time (GetQueueAttributes, which the local driver polls,
# paid the same three times). Now the visible messages are produced as the receive reads them, in the
# same order and by the same test; the retention check reads the queue's retention period itself;
# ``get_queue_attributes`` builds the map once. Counting the messages
# (``ApproximateNumberOfMessages``) and waiting for one still see them all; results are moto's own.
_sqs_patched = False
_sqs_originals: dict[str, Any] = {}  # moto's own, as found before the first install (for the tests)


class _VisibleMessages:
    """A queue's visible, undelayed messages, in queue order, tested one at a time as they are read."""

    def __init__(self, messages: list[Any]) -> None:
        self._messages = messages

    def __iter__(self) -> Any:
        return (m for m in self._messages if m.visible and not m.delayed)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


@contextmanager
def _attributes_built(queue: Any, built: dict[str, Any]) -> Iterator[None]:
    """``queue.attributes`` answers ``built`` inside the block (one request: moto serves one at a time)."""
    queue.__dict__["_asr_attributes"] = built
    try:
        yield
    finally:
        queue.__dict__.pop("_asr_attributes", None)


def install_sqs_patches() -> None:
    """Once per process: a receive reads the visible messages lazily and the retention period directly,
    and a request for some of a queue's attributes builds its attribute map once."""
    global _sqs_patched
    if _sqs_patched:
        return
    from moto.core.utils import unix_time
    from moto.sqs.models import Queue, SQSBackend

    _sqs_originals.setdefault("messages", Queue.__dict__["messages"])
    _sqs_originals.setdefault("attributes", Queue.__dict__["attributes"])
    _sqs_originals.setdefault("retained", SQSBackend.__dict__["is_message_valid_based_on_retention_period"])
    _sqs_originals.setdefault("get_queue_attributes", SQSBackend.__dict__["get_queue_attributes"])
    get_queue_attributes = SQSBackend.get_queue_attributes

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > unix_time())

    def some_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        if not attribute_names or "All" in attribute_names:
            return get_queue_attributes(self, queue_name, attribute_names)
        queue = self.get_queue(queue_name)
        built = queue.attributes
        with _attributes_built(queue, built):
            return get_queue_attributes(self, queue_name, attribute_names)

    attributes = Queue.attributes.fget  # type: ignore[attr-defined]

    def attributes_once(self: Any) -> dict[str, Any]:
        built = self.__dict__.get("_asr_attributes")
        return built if built is not None else attributes(self)

    Queue.attributes = property(attributes_once)  # type: ignore[assignment,method-assign]
    Queue.messages = property(lambda self: _VisibleMessages(self._messages))  # type: ignore[assignment,method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    SQSBackend.get_queue_attributes = some_attributes  # type: ignore[method-assign]
    _sqs_patched = True


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


# the IAM action that governs each kind of action of a TransactWriteItems call
_TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _transaction_actions(body: Any) -> list[tuple[str, str]]:
    """(IAM action, table) of each action of a TransactWriteItems request body; an unreadable body: one
    check of ``TransactWriteItems`` on every table, which no grant matches (denied, as it should be)."""
    try:
        items = json.loads(body if isinstance(body, (str, bytes)) else "")["TransactItems"]
        return [(_TRANSACTION_ACTIONS[kind], str(op["TableName"])) for item in items for kind, op in item.items()]
    except (ValueError, KeyError, TypeError, AttributeError):
        return [("TransactWriteItems", "*")]


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
        if self._action == "dynamodb:TransactWriteItems":
            # AWS checks each action of the transaction as its own operation on its own table
            # ("Using IAM with DynamoDB transactions"), not an action named after the call
            for action, table in _transaction_actions(self._body):
                self._action = f"dynamodb:{action}"
                try:
                    check_action_permitted(self, f"arn:aws:dynamodb:{self._region}:{self.account_id}:table/{table}")
                finally:
                    self._action = "dynamodb:TransactWriteItems"
            return
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


# ---- UpdateItem: an UpdateExpression parsed once, its request-independent checks made once --------
# moto (5.2) spends most of an UpdateItem on the expression, not the item: it parses the
# UpdateExpression twice (``DynamoHandler.update_item`` for the placeholders it uses, then the
# backend), deep-copies the parsed tree for its validator, and the validator walks the tree ten
# times, rebuilding each walker's node-type map at every node; one of the walks
# (``ActionCountValidator``) lists the clauses below every node, quadratic in the expression's
# length. The local stack's expressions repeat exactly, with other values. The patch:
# - parses each UpdateExpression string once and hands every caller its own copy of that tree,
#   node for node what moto's parser makes of the string (the cached tree itself is never handed
#   out). A string that does not parse is parsed again each time: it raises moto's error, each time;
# - copies a tree for the validator node for node instead of with ``copy.deepcopy``, when it sees,
#   as it copies, that the two are the same thing: every node a plain AST node (attributes
#   ``type``, ``children``, ``parent`` only), its ``parent`` the node that holds it, no node twice,
#   leaves ``str``/``int`` (shared by deepcopy too). Any other tree, or value, is deep-copied;
# - runs the three checks that read only the tree, the ExpressionAttributeNames and the table's
#   key names (``ActionCountValidator``, ``OverlappingPathsValidator``,
#   ``UpdateHashRangeKeyValidator``: each raises or hands back the node it was given, unchanged)
#   once per (tree, names, key names) that has passed them: the tree is named by its full shape
#   (each node's class and every leaf), taken as it is copied, so a cached answer is for that very
#   tree. One that failed is checked again, and fails again, every time. The checks that read the
#   values or the item (placeholder values, paths, functions, arithmetic, types, empty keys) run
#   for every request, in moto's order;
# - keeps each tree walker's node-type map (a constant of the walker) instead of rebuilding it.
# The tree moto validates and executes, hence the item, ReturnValues, errors and conditions, are
# moto's own.
_update_cache_installed = False
_UPDATE_CACHE_MAX = 512
_parsed_updates: dict[str, Any] = {}  # expression -> its tree (never handed out)
_static_passed: set[tuple[Any, ...]] = set()  # (tree shape, names, key names) that passed the checks
_tree_shape: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # validator's copy -> shape
_plain_classes: dict[type, bool] = {}


class _NotPlain(Exception):
    """The tree is not one a node-for-node copy reproduces: deepcopy it."""


def _plain_class(cls: type) -> bool:
    plain = _plain_classes.get(cls)
    if plain is None:
        plain = _plain_classes[cls] = (
            cls.__module__ == "moto.dynamodb.parsing.ast_nodes"
            and getattr(cls, "__deepcopy__", None) is None
            and getattr(cls, "__setstate__", None) is None
            and cls.__reduce_ex__ is object.__reduce_ex__
            and cls.__getstate__ is object.__getstate__
            and "__slots__" not in cls.__dict__
        )
    return plain


def _copy_plain_tree(root: Any) -> tuple[Any, Any] | None:
    """A copy of an AST that is what ``copy.deepcopy`` makes of it, and the tree's shape (the
    class, ``type`` and leaves of every node, nested); None for a tree it cannot vouch for."""
    Node = _moto_module("moto.dynamodb.parsing.ast_nodes").Node

    if not isinstance(root, Node) or root.parent is not None:
        return None
    seen: set[int] = set()

    def copy_node(node: Any, parent: Any) -> tuple[Any, Any]:
        cls = type(node)
        if id(node) in seen or not _plain_class(cls) or node.__dict__.keys() != {"type", "children", "parent"}:
            raise _NotPlain
        seen.add(id(node))
        copy = object.__new__(cls)
        copy.__dict__.update(type=node.type, children=None, parent=parent)
        children = node.children
        if children is None:
            return copy, (cls, node.type, None)
        if type(children) is not list:
            raise _NotPlain
        copied, shapes = [], []
        for child in children:
            if isinstance(child, Node):
                if child.parent is not node:
                    raise _NotPlain
                child_copy, shape = copy_node(child, copy)
            elif type(child) in (str, int):
                child_copy = shape = child
            else:
                raise _NotPlain
            copied.append(child_copy)
            shapes.append(shape)
        copy.children = copied
        return copy, (cls, node.type, tuple(shapes))

    try:
        return copy_node(root, None)
    except _NotPlain:
        return None


def install_update_expression_cache() -> None:
    """Once per process: each UpdateExpression parsed once, its expression-only checks made once."""
    global _update_cache_installed
    if _update_cache_installed:
        return
    from moto.dynamodb.parsing import validators

    DepthFirstTraverser = _moto_module("moto.dynamodb.parsing.ast_nodes").DepthFirstTraverser
    UpdateExpressionParser = _moto_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser

    make = UpdateExpressionParser.make
    deepcopy = validators.deepcopy
    static_checks = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )

    def cached_make(cls: Any, expression_str: Any) -> Any:
        tree = _parsed_updates.get(expression_str) if type(expression_str) is str else None
        if tree is None:
            tree = make(expression_str)  # moto's errors, as moto raises them
            if type(expression_str) is not str or _copy_plain_tree(tree) is None:
                return tree
            if len(_parsed_updates) >= _UPDATE_CACHE_MAX:
                _parsed_updates.clear()
            _parsed_updates[expression_str] = tree  # kept: callers get copies
        copied = _copy_plain_tree(tree)
        assert copied is not None
        return copied[0]

    def copying(value: Any, *args: Any) -> Any:
        copied = None if args else _copy_plain_tree(value)
        if copied is None:
            return deepcopy(value, *args)
        _tree_shape[copied[0]] = copied[1]
        return copied[0]

    def validate(self: Any) -> Any:
        processors, names, node = self.processors, self.expression_attribute_names, self.node_to_validate
        shape = _tree_shape.get(node)
        key = None
        if shape is not None and tuple(type(p) for p in processors[: len(static_checks)]) == static_checks:
            try:
                names_key = None if names is None else tuple(sorted(names.items()))
                key = (shape, names_key, tuple(self.table.table_key_attrs))
                hash(key)
            except (AttributeError, TypeError):
                key = None
        if key is not None:
            if key not in _static_passed:
                for processor in processors[: len(static_checks)]:
                    node = processor.traverse(node)
                if len(_static_passed) >= _UPDATE_CACHE_MAX:
                    _static_passed.clear()
                _static_passed.add(key)
            processors = processors[len(static_checks) :]
        for processor in processors:
            node = processor.traverse(node)
        return node

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        return _walker_map(self)[0]

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in _walker_map(self)[1]:
            if isinstance(node, class_key):
                return processor(node)
        return None

    UpdateExpressionParser.make = classmethod(cached_make)
    validators.deepcopy = copying  # type: ignore[assignment]
    validators.Validator.validate = validate  # type: ignore[method-assign]
    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed
    DepthFirstTraverser.process = process
    _update_cache_installed = True


def _moto_module(name: str) -> Any:
    """A moto module its own type hints leave untyped (``# type: ignore`` modules)."""
    return importlib.import_module(name)


def _walker_map(walker: Any) -> tuple[tuple[type, ...], list[tuple[type, Any]]]:
    """A tree walker's node-type map, as its ``_processing_map`` gives it, built once per walker."""
    cached = walker.__dict__.get("_aurora_walker_map")
    if cached is None:
        mapping = walker._processing_map()
        cached = walker.__dict__["_aurora_walker_map"] = (tuple(mapping), list(mapping.items()))
    return cached


# ---- TransactWriteItems: a rollback of the items it touched, not a copy of the table ----------------
# moto (5.2) makes a transaction all-or-nothing by deep-copying every table it names before it starts
# and putting the copy back if any action fails: its cost grows with the table (about 0.35 s a
# transaction on a table of 5,000 run items here), and the run ledger counts each finished table in
# one. The patch keeps moto's transaction as it is, item for item (conditions, order, cancellation
# reasons), and gives it a cheaper way back: a copy of each item the transaction names, taken before,
# put back (or the item removed again) when it is cancelled. A table with a stream keeps moto's way.
_transaction = threading.local()
_transaction_patched = False


def install_transaction_patch() -> None:
    """Once per process: a cancelled TransactWriteItems restores the items it named, not whole tables."""
    global _transaction_patched
    if _transaction_patched:
        return
    models = _moto_module("moto.dynamodb.models")
    Table = _moto_module("moto.dynamodb.models.table").Table
    original = models.DynamoDBBackend.transact_write_items

    class _TablesKept:
        """Stands in for the ``copy`` module inside moto's transaction: a table is not copied while a
        transaction whose items are saved runs (the rollback below restores them); all else is copied."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if getattr(_transaction, "items_saved", False) and isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    def saved_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]] | None:
        saved = []
        for entry in transact_items:
            for kind, op in entry.items():
                table = backend.tables.get(op.get("TableName"))
                if table is None or table.stream_shard is not None:
                    return None
                if kind == "Put":
                    attrs = op.get("Item") or {}
                    names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
                    if any(n not in attrs for n in names):
                        return None
                    key = {n: attrs[n] for n in names}
                else:
                    key = op.get("Key") or {}
                try:
                    hash_key, range_key = backend.get_keys_value(table, key)
                except Exception:  # noqa: BLE001 - a malformed key: moto's own way reports it
                    return None
                saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        return saved

    def restore(saved: list[tuple[Any, Any, Any, Any]]) -> None:
        for table, hash_key, range_key, item in reversed(saved):
            if table.has_range_key:
                if item is None:
                    table.items[hash_key].pop(range_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved = saved_items(self, transact_items)
        if saved is None:
            return original(self, transact_items)
        _transaction.items_saved = True
        try:
            return original(self, transact_items)
        except BaseException:
            restore(saved)
            raise
        finally:
            _transaction.items_saved = False

    models.copy = _TablesKept
    models.DynamoDBBackend.transact_write_items = transact_write_items
    _transaction_patched = True
