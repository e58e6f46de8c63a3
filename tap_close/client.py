"""HTTP for Close: one `requests` session, retries, rate limiting, error redaction and
`_skip`/`_limit` paging.

Every call goes through one `requests.Session` per tap process (its pool sized to
`max_concurrency`, shared by all threads; proxies and CA bundle from the environment), never
follows a redirect, reads at most `MAX_BODY` bytes of a reply, and keeps GET URLs within
`MAX_URL` bytes by sending Close's `x-http-method-override: GET` form instead.
"""

from __future__ import annotations

import functools
import http.cookiejar
import itertools
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import client as http_client  # its exception types only: HTTP goes through requests
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import backoff
import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter

from tap_close import fields, parallel
from tap_close.auth import AuthError, CloseOAuth, redact
from tap_close.clock import ServerClock
from tap_close.errors import (
    AccessDeniedError,
    CloseAPIError,
    FatalTransportError,
    LimitTooLargeError,
    MaxSkipError,
    ReadTimeout,
    TransportError,
    Unreachable,
)
from tap_close.ratelimit import RateLimiter, endpoint_group, parse_ratelimit
from tap_close.urls import direct

logger = logging.getLogger("tap-close.http")

RETRY_STATUSES = {500, 502, 503, 504}
CONNECT_TIMEOUT = 10.0  # seconds to open a connection (request_timeout is the read timeout)
MAX_BODY = 64 << 20  # bytes of one (decoded) reply: a bigger one is an error, not a MemoryError
UNREACHABLE_TRIES = 3  # DNS failure or refused connection, and the host never answered
MAX_RATE_WAIT = 300.0  # seconds: the longest wait a 429 can ask for
MAX_URL = 2000  # bytes of a GET URL (Close: "keep URLs under 2000 characters")
CHUNK = 1 << 16
# A 400 that is about the URL (front ends answer "Request-URI Too Large" or "request line too
# long" as 400 or 414): the request is sent again in the override form.
_URL_REFUSED = re.compile(rb"(ur[il]|request[ -]line)[^\n]{0,40}(long|large|length|size)", re.I)
_OVERRIDE_TEXT = re.compile(rb"override|_params|method", re.I)
decode_json = msgspec.json.Decoder().decode  # one parse per body, faster than json


@dataclass
class Reply:
    """One HTTP response: status, headers (case-insensitive) and the whole decoded body."""

    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return decode_json(self.data)  # ValueError (msgspec.DecodeError) when it is not JSON


def id_path(prefix: str, object_id: Any) -> str:
    """The path of one object: `prefix` + the URL-quoted id + `/`. Ids come from Close's
    replies; quoted, a `/`, `?` or CR/LF in one cannot change the request, and `.` is quoted
    too (`..` would be a dot segment: GET /api/v1/lead/../ is GET /api/v1/)."""
    return f"{prefix}{quote(str(object_id), safe='').replace('.', '%2E')}/"


def new_session(workers: int) -> requests.Session:
    """The process's one session: a keep-alive pool per host sized for `workers` threads (and
    a token refresh, often to the same host), no urllib3 retries (the client's policy
    decides), no cookies (Close's API is stateless). `trust_env` stays on:
    HTTPS_PROXY/HTTP_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE apply."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=max(1, workers) + 1, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def read_body(response: requests.Response, limit: int | None = None) -> bytes:
    """The decoded body, at most `limit` (default `MAX_BODY`) bytes; FatalTransportError
    beyond, before reading when Content-Length says so."""
    limit = limit or MAX_BODY
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        msg = f"reply of {int(length):,} bytes is over the {limit >> 20} MiB cap"
        raise FatalTransportError(msg)
    parts, size = [], 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > limit:
            raise FatalTransportError(f"reply is over the {limit >> 20} MiB cap")
        parts.append(chunk)
    return b"".join(parts)


def wire_error(exc: Exception, timeout: float) -> Exception:
    """A `requests` (or urllib3, standard library) failure as a one-line Transport error."""
    cause = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real one
    if isinstance(exc, requests.exceptions.SSLError):
        found = re.search(r"certificate verify failed[^)'\"]*", str(exc))
        return FatalTransportError(f"TLS failed: {found.group(0) if found else 'handshake error'}")
    if isinstance(exc, requests.ConnectTimeout):
        return TransportError(f"connecting timed out after {CONNECT_TIMEOUT:g}s")
    if isinstance(exc, requests.ReadTimeout) or isinstance(
            cause, urllib3.exceptions.ReadTimeoutError):
        return ReadTimeout(f"no reply within {timeout:g}s")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return FatalTransportError(f"unusable request ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.ProxyError):
        return TransportError("the proxy refused or dropped the connection")
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return Unreachable("DNS lookup failed (no such host, or no DNS server)")
    if isinstance(exc, requests.ConnectionError) and isinstance(
            cause, urllib3.exceptions.NewConnectionError):
        reason = cause.__cause__ or cause.__context__
        if isinstance(reason, ConnectionRefusedError):
            return Unreachable("connection refused")
        return TransportError(f"cannot connect ({type(reason or cause).__name__})")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return TransportError("truncated or malformed body")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return TransportError("corrupt compressed body")
    return TransportError(f"connection failed ({type(exc).__name__})")


#: What a failed exchange may raise, from requests down to the socket.
WIRE_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, http_client.HTTPException,
               OSError)


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch  # what quote_plus leaves as it is


def query_string(params: Mapping[str, Any]) -> str:
    """`urlencode` of the non-None params; plain values (the usual ids, numbers) skip quoting."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        if not _PLAIN(text):
            text = quote_plus(text)
        parts.append(f"{key if _PLAIN(key) else quote_plus(key)}={text}")
    return "&".join(parts)


def _decode_object(data: bytes) -> dict[str, Any] | None:
    body = decode_json(data)
    return body if isinstance(body, dict) else None


class KeyPage:
    """A list page kept as raw bytes until its rows are read: only each row's `id` and sort
    key are decoded at once (for keyset paging, ~1/5 of a full parse), so pages waiting in
    read-ahead cost their size in bytes, not ~2.5x that in Python objects."""

    __slots__ = ("data", "has_more", "keys", "skip")

    def __init__(self, data: bytes, has_more: bool, keys: list[tuple[Any, Any]]) -> None:
        self.data = data
        self.has_more = has_more
        self.keys = keys  # (sort key, id) of each row, in order
        self.skip: set[int] = set()  # positions of rows not to emit

    @property
    def rows_in(self) -> int:
        return len(self.keys) - len(self.skip)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        body = decode_json(self.data)
        rows = (body.get("data") if isinstance(body, dict) else None) or []
        for i in sorted(self.skip, reverse=True):  # a few boundary rows at most
            if i < len(rows):
                del rows[i]
        return iter(rows)


@functools.cache
def key_page_decoder(key: str) -> Callable[[bytes], KeyPage]:
    """Decoder of list pages into `KeyPage`s for rows sorted by `key`."""
    fields: list[tuple[str, Any, Any]] = [("id", Any, None)]
    if key != "id":
        fields.append((key, Any, None))
    row = msgspec.defstruct("Row", fields)
    page = msgspec.defstruct("Page", [("data", list[row] | None, None),  # type: ignore[valid-type]
                                      ("has_more", Any, False)])
    decode = msgspec.json.Decoder(page).decode

    def decoder(data: bytes) -> KeyPage:
        parsed: Any = decode(data)
        keys = [(getattr(r, key), r.id) for r in parsed.data or ()]
        return KeyPage(data, bool(parsed.has_more), keys)

    return decoder


_AT_MOST = re.compile(r"at most (\d+)")


def _error_text(response: Reply) -> str:
    """Close's own error message from the body, trimmed; never the raw body or headers."""
    try:
        body = response.json()
    except ValueError:
        return ""
    err: Any = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if not err and isinstance(body, dict) and body.get("field-errors"):
        err = "invalid fields: " + ", ".join(sorted(body["field-errors"]))
    return str(err)[:300] if err else ""


def _seconds(value: Any) -> float | None:
    """A wait from a 429 (seconds, or an HTTP date for Retry-After); None for nonsense
    (not a number, negative, infinite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            number = parsedate_to_datetime(str(value)).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return number if math.isfinite(number) and number >= 0 else None


def _rate_reset(response: Reply) -> float:
    """Seconds to wait after a 429: the largest of body rate_reset, RateLimit reset and
    Retry-After, at most MAX_RATE_WAIT; 1 s when none makes sense."""
    waits = [_seconds(parse_ratelimit(response.headers.get("RateLimit")).get("reset")),
             _seconds(response.headers.get("Retry-After"))]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for holder in (body, body.get("error")):
            if isinstance(holder, dict):
                waits.append(_seconds(holder.get("rate_reset")))
    wait = max((w for w in waits if w), default=0.0)
    return min(wait, MAX_RATE_WAIT) if wait > 0 else 1.0


def _present(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None}


def _url_refused(response: Reply) -> bool:
    """414, or a 400 whose text is about the URL (request line) being too long."""
    return response.status == 414 or (
        response.status == 400 and bool(_URL_REFUSED.search(response.data[:2000])))


def _override_refused(response: Reply) -> bool:
    """The override POST form is not accepted here (method not allowed, or a 400 about it)."""
    return response.status in (404, 405, 414, 501) or (
        response.status == 400 and bool(_OVERRIDE_TEXT.search(response.data[:2000])))


def redirect_error(response: Reply, method: str, path: str) -> str:
    target = urlsplit(response.headers.get("Location") or "").hostname
    where = f" to {target}" if target else ""
    return (f"{method} {path}: Close answered HTTP {response.status} (a redirect{where}); "
            "redirects are not followed, so credentials stay with api_url. Check api_url.")


class CloseClient:
    """One HTTP client per tap process: shared session, auth, rate limiter and retry policy."""

    def __init__(
        self,
        api_url: str,
        auth: requests.auth.AuthBase,
        *,
        timeout: float = 300.0,
        user_agent: str = "tap-close",
        max_tries: int = 8,
        workers: int = 1,
        session: requests.Session | None = None,
        budget_store: tuple[str, str] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.workers = max(1, workers)
        self._slots = threading.BoundedSemaphore(self.workers)  # requests in flight, in all
        self.auth = auth
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_tries = max_tries
        self.limiter = RateLimiter.for_account(self.api_url, auth, budget_store)
        self.clock = ServerClock()  # Close's time, from its replies' Date header
        self.stats: Counter[str] = Counter()
        self.session = session or new_session(self.workers)
        # Proxies, CA bundle and client cert from the environment, resolved once: every call
        # goes to the one API host.
        env = self.session.merge_environment_settings(self.api_url, {}, None, None, None)
        proxies = {} if direct(self.api_url) else env["proxies"]  # plain http: loopback
        self._send_options: dict[str, Any] = {"proxies": proxies, "verify": env["verify"],
                              "cert": env["cert"], "stream": True,
                              "timeout": (CONNECT_TIMEOUT, timeout)}
        self._adapter = self.session.get_adapter(self.api_url)
        self.url_limit = MAX_URL  # lowered when Close refuses a shorter URL
        self.page_caps: dict[str, int] = {}  # path -> a `_limit` Close accepted after refusing
        self.short_fields: dict[str, int] = {}  # endpoint -> `fields.shorter` level to send
        self._basic = ""  # the Basic Authorization header, once computed
        parts = urlsplit(self.api_url)
        self.host = f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        self._answered = False  # any HTTP reply yet from the host
        self._unreachable = ""  # why the host is given up on, once it never answered
        self._logged: set[str] = set()  # wire problems already named with the host
        self.headers = {"User-Agent": user_agent, "Accept": "application/json",
                        "Accept-Encoding": "gzip, deflate", "X-TZ-Offset": "0"}

    def close(self) -> None:
        """Close the authenticator (an OAuth rotation under way is saved first), then every
        idle connection."""
        close_auth = getattr(self.auth, "close", None)
        if callable(close_auth):
            close_auth()
        self.session.close()

    def authorization(self) -> str:
        """The Authorization header the configured `requests` authenticator would send."""
        if self._basic:
            return self._basic
        probe = requests.PreparedRequest()
        probe.headers = requests.structures.CaseInsensitiveDict()
        self.auth(probe)
        header = probe.headers.get("Authorization", "")
        if isinstance(self.auth, requests.auth.HTTPBasicAuth):
            self._basic = header  # fixed for the process (OAuth tokens change)
        return header

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = f"{self.api_url}/{path.lstrip('/')}"
        return f"{url}?{query_string(params)}" if params else url

    def send(
        self, method: str, url: str, json: Any = None, headers: Mapping[str, str] | None = None,
    ) -> tuple[Reply, str]:
        """One HTTP exchange, no retries. Returns the reply and the Authorization sent."""
        authorization = self.authorization()
        sent = {**self.headers, **(headers or {}), "Authorization": authorization}
        body = None
        if json is not None:
            body = msgspec.json.encode(json)
            sent["Content-Type"] = "application/json"
        prepared = requests.PreparedRequest()  # no session merging: headers are complete
        try:
            prepared.prepare(method=method, url=url, headers=sent, data=body)
            if "%2E" in url:  # requests unquotes it again (an unreserved character)
                prepared.url = url
            with self._adapter.send(prepared, **self._send_options) as response:
                self.clock.observe(response.headers.get("Date"))  # before the body is read
                reply = Reply(response.status_code, response.headers, read_body(response))
        except WIRE_ERRORS as exc:
            raise wire_error(exc, self.timeout) from None
        return reply, authorization

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            decode: Callable[[bytes], Any] = _decode_object) -> Any:
        return self.request("GET", path, params, decode=decode)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, json=body)

    def request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None, decode: Callable[[bytes], Any] = _decode_object,
        *, read: bool | None = None,
    ) -> Any:
        """Send one API call with retries; return the body parsed by `decode` (a JSON object
        by default); a body it refuses (error, None) is retried like a truncated one. `read`:
        retried like a GET (default: GETs only; a search POST is a read too).

        A GET whose URL is longer than `url_limit`, or that Close refuses for its URL (414, or
        a 400 about the URL), is sent as Close's override form: POST with
        `x-http-method-override: GET` and the parameters as `_params` in a JSON body. It is
        still a read: retried like a GET and counted in the GET endpoint group."""
        reading = method == "GET"
        read = reading if read is None else read
        group = endpoint_group(method, path)
        endpoint = fields.template(path)
        if self.short_fields.get(endpoint):  # a long `_fields` list was refused here before
            params, json = fields.shorter(params, json, self.short_fields[endpoint])
        url = self.url(path, params)
        override = reading and len(url) > self.url_limit
        waits = backoff.expo(base=2, factor=0.5, max_value=30)
        refreshed = False
        attempt = throttled = 0  # failed tries; 429s are counted apart
        while True:
            if self._unreachable:
                raise CloseAPIError(self._unreachable)
            ticket = self.limiter.acquire(group)
            self.stats["requests"] += 1
            problem = ""
            unreachable = False
            header = None
            try:
                with self._slots:
                    if override:
                        response, authorization = self.send(
                            "POST", self.url(path), {"_params": _present(params)},
                            {"X-HTTP-Method-Override": "GET"})
                    else:
                        response, authorization = self.send(method, url, json)
                header = response.headers.get("RateLimit")
                self._answered = True
            except TransportError as exc:
                problem = str(exc)
                unreachable = isinstance(exc, Unreachable) and not self._answered
                if not read and isinstance(exc, ReadTimeout):
                    raise CloseAPIError(f"{method} {path} timed out; not retried") from None
            except FatalTransportError as exc:
                raise CloseAPIError(f"{method} {path} failed: {exc}") from None
            finally:
                self.limiter.release(ticket, header)
            if not problem:
                status = response.status
                if status == 429:
                    wait = _rate_reset(response) + random.uniform(0, 0.25)
                    self.stats["rate_limited"] += 1
                    self.limiter.pause(group, wait)
                    throttled += 1
                    if throttled < self.max_tries * 3:
                        logger.info("429 on %s; waiting %.2fs", group, wait)
                        continue
                    problem = "HTTP 429"
                elif status == 401:
                    if isinstance(self.auth, CloseOAuth) and not refreshed:
                        refreshed = True
                        self.stats["auth_retries"] += 1
                        self.auth.invalidate(self.auth.used_token(authorization))
                        continue
                    if isinstance(self.auth, CloseOAuth):
                        msg = ("Close rejected the OAuth access token twice (401). Re-authorize "
                               "with `tap-close-auth`.")
                    else:
                        msg = "Close rejected the api_key (401 Unauthorized). Check api_key."
                    raise AuthError(msg)
                elif 300 <= status < 400:
                    raise CloseAPIError(redirect_error(response, method, path))
                elif reading and not override and _url_refused(response):
                    self.url_limit = min(self.url_limit, len(url) - 1)
                    self.stats["url_overrides"] += 1
                    logger.info("Close refused a %d-byte URL (HTTP %d); sending GET %s and "
                                "longer URLs as POST with x-http-method-override", len(url),
                                status, path)
                    override = True
                    continue
                elif override and _override_refused(response) and (params or {}).get("_fields"):
                    # The override form refused too: ask without `_fields` (Close's default
                    # field set) if that URL is short enough.
                    params = {k: v for k, v in (params or {}).items() if k != "_fields"}
                    url = self.url(path, params)
                    override = len(url) > self.url_limit
                    logger.warning("GET %s: the x-http-method-override form was refused (HTTP "
                                   "%d); asking again without _fields", path, status)
                    continue
                elif (status == 400 and fields.LIST_REFUSED.search(response.data[:2000])
                      and fields.has_fields(params, json)):
                    level = self.short_fields[endpoint] = self.short_fields.get(endpoint, 0) + 1
                    params, json = fields.shorter(params, json, level)
                    url = self.url(path, params)
                    override = reading and len(url) > self.url_limit
                    how = "with `custom`" if fields.has_fields(params, json) else "without _fields"
                    logger.warning("%s %s: Close refused the _fields list (%s); asking %s from "
                                   "now on", method, path, redact(_error_text(response)), how)
                    continue
                elif status in RETRY_STATUSES and (read or status == 503):
                    problem = f"HTTP {status}"  # POSTs only on 503, as Close's own client
                elif status >= 400:
                    raise self._fatal(response, path)
                else:
                    parallel.received(len(response.data))
                    try:
                        body = decode(response.data)
                    except (ValueError, msgspec.DecodeError):
                        problem = "invalid JSON body"
                    else:
                        if body is not None:
                            return body
                        problem = "unexpected JSON body"
            attempt += 1
            if parallel.cancelled():  # read ahead for a consumer that has stopped
                raise CloseAPIError(f"{method} {path}: not retried, no longer needed")
            if unreachable and attempt >= UNREACHABLE_TRIES:
                # a host that never answered: no use retrying every request 8 times
                self._unreachable = f"cannot reach {self.host}: {problem} (gave up after " \
                                    f"{attempt} tries on {method} {path})"
                raise CloseAPIError(self._unreachable)
            if attempt >= self.max_tries:
                msg = f"{method} {path} failed after {attempt} tries (last error: {problem})"
                raise CloseAPIError(msg)
            delay = backoff.full_jitter(next(waits))
            self.stats["retries"] += 1
            if problem not in self._logged:  # host and cause once, then only the count
                self._logged.add(problem)
                logger.warning("%s from %s on %s %s; retry %d in %.1fs", problem, self.host,
                               method, path, attempt, delay)
            else:
                logger.info("%s on %s %s; retry %d in %.1fs", problem, method, path, attempt,
                            delay)
            time.sleep(delay)

    @staticmethod
    def _fatal(response: Reply, path: str) -> CloseAPIError:
        status = response.status
        text = redact(_error_text(response))
        detail = f": {text}" if text else ""
        msg = f"Close API {status} for {path}{detail}"
        if status == 400 and "max_skip" in text:
            return MaxSkipError(msg, status)
        if status == 400 and "_limit" in text:
            return LimitTooLargeError(msg, status)
        if status in (402, 403):
            return AccessDeniedError(msg, status)
        return CloseAPIError(msg, status)

    def search_pages(self, body: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The pages of one Advanced Filtering cursor sequence (`POST /data/search/`)."""
        cursor = None
        while True:
            reply = self.request("POST", "/data/search/", json={**body, "cursor": cursor},
                                 read=True)
            yield list(reply.get("data") or [])
            cursor = reply.get("cursor")
            if not cursor:
                return

    def page(
        self, path: str, params: Mapping[str, Any], limit: int,
        decode: Callable[[bytes], Any] = _decode_object,
    ) -> tuple[Any, int]:
        """Fetch one list page; lower `_limit` while Close refuses it (to the largest its
        message names, else by half), and remember the size taken for the path's later
        lists. Returns (body, limit)."""
        limit = min(limit, self.page_caps.get(path, limit))
        while True:
            try:
                return self.get(path, {**params, "_limit": limit}, decode), limit
            except LimitTooLargeError as exc:
                if limit <= 1:
                    raise
                said = _AT_MOST.search(str(exc))  # "_limit must be at most 50": take it
                cap = int(said.group(1)) if said else 0
                limit = cap if 0 < cap < limit else max(1, math.ceil(limit / 2))
                self.page_caps[path] = limit
                logger.info("Close refused _limit for %s; lowering it to %d", path, limit)

    def read_ahead(self, group: str) -> int:
        """Pages of one list worth requesting at once. Past a list's end they are wasted:
        free without a rate limit, but under one only budget nobody waits for is spent."""
        spare = self.limiter.spare(group)
        return self.workers if spare is None else max(1, min(self.workers, 1 + spare))

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page of a `_skip`/`_limit` list until `has_more` is false (or absent).

        After the first page, later pages are fetched ahead concurrently (`workers`).
        """
        for page in self.raw_pages(path, params, page_size=page_size):
            yield list(page)

    def raw_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100,
        key: str = "id", overlap: int = 0,
    ) -> Iterator[KeyPage]:
        """`pages`, each page decoded only when its rows are read (lean read-ahead); `key`
        is the row field decoded at once, besides `id`. Each page after the first starts
        `overlap` rows before the previous one ended (rows removed mid-scan are not missed;
        the caller drops the repeats)."""
        decode = key_page_decoder(key)
        page, limit = self.page(path, {**(params or {}), "_skip": 0}, page_size, decode)
        yield page
        if not page.has_more or not page.keys:
            return
        limit = len(page.keys)

        def fetch(skip: int) -> Callable[[], Iterator[KeyPage]]:
            def produce() -> Iterator[KeyPage]:  # lazy: the task reserves budget first
                yield self.get(path, {**(params or {}), "_skip": skip, "_limit": limit}, decode)
            return produce

        offsets = (max(1, limit - overlap) * n for n in itertools.count(1))
        tasks, size = (fetch(skip) for skip in offsets), len(page.data)
        group = endpoint_group("GET", path)
        for page in parallel.ordered(tasks, lambda: self.read_ahead(group), size):
            yield page
            if not page.has_more or not page.keys:
                return
