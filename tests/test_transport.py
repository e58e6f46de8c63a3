"""The HTTP/1.1 transport against a scripted socket server: framing, reuse, errors.

Each test scripts the exact bytes a server sends (Content-Length, chunked, gzip, folded
headers, 1xx, close-delimited bodies, truncation, idle close) and checks what the pool
returns, which connection it used, and which error it raises.
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Iterator

import pytest

from tap_close import transport
from tap_close.transport import (
    ConnectError,
    FatalTransportError,
    Headers,
    Pool,
    ReadTimeout,
    TransportError,
)

OK = b'{"ok": true}'


class Scripted:
    """A server that answers request n with script[n] (bytes, or None: close at once)."""

    def __init__(self, script: list[bytes | None], close_after_each: bool = False) -> None:
        self.script = list(script)
        self.close_after_each = close_after_each
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while self.script:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(head)
                reply = self.script.pop(0)
                if reply is None:
                    return
                conn.sendall(reply)
                if self.close_after_each:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[type[Scripted]]:
    servers: list[Scripted] = []

    def make(*args: object, **kwargs: object) -> Scripted:
        server = Scripted(*args, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


def reply(body: bytes = OK, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, size: int = 5) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
             for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\nX-Trailer: 1\r\n\r\n"


def test_content_length_replies_reuse_one_connection(serve) -> None:
    server = serve([reply(OK, "RateLimit: limit=5"), reply(b'{"n": 2}')])
    pool = Pool(server.url, timeout=5)
    first = pool.request("GET", "/lead/?_limit=1", {"Accept": "application/json"})
    second = pool.request("GET", "/lead/", {})
    assert (first.status, first.json(), second.json()) == (200, {"ok": True}, {"n": 2})
    assert first.headers.get("ratelimit") == first.headers["RATELIMIT"] == "limit=5"
    assert "RateLimit" in first.headers
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /api/v1/lead/?_limit=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}".encode() in server.requests[0]


def test_gzip_chunked_body_with_trailer_folded_header_and_100_continue(serve) -> None:
    body = b'{"data": [1, 2, 3], "has_more": false}'
    wire = (b"HTTP/1.1 100 Continue\r\n\r\n"
            + reply(chunked(gzip.compress(body)), "Content-Encoding: gzip",
                    "Transfer-Encoding: chunked", "X-Long: part one", "  part two"))
    server = serve([wire, reply(zlib.compress(OK), "Content-Encoding: deflate"),
                    reply(zlib.compress(OK)[2:-4], "Content-Encoding: deflate")])
    pool = Pool(server.url, timeout=5)
    got = pool.request("GET", "/x/", {})
    assert got.data == body and got.headers["x-long"] == "part one part two"
    assert pool.request("GET", "/x/", {}).data == OK  # zlib-wrapped deflate
    assert pool.request("GET", "/x/", {}).data == OK  # raw deflate
    assert server.connections == 1


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK,  # body ends at close
    b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n" + OK,  # 1.0 without keep-alive
])
def test_closing_replies_are_read_and_not_reused(serve, wire: bytes) -> None:
    server = serve([wire, reply()], close_after_each=True)
    pool = Pool(server.url, timeout=5)
    assert pool.request("GET", "/a/", {}).data == OK
    assert pool.request("GET", "/b/", {}).data == OK
    assert server.connections == 2


def test_no_content_and_post_body(serve) -> None:
    server = serve([b"HTTP/1.1 204 No Content\r\n\r\n", reply()])
    pool = Pool(server.url, timeout=5)
    assert pool.request("DELETE", "/a/", {}).data == b""
    assert pool.request("POST", "/b/", {"Content-Type": "application/json"}, b"{}").status == 200
    assert b"Content-Length: 2" in server.requests[1]


@pytest.mark.parametrize(("wire", "message"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + OK, "truncated response body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"", "truncated chunked"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunked"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", "corrupt gzip"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc", "unsupported"),
    (b"SMTP ready\r\n\r\n", "malformed response status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed response header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n", "closed in the response headers"),
    (None, "closed without a response"),
])
def test_broken_replies_raise_transport_errors(serve, wire: bytes | None, message: str) -> None:
    server = serve([wire], close_after_each=True)
    with pytest.raises(TransportError, match=message):
        Pool(server.url, timeout=5).request("GET", "/x/", {})


def test_idle_connection_closed_by_the_server_is_replaced(serve, monkeypatch) -> None:
    monkeypatch.setattr(transport, "IDLE_CHECK", 0.05)
    server = serve([reply(), reply()], close_after_each=True)  # closes after each reply
    pool = Pool(server.url, timeout=5)
    pool.request("GET", "/a/", {})
    threading.Event().wait(0.1)  # the server's FIN arrives while the connection is idle
    assert pool.request("GET", "/b/", {}).data == OK
    assert server.connections == 2
    # Reused at once (not checked), a connection closed meanwhile fails: the client retries.
    monkeypatch.setattr(transport, "IDLE_CHECK", 60)
    server = serve([reply(), reply()], close_after_each=True)
    pool = Pool(server.url, timeout=5)
    pool.request("GET", "/a/", {})
    threading.Event().wait(0.1)
    with pytest.raises(TransportError):
        pool.request("GET", "/b/", {})


def test_read_timeout_connect_errors_and_bad_urls() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        pool = Pool(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(ReadTimeout):
            pool.request("GET", "/x/", {})
    finally:
        silent.close()
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(ConnectError, match="cannot connect"):
        Pool(f"http://127.0.0.1:{port}", timeout=1).request("GET", "/x/", {})
    for bad in ("ftp://example.com", "http://", "http://host:99999/"):
        with pytest.raises(FatalTransportError, match="must be http"):
            Pool(bad, timeout=1)
    with pytest.raises(FatalTransportError, match="non-Latin-1"):
        Pool("http://127.0.0.1:9", timeout=1).request("GET", "/\u2603/", {})


def test_https_pool_uses_the_default_port_and_verifies() -> None:
    pool = Pool("https://api.close.com/api/v1/", timeout=1)
    assert (pool.host_header, pool.port, pool.prefix) == ("api.close.com", 443, "/api/v1")
    assert pool.tls is not None and pool.tls.verify_mode.name == "CERT_REQUIRED"
    assert pool.tls.check_hostname


def test_headers_are_case_insensitive() -> None:
    headers = Headers({"RateLimit": "a", "Retry-After": "3"})
    assert headers.get("ratelimit") == headers["RATELIMIT"] == "a"
    assert headers.get("missing", "d") == "d" and "retry-after" in headers and 3 not in headers
