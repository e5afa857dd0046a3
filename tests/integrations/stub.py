"""A scripted HTTP server on 127.0.0.1 that answers the real SDKs with real bodies and streams."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: a JSON body, or an SSE stream of (event, data) pairs."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str | None, Any]] | None = None
    delay: float = 0.0


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


class StubServer:
    """Serves scripted `Reply`s in order and records each request's path, JSON body and headers.

    `requests` counts what reached the server: tests compare it with the turns the stack saw, so
    a path that bypassed the stack or a retry that doubled up shows.
    """

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[tuple[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.default: Reply | None = None  # the answer when no scripted reply is left
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                data = self.rfile.read(length)
                try:
                    body = json.loads(data or b"null")
                except ValueError:  # a multipart upload
                    body = None
                stub.requests.append((self.path, body))
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = stub.replies.popleft() if stub.replies else stub.default
                if reply is None:
                    reply = Reply(500, {"error": "none"})
                if reply.delay:
                    time.sleep(reply.delay)  # a slow server, for client timeouts
                if reply.events is not None:
                    payload = sse(reply.events)
                    ctype = "text/event-stream"
                else:
                    payload = json.dumps(reply.body).encode()
                    ctype = "application/json"
                self.send_response(reply.status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # The client may have given up already (a timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            do_GET = do_DELETE = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> str:
    """A base URL nothing listens on (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
