"""A hostile Crayon API on 127.0.0.1: a real socket that answers what a test tells it to.

``HostileApi(answer)`` serves a token to ``POST /api/v1/connect/token`` and, to every
other request, whatever ``answer(method, path, query)`` returns: ``(status, bytes)``.
The answers it is built for are those the simulator will not give: paging that
never ends, JSON nested ten thousand levels deep, numbers of thousands of digits.

``python tests/support/hostile_api.py endless-bare|endless-envelope|endless-single``
reads subscriptions from a server whose paging never ends and prints the outcome, the
seconds it took and the process's peak memory as JSON (a test runs it in a fresh
process to measure both).
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = Callable[[str, str, dict[str, str]], tuple[int, bytes]]
TOKEN = json.dumps({"AccessToken": "hostile-token", "ExpiresIn": 3600}).encode()


class HostileApi:
    """Serve ``answer`` on 127.0.0.1 until ``stop``; ``url`` is the base URL."""

    def __init__(self, answer: Answer) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, no Nagle: the client, not the socket, sets the pace.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                parts = urlsplit(self.path)
                if parts.path.rstrip("/").endswith("/connect/token"):
                    status, body = 200, TOKEN
                else:
                    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                    status, body = outer.answer(self.command, parts.path, query)
                outer.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _serve

        self.answer = answer
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {
            "CRAYON_API_URL": self.url,
            "CRAYON_CLIENT_ID": "hostile-client",
            "CRAYON_CLIENT_SECRET": "hostile-secret",
            "CRAYON_USERNAME": "hostile-user",
            "CRAYON_PASSWORD": "hostile-password",
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def subscription(number: int) -> dict[str, Any]:
    """A plausible subscription item, different for every number."""
    return {
        "Id": number,
        "CustomerTenant": {"Id": 111111},
        "Product": {"Id": 77, "PartNumber": "CFQ7TTC0LF8R:0010", "ItemName": "Basic"},
        "PartNumber": "CFQ7TTC0LF8R:0010",
        "Name": f"Microsoft 365 Business Basic {number}",
        "Quantity": number % 300 + 1,
        "Status": 1,
        "BillingCycle": 1,
        "TermDuration": "P1M",
        "OrderId": str(number),
        "CreationDate": "2025-08-04T09:17:18.193Z",
        "StartDate": "2025-08-04T09:17:18.193Z",
        "EndDate": "2025-09-04T09:17:18.193Z",
        "AutoRenewEnabled": True,
    }


def endless(envelope: bool, size: int | None = None) -> Answer:
    """Paging that never ends: every page full of new subscriptions (``size`` of them,
    or as many as asked for)."""

    def answer(method: str, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        page = int(query.get("page", "1"))
        size_ = size or int(query.get("pageSize", "100"))
        items = [subscription(page * size_ + i) for i in range(size_)]
        if envelope:
            return 200, json.dumps({"Items": items, "TotalHits": 10**12}).encode()
        return 200, json.dumps(items).encode()

    return answer


def _measure(mode: str) -> dict[str, Any]:
    # Imported here: the module itself must not import the client (the simulator-like
    # server above is all a test in this process needs).
    from reconciler.api import ApiSettings
    from reconciler.api.client import CrayonClient
    from reconciler.errors import ApiError

    server = HostileApi(
        endless(envelope=mode == "endless-envelope", size=1 if mode == "endless-single" else None)
    )
    started = time.monotonic()
    outcome = "read"
    try:
        with CrayonClient(ApiSettings.from_env(server.env())) as client:
            client.read_subscriptions(111111)
    except ApiError as error:
        outcome = str(error)
    finally:
        server.stop()
    return {
        "outcome": outcome,
        "seconds": time.monotonic() - started,
        "peak_mb": _peak_mb(),
        "requests": server.requests,
    }


def _peak_mb() -> float:
    """This process's peak resident memory. Linux's ``VmHWM`` is this program's own;
    ``ru_maxrss`` survives ``exec`` and so may be the forking parent's (a test worker
    of hundreds of megabytes), and is the fallback elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    print(json.dumps(_measure(sys.argv[1])))
