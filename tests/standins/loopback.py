"""What the HTTP stand-ins share: a threaded loopback server that runs in-process or as a process."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], state: Any, identity: str = "") -> None:
        super().__init__(("127.0.0.1", port), handler)
        self.state = state
        self.identity = identity  # who calls through this server: a door (StandIn.door); "" for the main one

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, crash test) is expected here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class StandIn:
    """``with Sub(...) as server: server.url``; subclasses set ``handler`` and build ``state``."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self, state: Any, port: int = 0) -> None:
        self.state = state
        self._server = Server(port, self.handler, state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._doors: dict[str, Server] = {}

    def door(self, identity: str) -> str:
        """The URL through which ``identity`` calls this stand-in (same state): each function process gets the door
        of the service account it runs as, as an instance gets its identity from its metadata server
        (tests/standins/iam.py)."""
        if identity not in self._doors:
            server = Server(0, self.handler, self.state, identity)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._doors[identity] = server
        return f"http://127.0.0.1:{self._doors[identity].server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        for server in [self._server, *self._doors.values()]:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self, banner: str) -> None:
        """Run as a process: print ``banner`` (tests wait for it), serve until Ctrl-C or SIGTERM."""
        self.start()
        print(banner, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            self.stop()
