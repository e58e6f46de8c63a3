"""Activities (one stream per type), custom activities, and tasks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from tap_close import schemas
from tap_close.client import KeyPage, id_path
from tap_close.errors import CloseAPIError, MaxSkipError
from tap_close.streams.base import (
    UTC,
    CloseStream,
    IncrementalStream,
    Lookback,
    format_ts,
    parse_ts,
    sorted_range,
)
from tap_close.streams.changes import EventReplay
from tap_close.streams.simple import list_stream

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class Kind(NamedTuple):
    stream: str
    path: str  # under /activity/
    type_name: str  # the activity's `_type`
    schema: dict
    events: tuple[str, ...]  # event object_type names for this kind


KINDS = [
    Kind("call_activities", "call", "Call", schemas.CALL_ACTIVITY, ("activity.call",)),
    Kind("email_activities", "email", "Email", schemas.EMAIL_ACTIVITY, ("activity.email",)),
    Kind("email_thread_activities", "emailthread", "EmailThread",
         schemas.EMAIL_THREAD_ACTIVITY, ("activity.emailthread", "activity.email_thread")),
    Kind("note_activities", "note", "Note", schemas.NOTE_ACTIVITY, ("activity.note",)),
    Kind("meeting_activities", "meeting", "Meeting", schemas.MEETING_ACTIVITY,
         ("activity.meeting",)),
    Kind("sms_activities", "sms", "SMS", schemas.SMS_ACTIVITY, ("activity.sms",)),
    Kind("whatsapp_message_activities", "whatsapp_message", "WhatsAppMessage",
         schemas.WHATSAPP_MESSAGE_ACTIVITY, ("activity.whatsapp_message",)),
    Kind("created_activities", "created", "Created", schemas.CREATED_ACTIVITY,
         ("activity.created",)),
    Kind("lead_status_change_activities", "status_change/lead", "LeadStatusChange",
         schemas.LEAD_STATUS_CHANGE_ACTIVITY,
         ("activity.lead_status_change", "status_change.lead")),
    Kind("opportunity_status_change_activities", "status_change/opportunity",
         "OpportunityStatusChange", schemas.OPPORTUNITY_STATUS_CHANGE_ACTIVITY,
         ("activity.opportunity_status_change", "status_change.opportunity")),
    Kind("task_completed_activities", "task_completed", "TaskCompleted",
         schemas.TASK_COMPLETED_ACTIVITY, ("activity.task_completed",)),
    Kind("lead_merge_activities", "lead_merge", "LeadMerge", schemas.LEAD_MERGE_ACTIVITY,
         ("activity.lead_merge",)),
    Kind("form_submission_activities", "form_submission", "FormSubmission",
         schemas.FORM_SUBMISSION_ACTIVITY, ("activity.form_submission",)),
    Kind("custom_activity_instances", "custom", "CustomActivity", schemas.CUSTOM_ACTIVITY,
         ("activity.custom_activity", "activity.custom")),
]
KIND_BY_TYPE = {kind.type_name: kind for kind in KINDS}
#: Task `_type`s (Close's docs); a task's event object_type is `task.<_type>`.
TASK_TYPES = ("lead", "incoming_email", "email_followup", "missed_call",
              "answered_detached_call", "voicemail", "opportunity_due", "incoming_sms",
              "outgoing_call")
#: Every spelling of a kind's event object_type seen in Close's docs, without `activity.`
#: (`note` in one example, `activity.note` in the event list).
KIND_BY_EVENT_NAME = {name.removeprefix("activity."): kind for kind in KINDS
                      for name in (*kind.events, kind.path, kind.path.replace("/", "."))}


def spellings(kind: Kind) -> tuple[str, ...]:
    """Every candidate event object_type of a kind: each name, bare and `activity.`-dotted
    (a name with a dot of its own, `status_change.lead`, as it is)."""
    bare = sorted(name for name, found in KIND_BY_EVENT_NAME.items()
                  if found is kind and "/" not in name)
    return tuple(spelling for name in bare
                 for spelling in ((name,) if "." in name else (f"activity.{name}", name)))


def _payload_type(event: dict) -> str | None:
    for key in ("data", "previous_data"):
        payload = event.get(key)
        if isinstance(payload, dict) and payload.get("_type"):
            return str(payload["_type"])
    return None


def activity_kind(stream: CloseStream, event: dict) -> Kind | None:
    """The kind of an activity event: by the payload's `_type`, else the object_type in any
    spelling, else (payloads vanish after an hour without the admin role) the activity's
    `_type` read by id, once per run. None: not an activity, or unknown (deleted, no payload).
    """
    object_id = str(event.get("object_id") or "")
    if not object_id.startswith("acti_"):
        return None
    type_name = _payload_type(event)
    if type_name in KIND_BY_TYPE:
        return KIND_BY_TYPE[type_name]
    name = str(event.get("object_type") or "").removeprefix("activity.")
    if name in KIND_BY_EVENT_NAME:
        return KIND_BY_EVENT_NAME[name]
    memo = stream._tap.event_scan.memo
    key = "kind:" + object_id
    if key not in memo:
        try:
            found = stream.client.get(id_path("/activity/", object_id), {"_fields": "_type"})
            memo[key] = KIND_BY_TYPE.get(str(found.get("_type")))
        except CloseAPIError as exc:
            if exc.status != 404:
                raise
            memo[key] = None  # gone: its delete event names no type we know
        if memo[key] is None:
            stream.logger.warning("Event %s: cannot tell which activity type %s is (object_type "
                                  "%r); its change is not replayed.", event.get("id"), object_id,
                                  event.get("object_type"))
    return memo[key]


#: Before Close existed: the lower bound of a first run without start_date.
EPOCH = dt.datetime(2012, 1, 1, tzinfo=UTC)
#: Rows each page re-reads of the previous one: offsets shift when rows are deleted mid-scan.
OVERLAP = 5


class ActivityStream(EventReplay, Lookback):
    """One activity type, incremental on `date_created`, whatever order Close lists it in.

    `_order_by` is documented on `/activity/` only: a per-type list may come newest first.
    So the window [bookmark, run start) is paged by offset (each page overlapping the last
    by a few rows, repeats dropped by id), the bookmark moves to the window's end once the
    whole window is read, and max_skip halves the window. Activities cannot be filtered on
    `date_updated`: edits and deletes come from the event log (`updated` events re-emit the
    current activity, `deleted` ones a tombstone).
    """

    kind: ClassVar[Kind]
    replication_key = "date_created"
    is_sorted = False
    replay_updates = True
    use_fields_param = True
    #: Transcripts: computed at a cost and returned only when asked for by `_fields`.
    opt_in_properties = ("recording_transcript", "voicemail_transcript", "transcripts")

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Bookmarks move per finished window instead (records are in no promised order)."""
        if not self._replaying:
            self.note_sent(latest_record, context)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        lower = self.lookback_start(context) or EPOCH
        # The bookmark after the last window: Close's now before it is read (later rows may
        # be missed now; the next run's lookback reads them).
        now = self.client.clock.now()
        yield self.begin_read(context)
        run_started = self._tap.run_started
        # The last window is open above (a date_created in the future is read now too).
        pending: list[tuple[dt.datetime, dt.datetime | None]] = [(lower, None)]
        while pending:
            window = pending.pop()
            try:
                # Rows stream out; a split after max_skip may repeat some (at least once).
                yield from self._read_window(*window)
            except MaxSkipError:
                end = window[1] or max(run_started, window[0] + dt.timedelta(seconds=2))
                if end - window[0] <= dt.timedelta(seconds=1):
                    raise
                middle = window[0] + (end - window[0]) / 2
                pending += [(middle, window[1]), (window[0], middle)]  # earlier half first
                self.logger.info("max_skip: splitting %s at %s", self.name, format_ts(middle))
                continue
            yield self.move_bookmark(context, window[1] or now)
        yield from self.replay(context)

    def _read_window(self, lower: dt.datetime, upper: dt.datetime | None) -> Iterator[KeyPage]:
        params = {**self.base_params(None), **sorted_range("date_created", lower, upper)}
        del params["_order_by"]  # documented on /activity/ only; any order works here
        previous: set[str] = set()  # ids of the page before: the overlap's repeats
        for page in self.client.raw_pages(self.path, params, page_size=self.page_size,
                                          key=self.replication_key, overlap=OVERLAP):
            page.skip.update(i for i, (_, rid) in enumerate(page.keys) if rid in previous)
            previous = {rid for _, rid in page.keys}
            yield page

    lists_in_full = True

    def full_listing(self) -> Iterator[Any]:
        start = parse_ts(self._tap.config.get("start_date"))
        return self._read_window(start or EPOCH, None)

    def owns(self, event: dict) -> bool:
        return activity_kind(self, event) is self.kind

    def event_type_groups(self) -> list[tuple[str, ...]]:
        return [spellings(self.kind)]

    def object_path(self, object_id: str) -> str:
        return id_path(self.path, object_id)


def _activity_stream(kind: Kind) -> type[ActivityStream]:
    attrs = {"name": kind.stream, "path": f"/activity/{kind.path}/", "kind": kind,
             "static_schema": kind.schema}
    if kind.path == "custom":
        attrs["custom_object"] = "activity"
    return type(f"{kind.type_name}ActivityStream", (ActivityStream,), attrs)


ACTIVITY_STREAMS = [_activity_stream(kind) for kind in KINDS]


CustomActivityTypesStream = list_stream("custom_activity_types", "/custom_activity/",
                                        schemas.CUSTOM_ACTIVITY_TYPE)
ActivityCustomFieldsStream = list_stream("activity_custom_fields", "/custom_field/activity/",
                                         schemas.CUSTOM_FIELD, page_size=1000,
                                         shared=True)


class TasksStream(EventReplay, IncrementalStream):
    """Every task type (`_type=all`), incremental on `date_updated`.

    `/task/` filters on `date_updated` but sorts only by `date`/`date_created`. So the window
    date_updated in [bookmark, run start) is paged by keyset on (`date_created`, id), a key
    that does not move: a task edited or deleted mid-scan leaves the window without shifting
    later pages (as `_skip` would, skipping a task). The bookmark moves to the window's end
    once it is read.
    """

    name = "tasks"
    path = "/task/"
    static_schema = schemas.TASK
    replication_key = "date_updated"
    sort_key = "date_created"
    is_sorted = False
    page_size = 1000
    event_object_types = ()
    id_prefixes = ("task_", "noti_")  # lead tasks, and every other task type

    def owns(self, event: dict) -> bool:
        return super().owns(event) or str(event.get("object_type") or "").startswith("task.")

    def event_type_groups(self) -> list[tuple[str, ...]]:
        return [(f"task.{name}",) for name in TASK_TYPES]

    def advance_bookmark(self, latest_record: dict, *, context: Context | None = None) -> None:
        """Bookmarks move per finished window instead (records are not in key order)."""
        if not self._replaying:
            self.note_sent(latest_record, context)

    def window_params(
        self, lower: dt.datetime | None, upper: dt.datetime | None = None
    ) -> dict[str, Any]:
        return sorted_range("date_created", lower, upper)

    def read_records(self, context: Context | None) -> Iterator[Any]:
        start = self.lookback_start(context)
        # Open above: the bookmark is Close's now before the read (a task edited meanwhile
        # is read now, or by the next run's lookback).
        now = self.client.clock.now()
        yield self.begin_read(context)
        base: dict[str, Any] = {"_type": "all"}
        if start:
            base["date_updated__gte"] = start.isoformat()
        yield from self.keyset(base)
        yield self.move_bookmark(context, now)
        yield from self.replay(context)
