"""The simulator's socket: a threading HTTP server on 127.0.0.1 and its thread.

``LoopbackServer`` starts and stops the socket and its thread, closes idle
keep-alive connections on stop and hands each request to the ``Dispatcher``; every
answer is dated by the simulated clock. It binds to loopback only, never writes to
stderr unless ``verbose`` is set, and must not import ``reconciler.api`` or
``reconciler.model``.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.simulator.cloud import SimulatedCloud
from reconciler.simulator.faults import Faults
from reconciler.simulator.server import Dispatcher, Settings


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    loopback: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up mid-answer on purpose (timeouts, kills); stay quiet.
        if self.loopback.settings.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer's status line, headers and body are buffered and go out in one write
    # when the request is done (``handle_one_request`` flushes): one segment, so the
    # client wakes up once per answer. Nagle stays off for anything written unbuffered.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.loopback.connection_opened(self.connection)

    def finish(self) -> None:
        self.server.loopback.connection_closed(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.loopback.settings.verbose:
            sys.stderr.write(f"simulator: {format % args}\n")

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date of every answer: the simulated clock, so a client can measure skew.
        if timestamp is None:
            timestamp = self.server.loopback.cloud.clock.now().timestamp()
        return email.utils.formatdate(timestamp, usegmt=True)

    def do_GET(self) -> None:
        self.server.loopback.dispatcher.handle(self)

    def do_POST(self) -> None:
        self.server.loopback.dispatcher.handle(self)

    def do_PUT(self) -> None:
        self.server.loopback.dispatcher.handle(self)

    def do_DELETE(self) -> None:
        self.server.loopback.dispatcher.handle(self)


class LoopbackServer:
    """The listening socket on 127.0.0.1 and the thread serving it."""

    def __init__(self, settings: Settings, cloud: SimulatedCloud, faults: Faults) -> None:
        self.settings = settings
        self.cloud = cloud
        #: Set while stopping, so that waits for latency, delays and holds end at once.
        self.stopping = threading.Event()
        self.dispatcher = Dispatcher(settings, cloud, faults, self.stopping)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def start(self, port: int) -> int:
        """Listen on 127.0.0.1:``port`` (0: any free port) unless already; returns the port."""
        with self._lock:
            if self._server is not None:
                return self._server.server_port
            server = _Server(("127.0.0.1", port), _Handler)
            server.loopback = self
            self.stopping.clear()
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # how soon stop() is noticed
                name=f"crayon-simulator-{server.server_port}",
                daemon=True,
            )
            self._thread.start()
            return server.server_port

    def stop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            connections = list(self._connections)
            self._connections.clear()
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    @property
    def open_connections(self) -> int:
        """Connections being served; a request still in a handler keeps its connection."""
        with self._lock:
            return len(self._connections)
