"""moto in server mode, one request at a time.

moto's backends are not thread-safe: two concurrent ``UpdateItem`` calls on the same item can
lose one of the updates (it copies and mutates the item without a lock), where DynamoDB applies
each atomically. The local stack runs several worker threads against one moto, so it serialises
the requests, which gives every call the atomicity AWS promises. Clients must therefore not
long-poll (``WaitTimeSeconds`` > 0): a waiting receive would hold up every other call.
"""

from __future__ import annotations

import threading
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
