"""A loopback HTTP proxy that breaks requests on purpose, in front of the tests' Hub server.

``FaultProxy(target).start()`` listens on 127.0.0.1 and forwards every request to ``target``
(tests/hub_server.py), unless a rule added with ``inject(fault, method=, path=, times=)`` matches
it. Faults:

* ``"500"``: answer HTTP 500 without forwarding;
* ``"reset"``: cut the connection (TCP reset) without answering;
* ``"stall"``: answer nothing for ``stall_seconds`` (longer than the client's timeout), then close;
* ``"short"``: forward, then send the headers (with the full Content-Length) and half the body;
* ``"wrong"``: forward, then send the body with bytes flipped (same length, same headers);
* ``"slow"``: forward, then send the body in small pieces over ``slow_seconds`` (to make two
  clients overlap).

A rule applies to its next ``times`` matching requests, then the proxy forwards again: "the
next call recovers". Every wait is bounded, and ``stop()`` ends any stall at once. Standard
library only; for tests only.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import urlsplit

from zoo_core.testing.hub_server import read_body

FAULTS = ("500", "reset", "stall", "short", "wrong", "slow")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}


@dataclass
class Rule:
    fault: str
    method: Optional[str]
    path: Optional[re.Pattern]
    times: int
    used: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.used < self.times
            and (self.method is None or self.method == method)
            and (self.path is None or bool(self.path.search(path)))
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    @property
    def proxy(self) -> "FaultProxy":
        return self.server.proxy  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        return read_body(self)

    def _handle(self, method: str) -> None:
        body = self._body()
        rule = self.proxy._take(method, urlsplit(self.path).path)
        fault = rule.fault if rule else None
        if fault == "500":
            payload = b'{"error": "injected fault: internal server error"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if fault == "reset":
            return self._reset()
        if fault == "stall":
            self.proxy._stop.wait(self.proxy.stall_seconds)
            return self._reset()
        status, reason, headers, content, length = self._forward(method, body)
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", length)  # a HEAD answer has none of its body but says its length
        self.end_headers()
        if method == "HEAD" or not content:
            return
        if fault == "short":
            self.wfile.write(content[: len(content) // 2])
            self.wfile.flush()
            return self._reset()
        if fault == "wrong":
            content = bytes(b ^ 0x5A for b in content[:32]) + content[32:]
        if fault == "slow":
            pieces = 20
            step = max(1, len(content) // pieces)
            for start in range(0, len(content), step):
                self.wfile.write(content[start : start + step])
                self.wfile.flush()
                if self.proxy._stop.wait(self.proxy.slow_seconds / pieces):
                    break
            return
        self.wfile.write(content)

    def _forward(self, method: str, body: bytes):
        target = urlsplit(self.proxy.target)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            connection.request(method, self.path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            length = response.getheader("Content-Length") if method == "HEAD" else None
            return response.status, response.reason, kept, content, length or str(len(content))
        finally:
            connection.close()

    def _reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), so the client sees a cut connection, not a clean end."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True
        self.wfile = _Discard()

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")


class _Discard:
    closed = True

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


class FaultProxy:
    """The proxy on 127.0.0.1 (a free port). ``url`` is what HF_ENDPOINT should be set to."""

    def __init__(self, target: str, *, stall_seconds: float = 4.0, slow_seconds: float = 1.0):
        self.target = target
        self.stall_seconds = stall_seconds
        self.slow_seconds = slow_seconds
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, Optional[str]]] = []  # (method, path, fault or None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "FaultProxy":
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.proxy = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._stop.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # ends stalls and slow bodies now
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def inject(self, fault: str, *, method: Optional[str] = None, path: Optional[str] = None, times: int = 1) -> Rule:
        """Break the next ``times`` requests matching ``method`` and the regex ``path`` with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        rule = Rule(fault, method, re.compile(path) if path else None, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def faults_served(self, fault: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for _, _, f in self.log if f is not None and (fault is None or f == fault))

    def _take(self, method: str, path: str) -> Optional[Rule]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.used += 1
                    self.log.append((method, path, rule.fault))
                    return rule
            self.log.append((method, path, None))
            return None
