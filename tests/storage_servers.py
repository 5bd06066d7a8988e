"""Servers the object-storage tests start on 127.0.0.1: moto's S3 server, a fault-injecting proxy
in front of it, and a static file server with HTTP Range support (and the same faults)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3-compatible server in a thread; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Faults:
    """Per-key fault plans: ``plan(substring, ["503", "reset", "truncate", ...])`` makes the next
    GETs of a key containing ``substring`` fail in that order; ``always(substring, kind)`` makes
    every GET fail. Counts every GET per key in ``gets``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, list[str]] = {}
        self._always: dict[str, str] = {}
        self.gets: dict[str, int] = {}
        self.injected: list[tuple[str, str]] = []

    def plan(self, substring: str, kinds: list[str]) -> None:
        with self._lock:
            self._plans[substring] = list(kinds)

    def always(self, substring: str, kind: str) -> None:
        with self._lock:
            self._always[substring] = kind

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._always.clear()
            self.gets.clear()
            self.injected.clear()

    def next_fault(self, path: str) -> str | None:
        with self._lock:
            self.gets[path] = self.gets.get(path, 0) + 1
            for sub, kind in self._always.items():
                if sub in path:
                    self.injected.append((path, kind))
                    return kind
            for sub, kinds in self._plans.items():
                if sub in path and kinds:
                    kind = kinds.pop(0)
                    self.injected.append((path, kind))
                    return kind
        return None


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    faults: Faults

    def log_message(self, *args) -> None:  # quiet
        pass

    def _fault(self, kind: str) -> bool:
        """Apply a fault that needs no upstream response; True when the request is answered."""
        if kind == "503":
            self.send_response(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            self.wfile.write(SLOW_DOWN)
            return True
        if kind == "reset":
            # RST instead of FIN: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        return False

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, truncate: bool) -> None:
        self.send_response(status)
        length = str(len(body))
        for k, v in headers:
            if k.lower() == "content-length" and self.command == "HEAD":
                length = v  # a HEAD answer carries the object's length, not its (empty) body's
            elif k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate and len(body) > 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


class _ProxyHandler(_FaultHandler):
    upstream: str

    def _forward(self) -> None:
        kind = self.faults.next_fault(self.path) if self.command == "GET" else None
        if kind and self._fault(kind):
            return
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        u = urlparse(self.upstream)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        self._send(r.status, r.getheaders(), data, truncate=kind == "truncate")

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class _RangeHandler(_FaultHandler):
    root: str

    def _serve(self) -> None:
        kind = self.faults.next_fault(self.path) if self.command == "GET" else None
        if kind and self._fault(kind):
            return
        path = os.path.join(self.root, self.path.lstrip("/").split("?")[0])
        if not os.path.isfile(path):
            self._send(404, [], b"not found", False)
            return
        data = open(path, "rb").read()
        if self.command == "HEAD":
            self._send(200, [("Accept-Ranges", "bytes"), ("Content-Length", str(len(data)))], b"", False)
            return
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self._send(416, [("Content-Range", f"bytes */{len(data)}")], b"", False)
                return
            hdr = [("Content-Range", f"bytes {start}-{end}/{len(data)}"), ("Accept-Ranges", "bytes")]
            self._send(206, hdr, data[start : end + 1], truncate=kind == "truncate")
        else:
            self._send(200, [("Accept-Ranges", "bytes")], data, truncate=kind == "truncate")

    do_GET = do_HEAD = _serve


@contextlib.contextmanager
def _serve(handler_cls: type, **attrs) -> Iterator[str]:
    cls = type(handler_cls.__name__, (handler_cls,), attrs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), cls)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fault_proxy(upstream: str, faults: Faults):
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (an S3 endpoint) applying ``faults``."""
    return _serve(_ProxyHandler, upstream=upstream, faults=faults)


def range_server(root: str, faults: Faults | None = None):
    """A static file server for ``root`` that honours ``Range: bytes=a-b`` (206 Partial Content)."""
    return _serve(_RangeHandler, root=root, faults=faults or Faults())
