"""HTTP layer: request processing (auth, faults, rate limits, latency) and the threaded server."""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import control
from .api import Api, ApiError
from .faults import FaultPlan, RateLimiter, ratelimit_header, retry_after
from .oauth import OAuthError, TokenStore

API_PREFIX = "/api/v1"
DEFAULT_RATELIMIT = "limit=1000, remaining=999, reset=1.0"
CHUNK = 4096  # bytes per chunk of a chunked reply


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: str | None = None  # None | "reset" | "truncate"


def json_reply(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, json.dumps(obj).encode(), headers or [])


class Engine:
    """Turns one parsed request into a Reply; holds stats and the request log."""

    def __init__(
        self,
        api: Api,
        oauth: TokenStore,
        faults: FaultPlan,
        limiter: RateLimiter | None,
        *,
        api_key: str,
        latency: float = 0.0,
        slow_seconds: float = 3.0,
        max_url_bytes: int | None = None,
        url_limit_status: int = 414,
        method_override: bool = True,
    ) -> None:
        self.api = api
        self.method_override = method_override  # False: the override header is ignored
        # A front end's URL limit (Close states ~2,000 characters; the real one is unknown):
        # a longer URL gets `url_limit_status` (414, or 400 naming the request line).
        self.max_url_bytes = max_url_bytes
        self.url_limit_status = url_limit_status
        self.oauth = oauth
        self.faults = faults
        self.limiter = limiter
        self.api_key = api_key
        self.latency = latency
        self.slow_seconds = slow_seconds
        self._lock = threading.Lock()
        self.counters = {"requests": 0, "faults_injected": 0, "rate_limited": 0}
        self.by_status: dict[int, int] = {}
        self.log: list[dict[str, Any]] = []
        self._n429 = 0
        #: called as hook(method, path, params) before each /api/v1 request is answered
        self.hooks: list[Callable[[str, str, dict[str, str]], None]] = []

    # --- bookkeeping --------------------------------------------------------------------------

    def record(
        self, method: str, path: str, params: dict[str, str], status: int, auth: str | None,
        *, override: bool = False,
    ) -> None:
        with self._lock:
            self.counters["requests"] += 1
            self.by_status[status] = self.by_status.get(status, 0) + 1
            self.log.append(
                {"method": method, "path": path, "params": params, "status": status, "auth": auth,
                 "override": override, "at": time.monotonic()}
            )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.counters)
            out["by_status"] = dict(self.by_status)
        out["token_refreshes"] = self.oauth.refreshes
        out["invalid_grants"] = self.oauth.invalid_grants
        return out

    # --- processing ---------------------------------------------------------------------------

    def url_refused(self, url: str) -> Reply | None:
        """The front end's answer to a URL over `max_url_bytes` (None: it passes)."""
        if self.max_url_bytes is None or len(url.encode()) <= self.max_url_bytes:
            return None
        if self.url_limit_status == 400:
            return json_reply(400, {"error": "Bad Request: request line too long"})
        return json_reply(self.url_limit_status, {"error": "Request-URI Too Large"})

    @staticmethod
    def override_params(body: bytes) -> dict[str, str] | None:
        """The parameters of Close's `x-http-method-override: GET` form: a JSON body whose
        `_params` object holds what the query string would (None: not that form)."""
        try:
            params = json.loads(body or b"null").get("_params")
        except (ValueError, AttributeError):
            return None
        if not isinstance(params, dict):
            return None
        return {k: v if isinstance(v, str) else str(v) for k, v in params.items()}

    def process(
        self, method: str, path: str, params: dict[str, str], body: bytes, auth: str
    ) -> Reply:
        if path == control.PREFIX or path.startswith(control.PREFIX + "/"):  # no faults, no auth
            return json_reply(*control.handle(self.api.data, method, path[len(control.PREFIX):],
                                              body))
        is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        fault = self.faults.pick(path)
        if fault:
            with self._lock:
                self.counters["faults_injected"] += 1
        if is_api and self.latency > 0:
            time.sleep(self.latency)
        if fault == "slow":
            time.sleep(self.slow_seconds)
        elif fault == "reset":
            return Reply(0, action="reset")
        elif fault in ("500", "502", "503", "504"):
            assert fault is not None
            return json_reply(int(fault), {"error": f"Emulated server error {fault}"})
        elif fault == "429":
            limit = self.limiter.limit if self.limiter else 1000
            return self._too_many(0.2, ratelimit_header(limit, 0, 0.2))
        elif fault == "429bare":
            with self._lock:
                self.counters["rate_limited"] += 1
            return json_reply(429, {"error": "Too many requests"})
        elif fault == "echo":
            return json_reply(400, {"error": f"Bad request (Authorization: {auth})"})
        if path.rstrip("/") == "/oauth2/authorize":
            reply = self._authorize(params)
        elif path.startswith("/oauth2/"):
            reply = self._oauth(method, path, body, auth)
        elif is_api:
            for hook in list(self.hooks):  # tests: people at work between two requests
                hook(method, path, params)
            reply = self._api(method, path, params, auth, body)
        elif path.startswith("/_download/"):
            reply = self._download(path)
        else:
            reply = json_reply(404, {"error": "Not found"})
        if fault == "truncate":
            reply.action = "truncate"
        return reply

    def _too_many(self, reset: float, header: str) -> Reply:
        with self._lock:
            n = self._n429
            self._n429 += 1
            self.counters["rate_limited"] += 1
        rate_reset = round(reset, 3)
        body: dict[str, Any]
        if n % 2 == 0:
            body = {
                "error": {
                    "rate_reset": rate_reset,
                    "message": "API call count exceeded for this period",
                }
            }
        else:
            body = {"error": "API call count exceeded", "rate_reset": rate_reset}
        return json_reply(429, body, [("RateLimit", header), ("Retry-After", retry_after(reset))])

    def _auth_error(self, auth: str) -> str | None:
        scheme, _, cred = auth.partition(" ")
        scheme, cred = scheme.lower(), cred.strip()
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(cred, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return "Unauthorized: malformed Basic credentials"
            if user == self.api_key and password == "":
                return None
            return "Unauthorized: invalid API key"
        if scheme == "bearer":
            status = self.oauth.access_status(cred)
            if status == "ok":
                return None
            return f"Unauthorized: {'expired' if status == 'expired' else 'invalid'} access token"
        return "Unauthorized: missing or unsupported Authorization header"

    def _download(self, path: str) -> Reply:
        """A finished export's file, gzipped like Close's (presigned-style: no auth)."""
        with self.api.data.lock:
            blob = self.api.data.objects.download(path.rstrip("/").rsplit("/", 1)[-1])
        if blob is None:
            return json_reply(404, {"error": "Not found"})
        return Reply(200, blob, [("Content-Encoding", "gzip")])

    def _api(
        self, method: str, path: str, params: dict[str, str], auth: str, body: bytes = b""
    ) -> Reply:
        rest = path[len(API_PREFIX) :]
        key = self.limiter.key(method, rest) if self.limiter else (method, "")
        header = DEFAULT_RATELIMIT
        error = self._auth_error(auth)
        if self.limiter is not None:
            if error:
                remaining, reset = self.limiter.peek(key)
            else:
                allowed, remaining, reset = self.limiter.hit(key)
                if not allowed:
                    return self._too_many(reset, ratelimit_header(self.limiter.limit, 0, reset))
            header = ratelimit_header(self.limiter.limit, remaining, reset)
        headers = [("RateLimit", header)]
        if error:
            return json_reply(401, {"error": error}, headers)
        if method not in ("GET", "POST"):
            return json_reply(
                405, {"error": "Method not allowed (the emulator is read-only)"}, headers
            )
        try:
            with self.api.data.lock:  # serialize under the lock: objects may change later
                if method == "POST":
                    result = self.api.handle_post(rest, params, body)
                else:
                    result = self.api.handle(rest, params)
                return Reply(200, self.api.encode(result), headers)
        except ApiError as exc:
            return json_reply(exc.status, {"error": exc.message}, headers)

    def _authorize(self, params: dict[str, str]) -> Reply:
        """Close's authorize page, approved at once: a redirect to `redirect_uri` with a
        one-time code and the `state` (a browser shows that URL, to paste into tap-close-auth)."""
        redirect = params.get("redirect_uri", "")
        if params.get("client_id") != self.oauth.client_id or not redirect.startswith("https://"):
            return json_reply(400, {"error": "unknown client_id, or redirect_uri not https"})
        answer = {"code": self.oauth.issue_auth_code(redirect)}
        if "state" in params:
            answer["state"] = params["state"]
        location = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(answer)}"
        return Reply(302, b"", [("Location", location)])

    def _oauth(self, method: str, path: str, body: bytes, auth: str) -> Reply:
        name = path.rstrip("/")
        if name not in ("/oauth2/token", "/oauth2/revoke"):
            return json_reply(404, {"error": "Not found"})
        if method != "POST":
            return json_reply(405, {"error": "Method not allowed"})
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        scheme, _, cred = auth.partition(" ")
        if "client_id" not in form and scheme.lower() == "basic":  # client auth via header
            try:
                cid, _, secret = base64.b64decode(cred.strip()).decode().partition(":")
                form.update(client_id=cid, client_secret=secret)
            except (binascii.Error, UnicodeDecodeError):
                pass
        if name == "/oauth2/revoke":
            if (
                form.get("client_id") != self.oauth.client_id
                or form.get("client_secret") != self.oauth.client_secret
            ):
                return json_reply(401, {"error": "invalid_client"})
            self.oauth.revoke(form.get("token", ""))
            return json_reply(200, {})
        try:
            return json_reply(
                200, self.oauth.grant(form), [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
            )
        except OAuthError as exc:
            return json_reply(exc.status, {"error": exc.error})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; Content-Length or chunked replies
    disable_nagle_algorithm = True  # TCP_NODELAY on accepted sockets
    server_version = "CloseEmulator/1.0"
    sys_version = ""
    server: EmuServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header from the server's clock (which may run off real time)."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return email.utils.format_datetime(self.server.engine.api.data.clock.peek(), usegmt=True)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        engine = self.server.engine
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        auth = self.headers.get("Authorization", "")
        scheme = auth.partition(" ")[0].lower()
        kind = scheme if scheme in ("basic", "bearer") else None
        method = self.command
        override = engine.method_override and method == "POST" and \
            self.headers.get("X-HTTP-Method-Override", "").strip().upper() == "GET"
        refused = engine.url_refused(f"http://{self.headers.get('Host', '')}{self.path}")
        if refused:
            reply = refused
        elif override:
            extra = engine.override_params(body)
            if extra is None:
                reply = json_reply(400, {"error": "x-http-method-override: GET needs a JSON "
                                                  "body with _params"})
            else:
                method, params = "GET", {**params, **extra}
                reply = engine.process(method, url.path, params, b"", auth)
        else:
            reply = engine.process(method, url.path, params, body, auth)
        engine.record(method, url.path, params, reply.status, kind, override=override)
        if reply.action == "reset":
            # drop the connection with no response (RST)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.mark_reset(self.connection)
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        chunked = self.server.compress and "gzip" in self.headers.get("Accept-Encoding", "") \
            and not any(name.lower() == "content-encoding" for name, _ in reply.headers)
        body = gzip.compress(reply.body, 1) if chunked else reply.body
        if chunked:  # gzip, chunked transfer encoding (as compressing front ends reply)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Transfer-Encoding", "chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + CHUNK]), body[i:i + CHUNK])
                            for i in range(0, len(body), CHUNK)) + b"0\r\n\r\n"
        else:
            self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if reply.action == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)


class EmuServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, compress: bool = False) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.compress = compress  # gzip + chunked replies to clients that accept gzip
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def mark_reset(self, request: socket.socket) -> None:
        with self._conn_lock:
            self._resets.add(request)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            self.close_request(request)  # linger 0: the close sends RST, no FIN first
        else:
            super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop open keep-alive connections (used on stop)."""
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # clients dropping connections is normal here
