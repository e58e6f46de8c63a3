"""The event log as a change feed: tombstones for deletes, fresh copies of edited activities."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from tap_close.client import CloseClient
from tap_close.errors import AccessDeniedError, CloseAPIError
from tap_close.sdk_compat import write_state
from tap_close.streams import merges
from tap_close.streams.base import UTC, CloseStream, Deferred, format_ts, parse_ts
from tap_close.streams.eventlog import EventWindows, event_key

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_close.tap import TapClose

logger = logging.getLogger("tap-close.events")

#: Close re-orders and consolidates events for a few minutes: re-read that much.
SETTLE = dt.timedelta(minutes=5)
RETENTION = dt.timedelta(days=30)
KEPT_ACTIONS = ("deleted", "merged", "updated", "created")

NO_EVENT_LOG = (
    "The event log (/event/) is not available to this credential (%s): every stream is still "
    "extracted in full, but deletes and edits of already-extracted objects (activities, "
    "contacts, custom objects, ...) cannot be tracked. Fix: use an API key (or OAuth user) "
    "whose Close role may read the event log (an admin role also returns event payloads); "
    "a 402 means the organization's Close plan does not include it."
)


class EventScan:
    """Change events since a moment, read once per run and shared by every stream.

    One lock: streams read ahead in threads ask at the same time, and each page is read once.
    """

    def __init__(self, client: CloseClient, log: logging.Logger = logger) -> None:
        self.client = client
        self.log = log
        self.since: dt.datetime | None = None
        self.until = dt.datetime.now(UTC)
        self.denied = False  # the credential may not read the event log (403/402)
        self.memo: dict[str, Any] = {}  # facts looked up once per run (e.g. an activity type)
        self._events: dict[str, dict] = {}
        self._lock = threading.RLock()

    def deny(self, exc: AccessDeniedError) -> None:
        """Note (once, with one WARNING) that the event log is closed to this credential."""
        with self._lock:
            if not self.denied:
                self.denied = True
                self.log.warning(NO_EVENT_LOG, f"HTTP {exc.status}")

    def events_since(self, start: dt.datetime) -> list[dict]:
        """Deletes, merges and updates with date_updated >= start, oldest first, one per key."""
        with self._lock:
            if self.denied:
                return []
            if self.since is None or start < self.since:
                upper = self.since or None
                windows = EventWindows(self.client, start, upper, self.client.workers)
                try:
                    for page, _ in windows.pages():
                        for event in page:
                            if event.get("action") in KEPT_ACTIONS:
                                self._events.setdefault(event_key(event), event)
                except AccessDeniedError as exc:
                    self.deny(exc)
                    return []
                self.since = start
            found = [
                e for e in self._events.values()
                if (parse_ts(e.get("date_updated")) or self.until) >= start
            ]
        return sorted(found, key=lambda e: (parse_ts(e.get("date_updated")) or self.until))


if TYPE_CHECKING:
    _Base = CloseStream
else:
    _Base = object


class EventReplay(_Base):
    """Mixin for object streams: replay their events since the last run after the main pass.

    State keeps `events_since` (this run's start) and the keys of events seen in the last
    few minutes, so the overlap re-read never emits the same change twice.
    """

    #: Close event object types whose deletes (and edits, if replay_updates) land here.
    event_object_types: ClassVar[tuple[str, ...]] = ()
    #: Id prefixes of this stream's objects: events are routed by object id first, since
    #: Close spells object_type in more than one way (`note`, `activity.note`).
    id_prefixes: ClassVar[tuple[str, ...]] = ()
    replay_updates: ClassVar[bool] = False
    replay_creates: ClassVar[bool] = False  # for streams read only through the event log
    emits_tombstones = True
    _tap: TapClose
    _replaying = False

    def read_records(self, context: Context | None) -> Iterator[Any]:
        yield from super().read_records(context)
        yield from self.replay(context)

    def get_records(self, context: Context | None) -> Iterator[Any]:
        self.checkpoint_position(context)
        yield from super().get_records(context)

    def checkpoint_position(self, context: Context | None) -> None:
        """Before a stream's first main pass: record this run's start and write STATE.

        Run in the main thread when the stream's turn comes. If the run dies before the stream
        ends, the next run (resuming from that STATE) still replays the events since this run
        began, so rows emitted before the crash and deleted since get their tombstones. The
        position is marked incomplete, and this run's own replay ignores it.
        """
        state = self.get_context_state(context)
        if state.get("events"):
            return
        state["events"] = {"since": format_ts(self._tap.run_started), "seen": [],
                           "complete": False}
        self.state_manager.is_flushed = False
        write_state(self)

    def previous_position(self, context: Context | None) -> dict | None:
        """The event position of an earlier run (None on a first run)."""
        position = self.get_context_state(context).get("events")
        if not position or (position.get("complete") is False
                            and position.get("since") == format_ts(self._tap.run_started)):
            return None  # none, or this run's own checkpoint
        return dict(position)

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """A replication key later than now (bad data, clock skew) never becomes the bookmark.

        The bookmark stops at now instead, so that record is read again next run rather than
        every change until that future date being skipped.
        """
        key = self.replication_key
        text = latest_record.get(key) if key else None
        if isinstance(text, str) and len(text) == 32 and text.endswith("+00:00") and (
                text <= self._run_started_text):
            pass  # canonical UTC text before this run began: not in the future (hot path)
        elif key and (value := parse_ts(text)) is not None:
            now = self.client.clock.now()  # Close's time, not ours
            if value > now:
                latest_record = {**latest_record, key: format_ts(now)}
        super().advance_bookmark(latest_record, context=context)

    @cached_property
    def _run_started_text(self) -> str:
        return format_ts(self._tap.run_started)

    def owns(self, event: dict) -> bool:
        if self.id_prefixes and str(event.get("object_id") or "").startswith(self.id_prefixes):
            return True
        return event.get("object_type") in self.event_object_types

    def refreshes(self, event: dict) -> bool:
        """Whether this (owned) event re-emits its object's current version."""
        action = event.get("action")
        return bool((action == "updated" and self.replay_updates)
                    or (action == "created" and self.replay_creates))

    def target_for(self, event: dict) -> CloseStream:
        """The stream whose schema a replayed row follows (this one, unless routed away)."""
        return self

    def route(self, event: dict, row: dict) -> dict | Deferred | None:
        """Where a replayed row goes: returned rows are this stream's; None = written elsewhere
        (a Deferred: written elsewhere, in order, by the main thread)."""
        return row

    def replay(self, context: Context | None) -> Iterator[Any]:
        """Yield tombstones and refreshed records for this stream's events since last run."""
        previous = self.previous_position(context)
        run_start = self._tap.run_started
        last = parse_ts((previous or {}).get("since"))
        if previous and last:
            # An interrupted first run's checkpoint: what changed before that run began is in
            # its main pass already (a delete then is no tombstone), so no settle overlap.
            since = last if previous.get("complete") is False else last - SETTLE
            if since < run_start - RETENTION:
                self.logger.warning(
                    "%s: the last run was before Close's 30-day event retention; deletes and "
                    "edits older than %s cannot be recovered from the event log (run a full "
                    "refresh of this stream to reconcile).",
                    self.name, format_ts(run_start - RETENTION),
                )
            seen = set(previous.get("seen") or [])
            yield self.replaying(True)
            yield from self._replay_events(self._tap.event_scan.events_since(since), seen)
            yield self.replaying(False)
        recent = run_start - SETTLE
        keys = [event_key(e) for e in self._tap.event_scan.events_since(recent) if self.owns(e)]
        if not self._tap.event_scan.denied:  # else keep the last position (or this run's
            yield self.update_state(context,  # incomplete checkpoint) for a later run
                                    events={"since": format_ts(run_start), "seen": keys})

    def _replay_events(self, events: list[dict], seen: set[str]) -> Iterator[dict | Deferred]:
        for event, row in self._changes(events, seen):
            routed = self.route(event, row)
            if routed is not None:
                yield routed

    def _changes(self, events: list[dict], seen: set[str]) -> Iterator[tuple[dict, dict]]:
        done: set[str] = set()
        marks = merges.merge_marks(events)
        for event in events:
            if event_key(event) in seen or not self.owns(event):
                continue
            action = event.get("action")
            oid = event.get("object_id")
            if action == "merged":
                oid = (event.get("meta") or {}).get("merge_source_lead_id")
                if not oid or oid == event.get("object_id"):
                    continue
            if action in ("deleted", "merged") and self._tap.config.get("track_deletes", True):
                if oid and oid not in done:
                    done.add(oid)
                    kept = merges.still_there(self, event, marks)
                    yield event, self.tombstone(event, oid) if kept is None else kept
            elif oid and self.refreshes(event):
                row = self.refreshed(event)
                if row is not None:
                    yield event, self.target_for(event).post_process(row) or row

    def tombstone(self, event: dict, object_id: str) -> dict:
        """The last known object (previous_data) marked with `_sdc_deleted_at`."""
        previous = event.get("previous_data")
        full = isinstance(previous, dict) and event.get("action") == "deleted"
        row = dict(previous) if full else {}  # type: ignore[arg-type]
        row["id"] = object_id
        row = self.target_for(event).post_process(row) or row
        when = parse_ts(event.get("date_updated")) or self._tap.run_started
        row["_sdc_deleted_at"] = format_ts(when)
        return row

    def refreshed(self, event: dict) -> dict | None:
        """The edited object: the event's full `data` when present, else a fresh GET."""
        data = event.get("data")
        if isinstance(data, dict) and data.get("id") and data.get("date_created"):
            return dict(data)
        try:
            return self._tap.client.get(self.object_path(str(event["object_id"])))
        except CloseAPIError as exc:
            if exc.status == 404:
                return None  # deleted since; its delete event follows
            raise

    def object_path(self, object_id: str) -> str:
        raise NotImplementedError
