"""The HTTP environment of the real CLI: proxies (HTTP_PROXY/HTTPS_PROXY/NO_PROXY) and the
rules for api_url / oauth_token_url (https, plain http only to loopback, a warning for a host
that is not Close's)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import api_key_config, oauth_config
from tests.emulator import CloseEmulator
from tests.harness import run_tap

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
              "transfer-encoding", "content-length"}


class _Forward(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: absolute-form request in, one upstream request out."""

    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _forward(self) -> None:
        url = urlsplit(self.path)
        self.server.seen.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        target = url.path + (f"?{url.query}" if url.query else "")
        upstream.request(self.command, target, body, headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


class ForwardProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_plain_http_to_loopback_never_goes_through_a_proxy(
        emulator: CloseEmulator, proxy: ForwardProxy, tmp_path: Path) -> None:
    """A proxy would see the API key and the OAuth form in clear (issue 22, item 8): plain
    http (allowed to loopback only) goes direct, API and token calls alike; https requests
    follow the proxy variables (requests' trust_env)."""
    env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "ALL_PROXY": proxy.url}
    config = oauth_config(emulator, str(tmp_path / "store.json"))
    run = run_tap(config, env=env).assert_ok()
    assert run.ids("leads") == emulator.truth("leads")
    key_run = run_tap(api_key_config(emulator), env=env).assert_ok()
    assert key_run.ids("leads") == emulator.truth("leads")
    assert proxy.seen == [], "no request went to the proxy"
    assert emulator.stats["token_refreshes"] >= 1
    warnings = [line for line in run.stderr.splitlines() if "not a Close host" in line]
    assert len(warnings) == 2 and all("WARNING" in w for w in warnings)  # api + token URL


@pytest.mark.parametrize(("config", "expected"), [
    ({"api_url": "http://api.example.com/api/v1"}, "api_url must use https"),
    ({"api_url": "http://10.0.0.8/api/v1"}, "api_url must use https"),
    ({"api_url": "https://api.close.com:99999/"}, "api_url must be an http(s) URL"),
    # requests (urllib3) sends this one to 10.9.9.9; other parsers read host 127.0.0.1
    ({"api_url": "http://10.9.9.9\\@127.0.0.1/api/v1"}, "api_url must not contain backslash"),
    ({"api_url": "https://user:pw@api.close.com/api/v1"}, "api_url must not contain user info"),
    ({"api_url": "https://api.close.com/api/v1#x"}, "api_url must not contain user info"),
    ({"client_id": "c", "client_secret": "sec", "refresh_token": "ref",
      "oauth_token_url": "http://login.example.com/o/"}, "oauth_token_url must use https"),
])
def test_plain_http_is_only_for_loopback(config: dict, expected: str) -> None:
    if "client_id" not in config:
        config = {"api_key": "k_secret_1", **config}
    run = run_tap(config, "--discover", timeout=60)
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert run.returncode == 1 and len(errors) == 1 and expected in errors[0], run.stderr
    assert "Traceback" not in run.stderr


def test_close_hosts_and_loopback_http_are_accepted() -> None:
    from tap_close.tap import validate_settings

    for url in ("https://api.close.com/api/v1", "http://localhost:8080/api/v1",
                "http://[::1]:9/api/v1", "http://127.0.0.2/api/v1"):
        validate_settings({"api_key": "k_secret_1", "api_url": url})
