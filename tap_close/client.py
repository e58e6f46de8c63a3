"""HTTP for Close: retries, rate limiting, error redaction and `_skip`/`_limit` paging.

Requests go through `transport.Pool`, a small keep-alive HTTP/1.1 client: the per-lead
custom-object listing makes one call per lead, and `requests`/urllib3 cost about five times
its CPU per call. Authentication still comes from a `requests` AuthBase.
"""

from __future__ import annotations

import contextlib
import functools
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
from typing import Any
from urllib.parse import quote_plus

import backoff
import msgspec
import requests

from tap_close import parallel
from tap_close.auth import AuthError, CloseOAuth, redact
from tap_close.transport import (
    FatalTransportError,
    Pool,
    ReadTimeout,
    Reply,
    TransportError,
    decode_json,
)

logger = logging.getLogger("tap-close.http")

RETRY_STATUSES = {500, 502, 503, 504}
_RATELIMIT_RE = re.compile(r"(limit|remaining|reset)\s*=\s*([0-9.]+)", re.IGNORECASE)


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


class CloseAPIError(Exception):
    """A fatal API error; the message names the path and Close's error text, no secrets."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MaxSkipError(CloseAPIError):
    """Close refused a `_skip` past the resource's max_skip."""


class LimitTooLargeError(CloseAPIError):
    """Close refused the page size (`_limit`)."""


class AccessDeniedError(CloseAPIError):
    """403 (not allowed) or 402 (plan limit) for this endpoint."""


def endpoint_group(method: str, path: str) -> str:
    """Close limits per endpoint group: method plus the first path segment."""
    first = path.strip("/").split("/", 1)[0]
    return f"{method.upper()} /{first}/"


def parse_ratelimit(value: str | None) -> dict[str, float]:
    """Parse `RateLimit: limit=100, remaining=50, reset=5.5` (case-insensitive)."""
    if not value:
        return {}
    return {k.lower(): float(v) for k, v in _RATELIMIT_RE.findall(value)}


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


def _rate_reset(response: Reply) -> float:
    """Seconds to wait after a 429: the largest of body rate_reset, RateLimit reset, Retry-After."""
    waits = [parse_ratelimit(response.headers.get("RateLimit")).get("reset", 0.0)]
    with contextlib.suppress(ValueError):
        waits.append(float(response.headers.get("Retry-After", 0)))
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for holder in (body, body.get("error")):
            if isinstance(holder, dict) and isinstance(holder.get("rate_reset"), (int, float)):
                waits.append(float(holder["rate_reset"]))
    wait = max(waits)
    return wait if wait > 0 else 1.0


@dataclass
class _Budget:
    limit: float | None = None
    remaining: float | None = None  # per the last RateLimit header
    reset_at: float = 0.0
    inflight: int = 0
    paused_until: float = 0.0


class RateLimiter:
    """Per endpoint group budget from the live `RateLimit` header, shared by all threads.

    A request may start while `remaining` minus the requests still in flight is at least
    one; otherwise it waits for the window's reset. A 429 pauses the whole group.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, _Budget] = {}

    def acquire(self, group: str) -> None:
        while True:
            with self._lock:
                budget = self._groups.setdefault(group, _Budget())
                now = time.monotonic()
                if budget.remaining is not None and now >= budget.reset_at:
                    budget.remaining = budget.limit  # a new window
                if now < budget.paused_until:
                    delay = budget.paused_until - now
                elif (budget.remaining is not None and now < budget.reset_at
                      and budget.remaining - budget.inflight < 1):
                    delay = budget.reset_at - now
                else:
                    budget.inflight += 1
                    return
            time.sleep(min(max(delay, 0.005), 60.0))

    def release(self, group: str, header: str | None) -> None:
        info = parse_ratelimit(header)
        with self._lock:
            budget = self._groups.setdefault(group, _Budget())
            budget.inflight = max(0, budget.inflight - 1)
            if "remaining" in info and "reset" in info:
                budget.remaining = info["remaining"]
                budget.limit = info.get("limit", budget.limit)
                budget.reset_at = time.monotonic() + info["reset"]

    def limit_of(self, group: str) -> float | None:
        """The group's requests per window, per Close's last RateLimit header (None: unknown)."""
        with self._lock:
            budget = self._groups.get(group)
            return budget.limit if budget else None

    def pause(self, group: str, seconds: float) -> None:
        with self._lock:
            budget = self._groups.setdefault(group, _Budget())
            budget.paused_until = max(budget.paused_until, time.monotonic() + seconds)


class CloseClient:
    """One HTTP client per tap process: shared auth, rate limiter and retry policy."""

    def __init__(
        self,
        api_url: str,
        auth: requests.auth.AuthBase,
        *,
        timeout: float = 300.0,
        user_agent: str = "tap-close",
        max_tries: int = 8,
        workers: int = 1,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.workers = max(1, workers)
        self._slots = threading.BoundedSemaphore(self.workers)  # requests in flight, in all
        self.auth = auth
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_tries = max_tries
        self.limiter = RateLimiter()
        self.stats: Counter[str] = Counter()
        self._pool = Pool(self.api_url, timeout=timeout, maxsize=self.workers)
        self._basic = ""  # the Basic Authorization header, once computed
        self.headers = {"User-Agent": user_agent, "Accept": "application/json",
                        "Accept-Encoding": "gzip, deflate", "X-TZ-Offset": "0"}

    def close(self) -> None:
        """Close every idle connection, and the authenticator's own (OAuth token requests)."""
        self._pool.close()
        close_auth = getattr(self.auth, "close", None)
        if callable(close_auth):
            close_auth()

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

    def send(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> tuple[Reply, str]:
        """One HTTP exchange, no retries. Returns the reply and the Authorization sent."""
        target = "/" + path.lstrip("/")
        if params:
            target += "?" + query_string(params)
        authorization = self.authorization()
        headers = {**self.headers, "Authorization": authorization}
        body = None
        if json is not None:
            body = msgspec.json.encode(json)
            headers["Content-Type"] = "application/json"
        return self._pool.request(method, target, headers, body), authorization

    def get(self, path: str, params: Mapping[str, Any] | None = None,
            decode: Callable[[bytes], Any] = _decode_object) -> Any:
        return self.request("GET", path, params, decode=decode)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, json=body)

    def request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None, decode: Callable[[bytes], Any] = _decode_object,
    ) -> Any:
        """Send one API call with retries; return the body parsed by `decode` (a JSON object
        by default); a body it refuses (error, None) is retried like a truncated one."""
        group = endpoint_group(method, path)
        waits = backoff.expo(base=2, factor=0.5, max_value=30)
        refreshed = False
        attempt = throttled = 0  # failed tries; 429s are counted apart
        while True:
            self.limiter.acquire(group)
            self.stats["requests"] += 1
            problem = ""
            header = None
            try:
                with self._slots:
                    response, authorization = self.send(method, path, params, json)
                header = response.headers.get("RateLimit")
            except TransportError as exc:
                problem = str(exc)
                if method != "GET" and isinstance(exc, ReadTimeout):
                    raise CloseAPIError(f"{method} {path} timed out; not retried") from None
            except FatalTransportError as exc:
                raise CloseAPIError(f"{method} {path} failed: {exc}") from None
            finally:
                self.limiter.release(group, header)
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
                elif status in RETRY_STATUSES and (method == "GET" or status == 503):
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
            if attempt >= self.max_tries:
                msg = f"{method} {path} failed after {attempt} tries (last error: {problem})"
                raise CloseAPIError(msg)
            delay = backoff.full_jitter(next(waits))
            self.stats["retries"] += 1
            logger.warning("%s on %s %s; retry %d in %.1fs", problem, method, path, attempt, delay)
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

    def page(
        self, path: str, params: Mapping[str, Any], limit: int,
        decode: Callable[[bytes], Any] = _decode_object,
    ) -> tuple[Any, int]:
        """Fetch one list page; halve `_limit` while Close refuses it. Returns (body, limit)."""
        while True:
            try:
                return self.get(path, {**params, "_limit": limit}, decode), limit
            except LimitTooLargeError:
                if limit <= 1:
                    raise
                limit = max(1, math.ceil(limit / 2))
                logger.info("Close refused _limit for %s; lowering it to %d", path, limit)

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
        key: str = "id",
    ) -> Iterator[KeyPage]:
        """`pages`, each page decoded only when its rows are read (lean read-ahead); `key`
        is the row field decoded at once, besides `id`."""
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

        offsets = (limit * n for n in itertools.count(1))
        tasks, size = (fetch(skip) for skip in offsets), len(page.data)
        for page in parallel.ordered(tasks, self.workers, size):
            yield page
            if not page.has_more or not page.keys:
                return
