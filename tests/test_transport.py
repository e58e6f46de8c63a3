"""HTTP through `requests` against a scripted socket server: framing, reuse, errors, safety.

Each test scripts the exact bytes a server sends (Content-Length, chunked, gzip, 1xx,
close-delimited bodies, truncation, stray bytes, redirects, huge lengths) and checks what the
client returns, which connection it used, what it sent, and which error it raises.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tap_close import client as client_module
from tap_close.auth import AuthError, api_key_auth, exchange
from tap_close.client import CloseClient, id_path
from tap_close.errors import CloseAPIError, ReadTimeout, TransportError

OK = b'{"ok": true}'


class Scripted:
    """A server that answers request n with script[n] (bytes, or None: close at once, b"RST":
    reset); a tuple (bytes, seconds, more) sends `more` that many seconds after the reply."""

    def __init__(self, script: list, close_after_each: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.script = list(script)
        self.close_after_each = close_after_each
        self.connections = 0
        self.requests: list[bytes] = []
        self.sent_late = threading.Event()
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
            if self.tls:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:  # the client refused the certificate
                    conn.close()
                    continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while self.script:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                reply = self.script.pop(0)
                if reply is None:
                    return
                if reply == b"RST":  # drop the connection with a reset, no reply
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                later = b""
                if isinstance(reply, tuple):
                    reply, delay, later = reply
                try:
                    conn.sendall(reply)
                    if later:
                        time.sleep(delay)
                        conn.sendall(later)
                        self.sent_late.set()
                except OSError:
                    return
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


def make_client(url: str, timeout: float = 5, tries: int = 2) -> CloseClient:
    return CloseClient(url, api_key_auth("api_transport_key"), timeout=timeout, max_tries=tries)


def test_content_length_replies_reuse_one_connection(serve) -> None:
    server = serve([reply(OK, "RateLimit: limit=5"), reply(b'{"n": 2}')])
    client = make_client(server.url)
    first, _ = client.send("GET", client.url("/lead/", {"_limit": 1}))
    assert (first.status, first.json()) == (200, {"ok": True})
    assert first.headers.get("ratelimit") == first.headers["RATELIMIT"] == "limit=5"
    assert client.get("/lead/") == {"n": 2}
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /api/v1/lead/?_limit=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}".encode() in server.requests[0]
    assert b"Authorization: Basic " in server.requests[0]


def test_gzip_chunked_body_with_trailer_and_100_continue(serve) -> None:
    body = b'{"data": [1, 2, 3], "has_more": false}'
    wire = (b"HTTP/1.1 100 Continue\r\n\r\n"
            + reply(chunked(gzip.compress(body)), "Content-Encoding: gzip",
                    "Transfer-Encoding: chunked"))
    server = serve([wire, reply(zlib.compress(OK), "Content-Encoding: deflate"),
                    reply(zlib.compress(OK)[2:-4], "Content-Encoding: deflate")])
    client = make_client(server.url)
    assert client.send("GET", client.url("/x/"))[0].data == body
    assert client.get("/x/") == {"ok": True}  # zlib-wrapped deflate
    assert client.get("/x/") == {"ok": True}  # raw deflate
    assert server.connections == 1


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK,  # body ends at close
    b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n" + OK,  # 1.0 without keep-alive
])
def test_closing_replies_are_read_and_not_reused(serve, wire: bytes) -> None:
    server = serve([wire, reply()], close_after_each=True)
    client = make_client(server.url)
    assert client.get("/a/") == {"ok": True}
    assert client.get("/b/") == {"ok": True}
    assert server.connections == 2


def test_post_body_is_json(serve) -> None:
    server = serve([reply()])
    assert make_client(server.url).post("/export/lead/", {"format": "json"}) == {"ok": True}
    assert server.requests[0].startswith(b"POST /api/v1/export/lead/ HTTP/1.1")
    assert server.requests[0].endswith(b'\r\n\r\n{"format":"json"}')
    assert b"Content-Type: application/json" in server.requests[0]


TRUNCATED, CORRUPT, FAILED = ("truncated or malformed body", "corrupt compressed body",
                              "connection failed (ConnectionError)")


@pytest.mark.parametrize(("wire", "message"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + OK, TRUNCATED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"", TRUNCATED),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", TRUNCATED),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", CORRUPT),
    (b"SMTP ready\r\n\r\n", FAILED),  # not HTTP
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n", TRUNCATED),  # closed in the headers
    (None, FAILED),  # closed without a reply
    (b"RST", FAILED),  # reset without a reply
])
def test_broken_replies_are_transient_errors(serve, wire: bytes | None, message: str) -> None:
    server = serve([wire], close_after_each=True)
    client = make_client(server.url)
    with pytest.raises(TransportError) as err:
        client.send("GET", client.url("/x/"))
    assert str(err.value) == message and not isinstance(err.value, ReadTimeout)


def test_broken_reply_is_retried_then_the_good_one_returned(serve) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + OK, reply(b'{"n": 2}')],
                   close_after_each=True)
    assert make_client(server.url, tries=3).get("/x/") == {"n": 2}
    assert server.connections == 2


def test_idle_connection_closed_by_the_server_is_replaced(serve) -> None:
    server = serve([reply(), reply(b'{"n": 2}')], close_after_each=True)
    client = make_client(server.url, tries=1)
    assert client.get("/a/") == {"ok": True}
    threading.Event().wait(0.1)  # the server's FIN arrives while the connection is idle
    assert client.get("/b/") == {"n": 2}
    assert server.connections == 2


@pytest.mark.parametrize("first", [
    reply(OK + b'{"stray": "bytes"}', "Content-Length: 12"),  # body longer than its length
    b"HTTP/1.1 204 No Content\r\n\r\n" + b'{"stray": "bytes"}',  # a 204 with a body
    (reply(OK), 0.05, b'{"stray": "late"}'),  # stray bytes arriving while idle
    (reply(OK), 0.05, reply(b'{"wrong": "page"}')),  # a whole unrequested reply
])
def test_stray_bytes_never_reach_the_next_request(serve, first) -> None:
    """Stray bytes after a reply (a body longer than Content-Length, a 204 with a body, a
    late extra reply) are never read as the next request's reply."""
    server = serve([first, reply(b'{"n": 2}'), reply(b'{"n": 3}')])
    client = make_client(server.url, tries=3)
    got, _ = client.send("GET", client.url("/a/"))
    assert got.data in (OK, b"")
    if isinstance(first, tuple):
        assert server.sent_late.wait(5)
    threading.Event().wait(0.05)
    assert client.get("/b/") == {"n": 2}
    if isinstance(first, tuple):  # bytes on an idle connection: it is dropped, not reused
        assert server.connections == 2


def test_read_timeout_and_connect_errors() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    try:
        client = make_client(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(ReadTimeout, match=r"no reply within 0\.3s"):
            client.send("GET", client.url("/x/"))
        with pytest.raises(CloseAPIError, match="timed out; not retried"):
            client.post("/export/lead/", {})  # a POST may have been done: never resent
    finally:
        silent.close()
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    client = make_client(f"http://127.0.0.1:{port}")
    with pytest.raises(TransportError, match="connection refused"):
        client.send("GET", client.url("/x/"))
    with pytest.raises(CloseAPIError,
                       match=r"failed after 2 tries \(last error: connection refused"):
        client.get("/x/")
    assert client.session.adapters["http://"]._pool_maxsize == 2  # type: ignore[attr-defined]
    assert client._send_options["timeout"] == (client_module.CONNECT_TIMEOUT, 5)


def test_https_is_verified_and_tls_failures_are_fatal() -> None:
    plain = socket.create_server(("127.0.0.1", 0))  # answers a TLS hello with plain HTTP

    def answer() -> None:
        conn, _ = plain.accept()
        with conn:
            conn.sendall(reply())
            conn.recv(1024)

    threading.Thread(target=answer, daemon=True).start()
    client = make_client(f"https://127.0.0.1:{plain.getsockname()[1]}/api/v1")
    assert client._send_options["verify"] not in (False, None)  # True, or REQUESTS_CA_BUNDLE
    with pytest.raises(CloseAPIError, match=r"^GET /x/ failed: TLS failed: handshake error$"):
        client.get("/x/")  # at once: not retried
    plain.close()


def test_redirect_is_a_clear_error_and_credentials_stay(serve) -> None:
    target = serve([reply(), reply()])
    api = serve([reply(b'{"data": [], "has_more": false}', "Location: "
                       f"http://evil.example:{target.port}/steal", status="302 Found")])
    with pytest.raises(CloseAPIError, match=r"HTTP 302 \(a redirect to evil.example\).*api_url"):
        make_client(api.url).get("/lead/")
    assert len(api.requests) == 1 and target.connections == 0


def test_token_post_does_not_follow_a_307(serve) -> None:
    target = serve([reply(b'{"access_token": "stolen"}')])
    token = serve([reply(b"", f"Location: http://127.0.0.1:{target.port}/token/",
                         status="307 Temporary Redirect")])
    form = {"client_id": "c", "client_secret": "s3cret", "refresh_token": "r3fresh",
            "grant_type": "refresh_token"}
    with pytest.raises(AuthError, match=r"307 .*redirect.*oauth_token_url") as err:
        exchange(requests.Session(), f"http://127.0.0.1:{token.port}/token/", form)
    assert "s3cret" not in str(err.value) and "r3fresh" not in str(err.value)
    assert target.connections == 0 and len(token.requests) == 1


def test_huge_content_length_is_a_clean_error(serve, monkeypatch) -> None:
    server = serve([reply(b"{}", "Content-Length: 1000000000000000")])
    with pytest.raises(CloseAPIError, match="1,000,000,000,000,000 bytes is over the 64 MiB cap"):
        make_client(server.url).get("/lead/")
    monkeypatch.setattr(client_module, "MAX_BODY", 1 << 20)  # no length: capped while read
    big = b'{"data": "' + b"x" * (2 << 20) + b'"}'
    server = serve([reply(chunked(big, 65536), "Transfer-Encoding: chunked")])
    with pytest.raises(CloseAPIError, match="over the 1 MiB cap"):
        make_client(server.url).get("/lead/")


def test_ids_are_quoted_into_paths(serve) -> None:
    server = serve([reply(), reply()])
    client = make_client(server.url)
    evil = "lead_1\r\nX-Injected: yes/../../admin?_fields=x"
    client.get(id_path("/lead/", evil), {"_fields": "id\r\nX-Also: no"})
    line, *headers = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert line == (b"GET /api/v1/lead/lead_1%0D%0AX-Injected%3A%20yes%2F%2E%2E%2F%2E%2E%2Fadmin"
                    b"%3F_fields%3Dx/?_fields=id%0D%0AX-Also%3A+no HTTP/1.1")
    assert not any(h.lower().startswith((b"x-injected", b"x-also")) for h in headers)
    client.get("/lead/raw\r\nX-Injected: 1/")  # even unquoted, requests quotes it
    line, *headers = server.requests[1].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert line == b"GET /api/v1/lead/raw%0D%0AX-Injected:%201/ HTTP/1.1"
    assert not any(h.lower().startswith(b"x-injected") for h in headers)


def test_url_refusal_switches_to_the_override_form_retried_as_a_read(serve) -> None:
    too_long = reply(b'{"error": "Bad Request: request line too long"}', status="400 Bad")
    server = serve([too_long, reply(b"{}", status="500 Oops"), reply(OK)])
    client = make_client(server.url, tries=3)
    params = {"_fields": "id,custom.cf_x", "_limit": 5, "skip": None}
    assert client.get("/lead/", params) == {"ok": True}
    assert server.requests[0].startswith(b"GET /api/v1/lead/?_fields=id%2Ccustom.cf_x&_limit=5 ")
    for sent in server.requests[1:]:  # the 500 is retried, as for a GET
        assert sent.startswith(b"POST /api/v1/lead/ HTTP/1.1\r\n")
        assert b"\r\nX-HTTP-Method-Override: GET\r\n" in sent
        assert sent.endswith(b'\r\n\r\n{"_params":{"_fields":"id,custom.cf_x","_limit":5}}')
    assert client.limiter.budgets() == {"GET /lead/": "GET /lead/*"}  # counted as a GET
    assert client.url_limit == len(client.url("/lead/", params)) - 1
    # a shorter URL still goes as a GET; a longer one goes as the override at once
    server.script += [reply(OK), reply(OK)]
    client.get("/lead/", {"_limit": 5})
    client.get("/lead/", {**params, "_fields": "id,custom.cf_xy"})
    assert server.requests[3].startswith(b"GET ") and server.requests[4].startswith(b"POST ")


def test_other_400s_stay_fatal_and_long_urls_go_as_override_at_once(serve) -> None:
    server = serve([reply(b'{"error": "invalid _fields"}', status="400 Bad"), reply(OK)])
    client = make_client(server.url)
    with pytest.raises(CloseAPIError, match="400 for /lead/: invalid _fields"):
        client.get("/lead/", {"_fields": "nope"})
    assert len(server.requests) == 1
    long_fields = ",".join(f"custom.cf_{i:040d}" for i in range(40))
    assert client.get("/lead/", {"_fields": long_fields}) == {"ok": True}
    assert server.requests[1].startswith(b"POST /api/v1/lead/ ")


def test_ca_bundle_from_the_environment(serve, monkeypatch, tmp_path: Path) -> None:
    """A private CA (a TLS-intercepting proxy's, say) through REQUESTS_CA_BUNDLE; without it,
    the certificate is refused: one clear fatal error, not retried."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = serve([reply(), reply()], tls=tls)
    url = f"https://127.0.0.1:{server.port}/api/v1"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    assert make_client(url).get("/lead/") == {"ok": True}
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(CloseAPIError, match="failed: TLS failed: certificate verify failed"):
        make_client(url).get("/lead/")
    assert len(server.requests) == 1 and server.connections == 2
