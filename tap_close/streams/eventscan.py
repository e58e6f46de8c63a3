"""One read of the event log per run, shared by every stream, kept on disk.

`EventScan` reads the log (in date windows, `EventWindows`) from the oldest position any
stream replays from, routes each event to the streams that own it as the pages arrive, and
stores them (`EventStore`); each stream then reads back only its own events, oldest first.

A gap too big for a sample of `sample_budget` pages is read targeted instead (`targeted.py`):
only the deletes, merges and edits the streams replay, each type and action a query of its
own; a stream whose edits pass its cap (`update_cap`) is read in full (`capped`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tap_close.client import CloseClient
from tap_close.errors import AccessDeniedError, CloseAPIError
from tap_close.streams import merges, targeted
from tap_close.streams.base import UTC, format_ts, parse_ts
from tap_close.streams.eventlog import EVENT_PAGE, EventWindows, Query, event_key
from tap_close.streams.eventstore import FETCH, REFRESH, EventStore
from tap_close.streams.targeted import REFRESH_ACTIONS, TargetedQuery

if TYPE_CHECKING:
    from tap_close.streams.changes import EventReplay

logger = logging.getLogger("tap-close.events")

KEPT_ACTIONS = ("deleted", "merged", "updated", "created")
FLUSH = 500  # events held in memory before they are written to disk together

NO_EVENT_LOG = (
    "The event log (/event/) is not available to this credential (%s): every stream is still "
    "extracted in full, but deletes and edits of already-extracted objects (activities, "
    "contacts, custom objects, ...) cannot be tracked. Fix: use an API key (or OAuth user) "
    "whose Close role may read the event log (an admin role also returns event payloads); "
    "a 402 means the organization's Close plan does not include it."
)


class EventScan:
    """Change events since a moment, read once per run and shared by every stream.

    The events go to disk (`EventStore`) page by page, each routed to the streams that own
    it, so memory does not grow with the number of changes. One lock: streams read ahead in
    threads ask at the same time, and each page is read once.
    """

    def __init__(self, client: CloseClient, log: logging.Logger = logger,
                 owners: Callable[[], list[EventReplay]] = list) -> None:
        self.client = client
        self.log = log
        self.since: dt.datetime | None = None
        self.until = dt.datetime.now(UTC)
        self.denied = False  # the credential may not read the event log (403/402)
        self.memo: dict[str, Any] = {}  # facts looked up once per run (e.g. an activity type)
        self._owners = owners  # the streams events are routed to as they are read
        self._routed: dict[str, EventReplay] = {}
        self._store: EventStore | None = None
        self._seen: dict[str, list[str] | None] = {}
        self._pending: list[tuple[str, str, dict, list[tuple[str, int]]]] = []
        self.merge_marks: merges.MergeMarks = set()  # the leads of every merge read (rare)
        self.targeted = False  # the gap was too big: only what streams replay is read
        self.capped: set[str] = set()  # streams read in full: their edits were not all read
        self._spellings: dict[str, set[str]] = {}  # object_types of each stream's events
        self._edits: Counter[str] = Counter()  # edit events kept per stream
        self._caps: dict[str, int] = {}
        self._lock = threading.RLock()

    def deny(self, exc: AccessDeniedError) -> None:
        """Note (once, with one WARNING) that the event log is closed to this credential."""
        with self._lock:
            if not self.denied:
                self.denied = True
                self.log.warning(NO_EVENT_LOG, f"HTTP {exc.status}")

    def events_for(self, stream: EventReplay, start: dt.datetime) -> Iterator[dict]:
        """`stream`'s deletes, merges, updates and creates with date_updated >= start, oldest
        first, one per key (read from disk as they are used)."""
        with self._lock:
            if not self._scan(start):
                return iter(())
            store = self._store
            assert store is not None
            if stream.name not in self._routed:  # not known at the first scan: route now
                self._routed[stream.name] = stream
                store.own(stream.name, [(key, at, cost(stream, event))
                                        for key, at, event in store.everything()
                                        if stream.owns(event)])
        return store.owned(stream.name, format_ts(start))

    def refreshes(self, stream: EventReplay, start: dt.datetime, skip: Collection[str]
                  ) -> tuple[int, int]:
        """`stream`'s events since `start` that re-emit a row, but those in `skip`: (all,
        those needing a GET)."""
        with self._lock:
            if not self._scan(start) or self._store is None:
                return 0, 0
            return self._store.refreshes(stream.name, format_ts(start), skip)

    def seen_since(self, start: dt.datetime, limit: int) -> list[str] | None:
        """Keys of every event read with date_updated >= start; None if more than `limit`."""
        text = format_ts(start)
        with self._lock:
            if not self._scan(start):  # a first run reads these minutes too
                return None
            if text not in self._seen:
                keys = self._store.keys_since(text, limit) if self._store else []
                self._seen[text] = keys if len(keys) <= limit else None
            return self._seen[text]

    def start(self) -> None:
        """Begin reading the event log now, in a thread, from the oldest position any stream
        will replay from: the streams' main passes run meanwhile."""
        starts = [since for s in self._owners() if (since := s.replay_since(None)) is not None]
        if starts:
            threading.Thread(target=self._early_scan, args=(min(starts),), daemon=True,
                             name="event-scan").start()

    def _early_scan(self, start: dt.datetime) -> None:
        try:
            with self._lock:
                self._scan(start)
        except Exception as exc:
            self.log.info("Reading the event log ahead failed (%s); read when needed", exc)

    def _scan(self, start: dt.datetime) -> bool:
        """Read the event log down to `start` (once); False if it cannot be read."""
        if self.denied:
            return False
        if self._store is None:
            self._store = EventStore()
            self._routed = {s.name: s for s in self._owners()}
        if self.since is None or start < self.since:
            try:
                if self.targeted or not self._sample(start, self.since):
                    self._targeted(start, self.since)
            except AccessDeniedError as exc:
                self.deny(exc)
                return False
            finally:
                self._flush()
            self.since = start
        return True

    def _sample(self, lower: dt.datetime, upper: dt.datetime | None) -> bool:
        """Every event of [lower, upper), up to a page budget: True if all were read."""
        sample = Query()
        sample.page_limit = targeted.sample_budget(self._routed.values())
        for page, _ in EventWindows(self.client, lower, upper, self.client.workers,
                                    [sample]).pages():
            self._add(page)
        return not sample.truncated

    def _targeted(self, lower: dt.datetime, upper: dt.datetime | None) -> None:
        """Only the events the streams replay, over the whole of [lower, upper) (those the
        sample read again are stored once); every event if Close refuses these reads."""
        streams = list(self._routed.values())
        if not self.targeted:
            self.targeted = True
            self._caps = {s.name: cap for s in streams if (cap := s.update_cap()) is not None}
            self._cap()  # the sample's edits
            self._edits.clear()  # counted again as the targeted reads (of the whole gap) go
        queries = targeted.plan(streams, self._spellings, self.capped)
        self.log.info("Event log: more events since %s than a sample of them; reading only "
                      "the deletes, merges and edits the streams replay (%d queries)",
                      format_ts(lower), len(queries))
        for query in queries:  # a stream's edits stop at its cap (a page or so beyond)
            caps = [cap for name in query.owners if (cap := self._caps.get(name)) is not None]
            if query.action in REFRESH_ACTIONS and caps and len(caps) == len(query.owners):
                query.page_limit = max(caps) // EVENT_PAGE + 2
        windows = EventWindows(self.client, lower, upper, self.client.workers, list(queries))
        try:
            for _, page in windows.by_query():
                self._add(page)
                self._cap(queries)
        except CloseAPIError as exc:
            if exc.status not in (400, 402, 403):
                raise
            self._everything(lower, upper, f"HTTP {exc.status} to an object_type+action read")
            return
        for query in queries:
            if query.truncated and not query.owners <= self.capped:
                self.capped |= query.owners
                self.log.info("%s: over %d pages of edits in the event log; not reading more "
                              "of them (read in full)", ", ".join(sorted(query.owners)),
                              query.page_limit)
        refused = [q for q in queries if q.refused]
        if refused:
            self.log.info("Event log: Close knows no object_type %s (400): no such events",
                          ", ".join(sorted({q.filters["object_type"] for q in refused})))
        if len(refused) == len(queries):
            self._everything(lower, upper, "every object_type+action read refused")

    def _everything(self, lower: dt.datetime, upper: dt.datetime | None, why: str) -> None:
        self.log.warning("Event log: targeted reads failed (%s); reading every event of the "
                         "gap instead", why)
        for page, _ in EventWindows(self.client, lower, upper, self.client.workers).pages():
            self._add(page)

    def _cap(self, queries: Iterable[TargetedQuery] = ()) -> None:
        """Streams whose edits pass their cap are read in full: their edits are not read on."""
        for name, cap in self._caps.items():
            if name not in self.capped and self._edits[name] > cap:
                self.capped.add(name)
                self.log.info("%s: over %d edits in the event log; not reading more of them "
                              "(it is read in full)", name, cap)
        for query in queries:
            if query.action in REFRESH_ACTIONS and query.owners and query.owners <= self.capped:
                query.cancelled = True

    def _add(self, page: list[dict]) -> None:
        """Store the page's events that some stream will replay, each with its owners.

        An edit no stream replays (a lead's or a task's: their main pass reads it) is
        skipped, and an edit's `previous_data` (only a delete's makes a tombstone)."""
        for event in page:
            action = event.get("action")
            if action not in KEPT_ACTIONS:
                continue
            merges.note_merge(event, self.merge_marks)
            owners = []
            for name, stream in self._routed.items():
                if not stream.owns(event):
                    continue
                self._spellings.setdefault(name, set()).add(str(event.get("object_type")))
                if action in ("deleted", "merged") or stream.may_refresh(event):
                    owners.append((name, cost(stream, event)))
                    self._edits[name] += owners[-1][1] > 0
            if owners:
                kept = event if action == "deleted" else {**event, "previous_data": None}
                when = parse_ts(event.get("date_updated")) or self.until
                self._pending.append((event_key(event), format_ts(when), kept, owners))
        if len(self._pending) >= FLUSH:
            self._flush()

    def _flush(self) -> None:
        """Write the events held back: one transaction for several pages (each call into
        SQLite hands the interpreter to the reading threads, and costs a wait to get back)."""
        if self._pending and self._store is not None:
            self._store.add(self._pending)
        self._pending = []

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def cost(stream: EventReplay, event: dict) -> int:
    """What replaying an owned event costs: 0 (a tombstone), REFRESH or FETCH (a GET)."""
    if event.get("action") in ("deleted", "merged") or not stream.may_refresh(event):
        return 0
    return REFRESH if has_payload(event) else FETCH


def has_payload(event: dict) -> bool:
    """The event carries the object (`data`), so replaying its edit needs no GET."""
    data = event.get("data")
    return isinstance(data, dict) and bool(data.get("id")) and bool(data.get("date_created"))
