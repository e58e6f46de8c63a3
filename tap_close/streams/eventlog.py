"""The event log's date range read as concurrent cursor chains, one per date window.

`/event/` pages by cursor only (50 events a page, newest first), so one chain is one
request at a time. `EventWindows` reads the first page alone (a small range stays one
request); from a chain's second page on, idle workers take older parts of what it has not
read yet, again and again, so windows end up with about equal event counts whatever the
density. Windows partition the range, so each event belongs to one window.

Several `Query`s (filters such as `object_type`+`action`, resent with every cursor) may be
read at once: each has windows of its own, and may be cancelled or refused (400) alone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from tap_close.client import CloseClient
from tap_close.errors import CloseAPIError, LimitTooLargeError
from tap_close.ratelimit import endpoint_group
from tap_close.streams.base import UTC, parse_ts

EVENT_PAGE = 50
MIN_SPAN = dt.timedelta(seconds=1)  # a narrower remainder is not split
FANOUT = 4  # parts per split at most
POLL = 1.0
_END = dt.datetime.max.replace(tzinfo=UTC)


def event_key(event: dict) -> str:
    return f"{event.get('id')}@{event.get('date_updated')}"


def _second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


class Query:
    """One filtered read of the log (no filters: every event). `cancelled` stops its windows
    before their next request; `refused` is Close's 400 to its first request (an unknown
    filter value), `pages` the pages it returned."""

    def __init__(self, filters: dict[str, str] | None = None) -> None:
        self.filters = dict(filters or {})
        self.cancelled = False
        self.refused: CloseAPIError | None = None
        self.pages = 0
        self.page_limit: int | None = None  # pages to read at most (then `truncated`)
        self.truncated = False

    def stop_here(self) -> bool:
        """Whether its windows stop before their next request."""
        if self.page_limit is not None and self.pages >= self.page_limit:
            self.truncated = True
        return self.cancelled or self.truncated

    def __repr__(self) -> str:
        return "&".join(f"{k}={v}" for k, v in self.filters.items()) or "(all)"


class Window:
    """Events with lower <= date_updated < upper (None: no upper bound). `lower` rises
    when the window gives its older part away."""

    def __init__(self, lower: dt.datetime, upper: dt.datetime | None,
                 parent: Window | None = None, query: Query | None = None) -> None:
        self.lower, self.upper, self.parent = lower, upper, parent
        self.query: Query = query or (parent.query if parent else Query())
        self.pages = 0  # pages read
        self.next_split = 2  # the page count at which it may next give its older half away
        self.every = 1  # pages between offers; doubles when a half given away was near empty


Splitter = Callable[[Window, dt.datetime, dt.datetime], None]


def walk(client: CloseClient, window: Window, split: Splitter | None = None
         ) -> Iterator[list[dict]]:
    """The window's events page by page, newest first.

    Close does not say whether a cursor keeps the date_updated bound (the filter is not
    resent with it): events outside the window are dropped here, and the walk stops at the
    first page that reaches below the window's lower bound (Close lists events newest first,
    always), whatever the server does.
    Pages may cut through one millisecond: an event repeated from the page before is dropped.
    """
    filters = window.query.filters
    params: dict[str, Any] = {**filters, "date_updated__gte": window.lower.isoformat()}
    if window.upper:
        params["date_updated__lt"] = window.upper.isoformat()
    before: set[str] = set()
    limit = EVENT_PAGE
    while not window.query.stop_here():
        body, limit = client.page("/event/", params, limit)
        page = body.get("data") or []
        lower, upper = window.lower, window.upper
        kept: list[dict] = []
        keys: set[str] = set()
        older = 0
        dates = []
        for event in page:
            when = parse_ts(event.get("date_updated"))
            if when is not None:
                dates.append(when)
                if when < lower:
                    older += 1
                    continue
                if upper and when >= upper:
                    continue
            key = event_key(event)
            if key not in before and key not in keys:
                keys.add(key)
                kept.append(event)
        more = bool(body.get("cursor_next") and page and not older)
        window.pages += 1
        window.query.pages += 1
        if more and split and dates:
            split(window, min(dates), max(dates))
        yield kept
        if not more:
            return
        before = keys
        # A cursor replaces the date filter; every other filter is sent again (Close's rule).
        params = {**filters, "_cursor": body["cursor_next"]}


class EventWindows:
    """Every event with lower <= date_updated < upper, read by up to `workers` chains.

    `pages()` yields (events, mark): a page's events, or after a window's last page the
    new `mark` when it moved: every event below it has been yielded (a bookmark moves only
    over complete windows). Pages come in arrival order, not date order.

    With `queries` (filtered reads), each reads the whole range; `by_query()` tells which
    query a page answers, and a query Close refuses (400 to its first request) ends with
    `refused` set instead of failing the others. The mark is kept for one query only, read
    to its end.
    """

    def __init__(self, client: CloseClient, lower: dt.datetime, upper: dt.datetime | None,
                 workers: int, queries: list[Query] | None = None) -> None:
        self.client = client
        self.workers = max(1, workers)
        self.mark = lower
        self.queries = queries or [Query()]
        self._lock = threading.Lock()
        self._jobs: deque[Window] = deque(Window(lower, upper, query=q) for q in self.queries)
        self._out: queue.Queue[tuple[str, Window, Any]] = queue.Queue(maxsize=2 * self.workers)
        self._open = len(self.queries)  # windows whose end the consumer has not seen
        self._threads = 0
        self._busy = 0
        self._stop = threading.Event()
        self._complete: list[tuple[dt.datetime, dt.datetime]] = []

    def pages(self) -> Iterator[tuple[list[dict], dt.datetime | None]]:
        for _, page, mark in self._results():
            yield page, mark

    def by_query(self) -> Iterator[tuple[Query, list[dict]]]:
        """(query, page) as pages arrive."""
        for query, page, mark in self._results():
            if mark is None:
                yield query, page

    def _results(self) -> Iterator[tuple[Query, list[dict], dt.datetime | None]]:
        self._spawn()
        try:
            while self._open:
                kind, window, payload = self._out.get()
                if kind == "page":
                    yield window.query, payload, None
                elif kind == "error":
                    raise payload
                else:
                    with self._lock:
                        self._open -= 1
                    if self._finish(window):
                        yield window.query, [], self.mark
        finally:
            self._stop.set()
            while not self._out.empty():
                self._out.get_nowait()

    def _finish(self, window: Window) -> bool:
        """Note a window complete; True if the mark moved."""
        query = self.queries[0]
        if len(self.queries) > 1 or query.truncated or query.cancelled:
            return False  # a window stopped early is not complete
        self._complete.append((window.lower, window.upper or _END))
        self._complete.sort()
        moved = False
        while self._complete and self._complete[0][0] <= self.mark:
            upper = self._complete.pop(0)[1]
            if upper > self.mark:
                self.mark, moved = upper, True
        return moved

    def _spawn(self) -> None:
        with self._lock:
            while self._threads < self.workers and len(self._jobs) > self._threads - self._busy:
                self._threads += 1
                threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._jobs:
                    self._threads -= 1
                    return
                window = self._jobs.popleft()
                self._busy += 1
            try:
                for page in walk(self.client, window, self._split):
                    if not self._put(("page", window, page)):
                        return
                if window.parent and window.pages <= 1:
                    with self._lock:  # events are dense above it: offer splits less often
                        window.parent.every *= 2
                self._put(("done", window, None))
            except CloseAPIError as exc:
                if not self._refused(window, exc):
                    self._put(("error", window, exc))
                    return
                self._put(("done", window, None))
            except BaseException as exc:  # raised in the consumer
                self._put(("error", window, exc))
                return
            finally:
                with self._lock:
                    self._busy -= 1

    def _refused(self, window: Window, exc: CloseAPIError) -> bool:
        """A filtered query's first request answered 400: Close does not know the value."""
        query = window.query
        if (exc.status != 400 or isinstance(exc, LimitTooLargeError) or not query.filters
                or window.pages or window.parent is not None):
            return False
        query.refused = exc
        return True

    def _put(self, item: tuple[str, Window, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def _split(self, window: Window, oldest: dt.datetime, newest: dt.datetime) -> None:
        """Give idle workers the older part of what `window` has not read yet.

        From a window's second page on, while workers are idle (and, under a rate limit,
        budget is spare): what is left is cut into up to FANOUT spans of equal time, fewer
        when the page just read says fewer pages are left (a split's first page is
        part-filled and costs a request). Events may be clustered, not spread: a part that
        comes back with one page or less doubles the pages its parent reads before its next
        offer, so a burst of events costs a few probes, not one per page.
        """
        spare = self.client.limiter.spare(endpoint_group("GET", "/event/"))
        with self._lock:
            idle = self.workers - self._busy - len(self._jobs)
            if spare is not None:
                idle = min(idle, spare)
            span = oldest - window.lower
            if idle <= 0 or window.pages < window.next_split or span < MIN_SPAN:
                return
            per_page = max(newest - oldest, dt.timedelta(microseconds=1))
            parts = int(min(idle + 1, FANOUT, span / per_page))
            step = span / max(parts, 1)
            cuts = {_second(window.lower + step * i) for i in range(1, parts)}
            bounds = [window.lower, *sorted(b for b in cuts if b > window.lower)]
            if len(bounds) < 2:
                return
            for lower, upper in itertools.pairwise(bounds):
                self._jobs.append(Window(lower, upper, window))
                self._open += 1
            window.lower = bounds[-1]
            window.next_split = window.pages + window.every
        self._spawn()
