"""The event log as a change feed: tombstones for deletes, fresh copies of edited activities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, cast

from tap_close.errors import CloseAPIError
from tap_close.sdk_compat import set_stream_version, write_activate_version, write_state
from tap_close.streams import merges
from tap_close.streams.base import CloseStream, Deferred, format_ts, normalize_ts, parse_ts
from tap_close.streams.eventlog import EVENT_PAGE, event_key
from tap_close.streams.eventscan import has_payload

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_close.tap import TapClose

#: Close re-orders and consolidates events for a few minutes: re-read that much.
SETTLE = dt.timedelta(minutes=5)
RETENTION = dt.timedelta(days=30)
#: Event keys kept in STATE for the next run's overlap (about 55 bytes each); past this,
#: the overlap is replayed again instead (at least once).
SEEN_LIMIT = 500
DONE_LIMIT = 10_000  # tombstoned ids remembered per replay
#: In a targeted read of the log, a stream read in full once its edit events cost this share
#: of a full read (rows / page size requests): a bounded waste, never dearer than 1.1 reads.
CAP_SHARE = 0.1
POSITION = "event_position"  # top-level STATE key shared by every stream

if TYPE_CHECKING:
    _Base = CloseStream
else:
    _Base = object


class EventReplay(_Base):
    """Mixin for object streams: replay their events since the last run after the main pass.

    A stream's state keeps `events`: `since` (this run's start), and when the stream was last
    re-read in full (`reconciled`). The keys of the events read in the last few minutes,
    which the next run reads again (SETTLE), are kept once for every stream, at the top of
    STATE (`event_position`), and only up to SEEN_LIMIT keys: past that the overlap is
    replayed again (at least once, in date order: the newest version still lands last).

    A stream whose position is older than Close's event retention, or due a periodic
    reconciliation (`reconcile_every_days`), is re-read in full as a new table version and
    ends with ACTIVATE_VERSION (targets that honour it drop what was deleted unseen).
    """

    #: Close event object types whose deletes (and edits, if replay_updates) land here.
    event_object_types: ClassVar[tuple[str, ...]] = ()
    #: Id prefixes of this stream's objects: events are routed by object id first, since
    #: Close spells object_type in more than one way (`note`, `activity.note`).
    id_prefixes: ClassVar[tuple[str, ...]] = ()
    replay_updates: ClassVar[bool] = False
    replay_creates: ClassVar[bool] = False  # for streams read only through the event log
    lists_in_full: ClassVar[bool] = False  # `full_listing` is offered
    emits_tombstones = True
    _tap: TapClose
    _replaying = False
    _main_rows = 0  # rows of this run's main pass (a full read's count when it is one)
    _read_started: dt.datetime | None = None  # Close's time as the main pass began

    def read_records(self, context: Context | None) -> Iterator[Any]:
        yield from super().read_records(context)
        yield from self.replay(context)

    def get_records(self, context: Context | None) -> Iterator[Any]:
        self.checkpoint_position(context)
        version = self.reconcile_version(context)
        if version is not None:  # every row of a re-read carries its table version
            for stream in self.versioned_streams():
                set_stream_version(stream, version)
        for record in super().get_records(context):
            if not self._replaying:
                self._main_rows += 1
            yield record

    def checkpoint_position(self, context: Context | None) -> None:
        """Before a stream's first main pass: record this run's start and write STATE.

        Run in the main thread when the stream's turn comes. If the run dies before the stream
        ends, the next run (resuming from that STATE) still replays the events since this run
        began, so rows emitted before the crash and deleted since get their tombstones. The
        position is marked incomplete, and this run's own replay ignores it.

        A full re-read starting now drops the bookmark (the re-read is the progress from
        here on) and notes its table version, which a resumed run keeps.
        """
        state = self.get_context_state(context)
        version = self.reconcile_version(context)
        if version is not None and self._starts_reconcile(context):
            position = state.get("events") or {}
            too_old = self._gap_too_old(position)
            self.logger.warning(
                "%s: re-reading it in full as table version %s (%s); ACTIVATE_VERSION at its "
                "end lets targets that honour it drop rows deleted meanwhile.", self.name,
                version, "the last run was before Close's 30-day event retention" if too_old
                else "reconcile_every_days")
            if too_old:
                position = {"since": self._run_started_text, "complete": False}
            state["events"] = {**position, "reconcile": version,
                               "started": self._run_started_text}
            for key in ("replication_key_value", "bookmark_ids", "progress_markers", "sent",
                        "read_at"):
                state.pop(key, None)
        elif state.get("events"):
            return
        else:
            state["events"] = {"since": self._run_started_text, "complete": False}
        self.state_manager.is_flushed = False
        write_state(self)

    def previous_position(self, context: Context | None) -> dict | None:
        """The event position of an earlier run (None on a first run)."""
        position = self.get_context_state(context).get("events")
        if not position or (position.get("complete") is False
                            and position.get("since") == self._run_started_text):
            return None  # none, or this run's own checkpoint
        if self._starts_reconcile(context) and self._gap_too_old(position):
            return None  # re-read in full: nothing before this run to replay
        return dict(position)

    # --- full re-reads (a new table version) ------------------------------------------------

    def reconcile_version(self, context: Context | None) -> int | None:
        """The table version of this run's full re-read; None if the stream is not re-read.

        Pending from an interrupted re-read (same version: its rows stay), or due now: the
        event position is older than Close's event retention, or `reconcile_every_days`
        have passed since the last full read. Depends only on STATE as the run found it.
        """
        if self.replication_key is None or self.replication_method != "INCREMENTAL":
            return None  # full-table streams are re-read, with ACTIVATE_VERSION, every run
        position = self.get_context_state(context).get("events") or {}
        if position.get("reconcile") is not None:
            return int(position["reconcile"])
        if "since" not in position:
            return None  # a first run reads everything anyway
        if self._gap_too_old(position) or self._reconcile_due(position):
            return int(self._tap.run_started.timestamp() * 1000)
        return None

    def _starts_reconcile(self, context: Context | None) -> bool:
        """A re-read begins in this run (not resumed from an interrupted one)."""
        position = self.get_context_state(context).get("events") or {}
        if position.get("reconcile") is None:
            return self.reconcile_version(context) is not None
        return position.get("started") == self._run_started_text

    def _gap_too_old(self, position: dict) -> bool:
        since = parse_ts(position.get("since"))
        return since is not None and since - SETTLE < self._tap.run_started - RETENTION

    def _reconcile_due(self, position: dict) -> bool:
        days = self._tap.config.get("reconcile_every_days")
        if not days:
            return False
        last = parse_ts(position.get("reconciled"))
        return last is None or last + dt.timedelta(days=float(days)) <= self._tap.run_started

    def get_starting_timestamp(self, context: Context | None) -> dt.datetime | None:
        """A re-read beginning now starts where a first run would (`start_date`)."""
        if self._starts_reconcile(context):
            return parse_ts(self._tap.config.get("start_date"))
        return super().get_starting_timestamp(context)

    def versioned_streams(self) -> list[CloseStream]:
        """The streams a full re-read of this one writes (and versions)."""
        return [self]

    def _shared_state(self) -> dict[str, Any]:
        return cast(dict, self._tap.state)

    def _activate_version(self, version: int) -> Deferred:
        def activate() -> None:
            for stream in self.versioned_streams():
                if stream.selected and stream.emit_activate_version_messages:
                    write_activate_version(stream, version)
        return Deferred(activate)

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

    def event_type_groups(self) -> list[tuple[str, ...]]:
        """This stream's event object types, each as its candidate spellings."""
        return [(name,) for name in self.event_object_types]

    def event_actions(self, group: tuple[str, ...]) -> tuple[str, ...]:
        """The actions of a type (`group`) this stream replays: deletes, and edits/creates
        if it replays them."""
        return ("deleted", *(("updated",) if self.replay_updates else ()),
                *(("created",) if self.replay_creates else ()))

    def update_cap(self) -> int | None:
        """Edit events past which a targeted read of the log stops reading this stream's
        edits and reads it in full instead (None: no cap, its edits are read)."""
        rows = self._position(None).get("rows")
        if (not self.lists_in_full or not self.replay_updates or not isinstance(rows, int)
                or self.previous_position(None) is None):
            return None
        return max(EVENT_PAGE, int(CAP_SHARE * rows / self.page_size * EVENT_PAGE))

    def may_refresh(self, event: dict) -> bool:
        """Whether this (owned) event may re-emit its object in this run: the event scan keeps
        it (read before the stream knows, e.g. that its search is refused)."""
        return self.refreshes(event)

    def target_for(self, event: dict) -> CloseStream:
        """The stream whose schema a replayed row follows (this one, unless routed away)."""
        return self

    def route(self, event: dict, row: dict) -> dict | Deferred | None:
        """Where a replayed row goes: returned rows are this stream's; None = written elsewhere
        (a Deferred: written elsewhere, in order, by the main thread)."""
        return row

    def replay(self, context: Context | None) -> Iterator[Any]:
        """Yield tombstones and refreshed records for this stream's events since last run."""
        version = self.reconcile_version(context)
        previous = self.previous_position(context)
        run_start = self._tap.run_started
        since = self.replay_since(context)
        scan = self._tap.event_scan
        if previous and since:
            if since < run_start - RETENTION and version is None:
                self.logger.warning(
                    "%s: the last run was before Close's 30-day event retention; deletes and "
                    "edits older than %s cannot be recovered from the event log.",
                    self.name, format_ts(run_start - RETENTION))
            seen = set(previous.get("seen") or [])  # STATE written by earlier releases
            shared = self._tap.previous_event_position or {}  # as the run found it
            if previous.get("complete") is not False and shared.get("since") == previous.get(
                    "since"):
                seen.update(shared.get("seen") or [])
            yield self.replaying(True)
            listing = self._listing_instead(context, since, seen)
            if listing is not None:
                yield from listing
            yield from self._replay_events(scan.events_for(self, since), seen,
                                           refresh=listing is None)
            yield self.replaying(False)
        elif previous is None and not scan.denied:
            # A first run (or a full re-read): its list may have been read before the last
            # minutes' changes, which the next run skips as `seen`: replay them now. Deletes
            # only from when its list was read on (one read before has no row to delete), by
            # Close's clock as its `Date` header tells it: to the second, never later.
            cutoff = format_ts(self._read_started or run_start)
            events = (e for e in scan.events_for(self, run_start - SETTLE)
                      if e.get("action") not in ("deleted", "merged")
                      or str(normalize_ts(e.get("date_updated")) or "") >= cutoff)
            yield self.replaying(True)
            yield from self._replay_events(events, set())
            yield self.replaying(False)
        overlap = scan.seen_since(run_start - SETTLE, SEEN_LIMIT)  # (reads the log if needed)
        if version is not None:
            yield self._activate_version(version)
        if not scan.denied or version is not None:  # else keep the last position (or this
            yield self._new_position(context, version,  # run's checkpoint) for a later run
                                     None if previous is None else previous.get("reconciled"),
                                     overlap)

    def replay_since(self, context: Context | None) -> dt.datetime | None:
        """Where this stream's replay reads the event log from (None: no replay)."""
        previous = self.previous_position(context)
        last = parse_ts((previous or {}).get("since"))
        if not previous or not last:
            return None
        # An interrupted first run's checkpoint: what changed before that run began is in
        # its main pass already (a delete then is no tombstone), so no settle overlap.
        return last if previous.get("complete") is False else last - SETTLE

    def _new_position(self, context: Context | None, version: int | None,
                      reconciled: str | None, seen: list[str] | None) -> Deferred:
        """This run's position, set once every row before it is written; `seen` (the keys of
        the events read since run start - SETTLE) goes to the shared `event_position`. A first
        run and a re-read count as full reads (`reconciled`)."""
        scan = self._tap.event_scan
        if version is not None or reconciled is None:
            reconciled = self._run_started_text

        def advance() -> None:
            state = self.get_context_state(context)
            before = 0 if version is not None else (state.get("events") or {}).get("rows", 0)
            state["events"] = {"since": self._run_started_text, "reconciled": reconciled,
                               "rows": before + self._main_rows}
            if not scan.denied:
                self._shared_state()[POSITION] = {"since": self._run_started_text,
                                             "seen": seen or []}
        return Deferred(advance)

    def _listing_instead(self, context: Context | None, since: dt.datetime,
                         seen: set[str]) -> Iterator[Any] | None:
        """The stream read in full instead of replaying its edits, when that is cheaper:
        the edits cover most of it (at least half of its `rows`: what it has written so far,
        kept in its position), or they would cost more GETs (events without payloads) than
        the rows / page size requests of a full read. None: replay them.
        """
        scan = self._tap.event_scan
        total, fetches = scan.refreshes(self, since, seen)
        if self.name in scan.capped:
            listing = self.full_listing()
            assert listing is not None  # `lists_in_full`
            self.logger.info("%s: more edits than a tenth of a full read costs; their events "
                             "were not all read: reading it in full instead", self.name)
            return listing
        rows = self._position(context).get("rows")
        if not total or not isinstance(rows, int) or (
                total < rows / 2 and fetches <= rows / self.page_size + 1):
            return None
        listing = self.full_listing()
        if listing is not None:
            self.logger.info("%s: %d edits (%d of them a GET each) of about %d rows; reading "
                             "it in full instead", self.name, total, fetches, rows)
        return listing

    def full_listing(self) -> Iterator[Any] | None:
        """Every row of the stream, as a first run reads them (None: not offered)."""
        return None

    def _position(self, context: Context | None) -> dict:
        return dict(self.get_context_state(context).get("events") or {})

    def _replay_events(self, events: Iterable[dict], seen: set[str], *, refresh: bool = True
                       ) -> Iterator[dict | Deferred]:
        for event, row in self._changes(events, seen, refresh=refresh):
            routed = self.route(event, row)
            if routed is not None:
                yield routed

    def _changes(self, events: Iterable[dict], seen: set[str], *, refresh: bool = True
                 ) -> Iterator[tuple[dict, dict]]:
        done: set[str] = set()  # objects tombstoned (a merge and a delete): bounded
        marks = self._tap.event_scan.merge_marks  # leads merged, with their second
        for event in events:
            if len(done) > DONE_LIMIT:
                done.clear()  # a second tombstone for the same object is harmless
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
            elif oid and refresh and self.refreshes(event):
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
        if has_payload(event):
            return dict(event["data"])
        try:
            return self._tap.client.get(self.object_path(str(event["object_id"])))
        except CloseAPIError as exc:
            if exc.status == 404:
                return None  # deleted since; its delete event follows
            raise

    def object_path(self, object_id: str) -> str:
        raise NotImplementedError
