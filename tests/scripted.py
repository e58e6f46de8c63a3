"""A scripted HTTP server on 127.0.0.1: every request goes to `reply(method, path, headers,
body)`, which returns (status, headers, body) or None to hang up without an answer."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes] | None
Script = Callable[[str, str, dict[str, str], bytes], Answer]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        self.server.seen.append((self.command, self.path, headers))
        answer = self.server.script(self.command, self.path, headers, body)
        if answer is None:
            self.close_connection = True
            return
        status, reply_headers, data = answer
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        if "Content-Length" not in reply_headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def scripted(script: Script) -> Iterator[ScriptedServer]:
    server = ScriptedServer(script)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


#: Headers a forwarding front never passes on (hop-by-hop, or set again by http.client).
HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


def forward(port: int, method: str, path: str, headers: dict, body: bytes, *,
            hop: frozenset[str] | set[str] = HOP) -> tuple[int, dict[str, str], bytes]:
    """Pass one request on to 127.0.0.1:`port`; its status, headers (less `hop`) and body."""
    upstream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        upstream.request(method, path, body or None,
                         {k: v for k, v in headers.items() if k.lower() not in hop})
        reply = upstream.getresponse()
        data = reply.read()
        return reply.status, {k: v for k, v in reply.getheaders() if k.lower() not in hop}, data
    finally:
        upstream.close()
